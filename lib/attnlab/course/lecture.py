"""The lecture on one page: each zone's titles and the threads that run through the course
(Zone 6)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
import numpy as np
from ..flash.hbm import hbm_traffic
from ..functional import causal_mask, kv_cache_bytes, score_variance, softmax
from ..i18n import N_, tr
from ..positional import alibi_slopes
from ..scaling import chinchilla_optimal

__all__ = ['LECTURE_MAP', 'THREADS', 'lecture_map', 'lecture_table_markdown']


# ----------------------------------------------------------------------------------------
# The lecture map
# ----------------------------------------------------------------------------------------

ZONE_TITLES = {
    "00_quickstart": N_("Zone 0 — Quickstart"),
    "01_experience": N_("Zone 1 — Experience"),
    "02_intuition": N_("Zone 2 — Intuition"),
    "03_derivations": N_("Zone 3a — Derivations"),
    "03_efficiency": N_("Zone 3b — Efficiency"),
    "04_implementation": N_("Zone 4 — Implementation"),
    "05_experiments": N_("Zone 5 — Experiments"),
    "06_review": N_("Zone 6 — Review"),
}


# The threads that run through the lecture, in the order the map draws them.
THREADS = {
    "core": N_("the attention mechanism"),
    "order": N_("order: positions and masks"),
    "block": N_("the Transformer block and GPT"),
    "fast": N_("computing attention faster"),
    "memory": N_("memory: the KV cache"),
    "recurrent": N_("recurrence: from RNNs to Mamba"),
    "scale": N_("scale and in-context learning"),
    "review": N_("review"),
}


# (zone, thread, short tag for the figure, the idea in one sentence, attnlab functions)
LECTURE_MAP = (
    (
        "00_quickstart",
        "core",
        "softmax",
        N_("softmax turns scores into weights that sum to 1; subtract the max, -inf gives 0"),
        ("softmax",),
    ),
    (
        "00_quickstart",
        "core",
        N_("attention"),
        N_(
            "Attention(Q, K, V) = softmax(QK^T / sqrt(d_k)) V: every token mixes every token, in one step"
        ),
        ("scaled_dot_product_attention",),
    ),
    (
        "01_experience",
        "recurrent",
        N_("the fossils"),
        N_(
            "an RNN's path between two tokens grows with their distance, a CNN needs a stack of layers, attention one step"
        ),
        ("fossil_table",),
    ),
    (
        "01_experience",
        "core",
        "Q, K, V",
        N_("queries, keys and values are three learned projections of the same tokens"),
        ("qkv_attention",),
    ),
    (
        "01_experience",
        "core",
        "1/sqrt(d_k)",
        N_(
            "unscaled scores spread like sqrt(d_k) and saturate the softmax; the scale keeps them at 1"
        ),
        ("score_statistics", "scaling_statistics"),
    ),
    (
        "02_intuition",
        "recurrent",
        N_("recall race"),
        N_("a GRU's accuracy falls with distance, attention's does not: path length 1"),
        ("recall_experiment",),
    ),
    (
        "02_intuition",
        "order",
        N_("a set, not a list"),
        N_("without positions, self-attention is permutation equivariant"),
        ("permutation_check",),
    ),
    (
        "02_intuition",
        "core",
        N_("real heads"),
        N_("a pretrained encoder's heads link words by position and by meaning"),
        ("sentence_attention",),
    ),
    (
        "03_derivations",
        "core",
        "Var(q.k) = d_k",
        N_("the variance of a dot product of d_k independent unit-variance terms is d_k"),
        ("score_variance",),
    ),
    (
        "03_derivations",
        "core",
        N_("softmax Jacobian"),
        N_("d softmax / ds = diag(a) - a a^T, which vanishes when the softmax saturates"),
        ("softmax_jacobian",),
    ),
    (
        "03_derivations",
        "core",
        N_("multi-head"),
        N_("H heads are H low-rank bilinear forms for the 4 d^2 parameters of one"),
        ("multi_head_attention",),
    ),
    (
        "03_derivations",
        "order",
        N_("positions"),
        N_(
            "sinusoidal (a linear shift), RoPE (scores depend on m - n), ALiBi (a distance penalty)"
        ),
        ("sinusoidal_positional_encoding", "apply_rope", "alibi_bias"),
    ),
    (
        "03_derivations",
        "block",
        N_("norms and FFN"),
        N_("residuals, LayerNorm / RMSNorm, GELU / SwiGLU; Pre-LN keeps gradients tame with depth"),
        ("layer_norm", "rms_norm", "swiglu"),
    ),
    (
        "03_derivations",
        "order",
        N_("causal masks"),
        N_(
            "-inf above the diagonal, bottom-right aligned so a KV-cache query sees every cached key"
        ),
        ("causal_mask",),
    ),
    (
        "03_derivations",
        "block",
        N_("GPT-2 block"),
        N_("one GPT-2 block in NumPy, equal to Hugging Face's with the same weights"),
        ("gpt2_block",),
    ),
    (
        "03_efficiency",
        "fast",
        "FlashAttention",
        N_(
            "tiles and an online softmax: exact attention with O(N^2 d^2 / M) HBM traffic instead of O(N^2)"
        ),
        ("hbm_traffic", "online_softmax_merge"),
    ),
    (
        "03_efficiency",
        "fast",
        N_("sparse, linear"),
        N_(
            "fewer scores (local, strided, BigBird) or a kernel trick (linear attention, Performer)"
        ),
        ("sparse_mask", "linear_attention", "performer_attention"),
    ),
    (
        "03_efficiency",
        "recurrent",
        "SSMs, Mamba",
        N_(
            "a discretised state space model is both a recurrence and a convolution; Mamba makes it selective"
        ),
        ("ssm_discretize", "ssm_kernel", "selective_scan"),
    ),
    (
        "03_efficiency",
        "memory",
        N_("KV cache"),
        N_("2 x layers x kv heads x head dim x tokens x bytes; MQA / GQA share kv heads"),
        ("kv_cache_bytes", "similarity_head_groups", "expected_attention_scores"),
    ),
    (
        "03_efficiency",
        "fast",
        N_("the trade-off map"),
        N_("attention is message passing on a graph; every method trades compute, memory and hops"),
        ("message_passing_attention", "efficiency_map"),
    ),
    (
        "04_implementation",
        "memory",
        N_("decoding step"),
        N_(
            "one decoding step: append k, v to the cache, attend from the new query, no mask needed"
        ),
        ("kv_cache_attention_step",),
    ),
    (
        "04_implementation",
        "memory",
        "GQA",
        N_("grouped-query attention: query head h uses kv head h // (H / H_kv)"),
        ("grouped_query_attention",),
    ),
    (
        "04_implementation",
        "block",
        N_("GPT in torch"),
        N_(
            "a torch GPT that loads Hugging Face GPT-2 weights, trains, and generates with its cache"
        ),
        ("GPT", "Trainer"),
    ),
    (
        "04_implementation",
        "fast",
        N_("Flash, tiled"),
        N_("FlashAttention's tiled forward in NumPy, and its inner loop as a Triton kernel"),
        ("flash_attention_numpy", "flash_attention_triton_forward"),
    ),
    (
        "04_implementation",
        "recurrent",
        N_("Mamba block"),
        N_("a Mamba block equal to Hugging Face's MambaMixer; the recurrence as a parallel scan"),
        ("MambaBlock", "parallel_scan"),
    ),
    (
        "05_experiments",
        "order",
        N_("length extrapolation"),
        N_("train short, test long: how each positional encoding copes"),
        ("apply_rope", "alibi_bias"),
    ),
    (
        "05_experiments",
        "scale",
        N_("scaling laws"),
        N_(
            "loss falls as a power law in parameters; Chinchilla: C = 6ND and about 20 tokens per parameter"
        ),
        ("fit_power_law", "chinchilla_optimal"),
    ),
    (
        "05_experiments",
        "scale",
        N_("in-context learning"),
        N_("linear attention with the right weights performs one step of gradient descent"),
        ("gd_step_linear_attention", "linear_attention_gd_weights"),
    ),
    (
        "05_experiments",
        "fast",
        N_("measured speed"),
        N_("KV-cache speed-up, and the time and peak memory of naive vs tiled attention"),
        ("generation_comparison", "attention_peak_memory"),
    ),
    (
        "05_experiments",
        "recurrent",
        N_("Mamba vs attention"),
        N_("selective copying and throughput against sequence length"),
        ("SelectiveCopyTask", "MambaLM"),
    ),
    (
        "06_review",
        "review",
        N_("self-check quiz"),
        N_("the questions of this zone, answered with the library"),
        ("quiz_mechanism", "quiz_order", "quiz_efficiency"),
    ),
)


def lecture_map() -> list[dict]:
    """LECTURE_MAP as rows: {"zone", "title", "thread", "tag", "idea", "functions"}, in course order."""
    return [
        {
            "zone": zone,
            "title": ZONE_TITLES[zone],
            "thread": thread,
            "tag": tag,
            "idea": idea,
            "functions": functions,
        }
        for zone, thread, tag, idea, functions in LECTURE_MAP
    ]


def lecture_table_markdown(exercises: Iterable[str] = ()) -> str:
    """A Markdown table idea -> attnlab functions -> zone, each zone linked to its notebook.

    Functions whose names are in `exercises` (e.g. the grader's registry) are marked with ✎:
    you wrote them yourself in that zone.
    """
    exercises = set(exercises)
    lines = ["| {} | {} | attnlab |".format(tr("zone"), tr("key idea")), "| --- | --- | --- |"]
    for row in lecture_map():
        # the zone's title and the idea are N_-marked data: translated here, where they are shown
        zone_name = tr(row["title"]).partition(" — ")[0]
        idea = tr(row["idea"])
        zone = f"[{zone_name}](../{row['zone']}/{row['zone']}.ipynb)"
        names = ", ".join(
            f"`{name}`" + (" ✎" if name in exercises else "") for name in row["functions"]
        )
        lines.append(f"| {zone} | {idea} | {names} |")
    return "\n".join(lines)
