"""Compressing the KV cache on a small trained model: how much do grouping heads (GQA-style
averaging) and pruning cached keys cost in attention error (Zone 3b)?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..kv_compress import (
    compare_head_grouping,
    compare_kv_pruning,
    gpt_attention_qkv,
    grouping_cost,
)
from ..nn import GPT, GPTConfig
from ..train import TrainConfig, Trainer

if TYPE_CHECKING:
    from ..data import CharCorpus

__all__ = ["kv_compression_errors", "train_tiny_char_gpt"]


def train_tiny_char_gpt(
    steps: int = 300,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 8,
    context_length: int = 128,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> tuple[GPT, CharCorpus, dict]:
    """Train a tiny character-level GPT (RoPE, 8 heads of width 8) on the built-in corpus.

    The corpus is attnlab.stdlib_corpus (Python standard-library source, 200k characters).
    `steps` AdamW steps on random windows of `context_length` characters, with a tqdm bar.
    Runs torch on one thread (faster for a model this small, and robust on a busy 2-core
    machine), restoring the thread count afterwards. Returns (model, corpus, history).
    """

    from ..data import stdlib_corpus
    from ..nn import GPT
    from ..train import torch_threads

    corpus = stdlib_corpus(max_chars=200_000)
    config = GPTConfig.modern_style(
        vocab_size=corpus.vocab_size,
        context_length=context_length,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
    )
    torch.manual_seed(seed)
    model = GPT(config)
    with torch_threads(1):
        history = Trainer(
            model,
            lambda g: corpus.batch(batch_size, context_length, g),
            TrainConfig(
                steps=steps,
                lr=3e-3,
                warmup_steps=max(1, steps // 10),
                eval_every=0,
                seed=seed,
                progress=progress,
            ),
        ).fit()
    model.eval()
    return model, corpus, history


def kv_compression_errors(
    model: GPT,
    corpus: CharCorpus,
    n_groups: int = 4,
    prune_fractions: Sequence[float] = (0.3, 0.6, 0.9),
    n_sequences: int = 4,
    seed: int = 0,
) -> dict:
    """Measured output errors of KV-cache compression, layer by layer, on held-out text.

    Head grouping (MHA -> n_groups key/value heads): groups chosen on training windows
    (calibration), errors measured on validation windows, uniform consecutive groups vs
    similarity (QCQA-style) groups, via attnlab.compare_head_grouping. Pruning: when position
    3/4 of the window arrives, a fraction of the cache is dropped by expected attention, by
    recency or at random (attnlab.compare_kv_pruning), errors averaged over n_sequences
    validation windows. Returns {"grouping": [one dict per layer: layer, uniform, similarity,
    uniform_labels, similarity_labels, and uniform_cost, similarity_cost = attnlab.grouping_cost
    on the calibration keys and values], "pruning": [one dict per (layer, fraction): layer,
    fraction, expected_attention, recency, random]}; errors are ||approx - exact|| / ||exact||.
    """

    n = model.config.context_length
    generator = torch.Generator().manual_seed(seed)
    x_cal, _ = corpus.batch(n_sequences, n, generator, split="train")
    x_val, _ = corpus.batch(n_sequences, n, generator, split="val")
    result = {"grouping": [], "pruning": []}
    for layer, ((_, k_cal, v_cal), (q, k, v)) in enumerate(
        zip(gpt_attention_qkv(model, x_cal), gpt_attention_qkv(model, x_val))
    ):
        grouping = compare_head_grouping(q, k, v, n_groups, causal=True, calibration=(k_cal, v_cal))
        costs = {
            f"{name}_cost": grouping_cost(k_cal, v_cal, grouping[f"{name}_labels"])
            for name in ("uniform", "similarity")
        }
        result["grouping"].append({"layer": layer, **grouping, **costs})
        for fraction in prune_fractions:
            per_sequence = [
                compare_kv_pruning(
                    q[b], k[b], v[b], n_cache=3 * n // 4, prune_fraction=fraction, seed=seed
                )
                for b in range(q.shape[0])
            ]
            result["pruning"].append(
                {
                    "layer": layer,
                    "fraction": fraction,
                    **{m: float(np.mean([p[m] for p in per_sequence])) for m in per_sequence[0]},
                }
            )
    return result
