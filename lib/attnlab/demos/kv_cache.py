"""The KV cache: its size for real models, decoding with and without it, and compressing it
(head grouping, pruning) on a small trained model (Zones 3-5)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn
from tqdm.auto import tqdm

from .._validate import as_float_array, require_ndim, require_positive_int
from ..functional import (
    grouped_query_attention,
    kv_cache_bytes,
)
from ..i18n import tr
from ..nn import GPT, Attention, GPTConfig

if TYPE_CHECKING:
    pass

__all__ = [
    "KV_MODEL_SHAPES",
    "attention_module_numpy",
    "decode_seconds_per_token",
    "generation_comparison",
    "hf_kv_cache_bytes",
    "incremental_attention",
    "kv_cache_memory",
    "kv_cache_speedup",
    "kv_cache_table",
]


# ============================================================================ KV cache
# Shapes from the published config.json files on the Hugging Face Hub (and the defaults of
# transformers' GPT2Config / LlamaConfig / MistralConfig / FalconConfig, which reproduce them):
#   openai-community/gpt2:        n_layer 12, n_head 12, n_embd 768 (head_dim 64), n_positions 1024
#   meta-llama/Llama-2-7b-hf:     32 layers, 32 heads, 32 key/value heads, hidden 4096 (head_dim 128),
#                                 max_position_embeddings 4096
#   mistralai/Mistral-7B-v0.1:    32 layers, 32 heads, 8 key/value heads, hidden 4096 (head_dim 128),
#                                 max_position_embeddings 32768, sliding_window 4096: each layer
#                                 attends to the last 4096 tokens only, and its rolling cache
#                                 keeps only those (Jiang et al. 2023)
#   meta-llama/Llama-3.1-8B:      32 layers, 32 heads, 8 key/value heads, hidden 4096 (head_dim 128),
#                                 no sliding window, max_position_embeddings 131072
#   meta-llama/Llama-2-70b-hf:    80 layers, 64 heads, 8 key/value heads, hidden 8192 (head_dim 128),
#                                 max_position_embeddings 4096
#   tiiuae/falcon-7b:             32 layers, 71 heads, multi_query (1 key/value head), hidden 4544 (head_dim 64)
# context_length: the longest context the model was trained for (n_positions or
# max_position_embeddings; Falcon-7B was trained on 2048 tokens, transformers' FalconConfig
# default). sliding_window is None for a model whose every layer attends to the whole context.
KV_MODEL_SHAPES = {
    "GPT-2 small": {
        "n_layers": 12,
        "n_heads": 12,
        "n_kv_heads": 12,
        "head_dim": 64,
        "context_length": 1024,
        "sliding_window": None,
        "source": "openai-community/gpt2 config.json",
    },
    "Llama-2-7B": {
        "n_layers": 32,
        "n_heads": 32,
        "n_kv_heads": 32,
        "head_dim": 128,
        "context_length": 4096,
        "sliding_window": None,
        "source": "meta-llama/Llama-2-7b-hf config.json",
    },
    "Mistral-7B": {
        "n_layers": 32,
        "n_heads": 32,
        "n_kv_heads": 8,
        "head_dim": 128,
        "context_length": 32768,
        "sliding_window": 4096,
        "source": "mistralai/Mistral-7B-v0.1 config.json",
    },
    "Llama-3.1-8B": {
        "n_layers": 32,
        "n_heads": 32,
        "n_kv_heads": 8,
        "head_dim": 128,
        "context_length": 131072,
        "sliding_window": None,
        "source": "meta-llama/Llama-3.1-8B config.json",
    },
    "Llama-2-70B": {
        "n_layers": 80,
        "n_heads": 64,
        "n_kv_heads": 8,
        "head_dim": 128,
        "context_length": 4096,
        "sliding_window": None,
        "source": "meta-llama/Llama-2-70b-hf config.json",
    },
    "Falcon-7B": {
        "n_layers": 32,
        "n_heads": 71,
        "n_kv_heads": 1,
        "head_dim": 64,
        "context_length": 2048,
        "sliding_window": None,
        "source": "tiiuae/falcon-7b config.json",
    },
}


def _attention_kind(n_heads: int, n_kv_heads: int) -> str:
    if n_kv_heads == n_heads:
        return "MHA"
    return "MQA" if n_kv_heads == 1 else "GQA"


def kv_cache_table(
    seq_lens: Sequence[int] = (2048, 8192), batch: int = 1, bytes_per_element: int = 2
) -> list[dict]:
    """KV cache size of each model in KV_MODEL_SHAPES, via attnlab.kv_cache_bytes.

    One dict per model: name, kind (MHA / GQA / MQA), the shape numbers, bytes_per_token
    (one token, all layers) and bytes_at_<L> for each L in seq_lens (every token kept, as in
    full attention, ignoring any sliding window), mha_bytes_at_<L> (the same, with one
    key/value head per query head) and kept_bytes_at_<L>: what the model really keeps, the
    last min(L, sliding_window) tokens for a model with a sliding window (a rolling cache),
    bytes_at_<L> otherwise.
    """
    rows = []
    for name, shape in KV_MODEL_SHAPES.items():
        row = {
            "name": name,
            "kind": _attention_kind(shape["n_heads"], shape["n_kv_heads"]),
            **shape,
        }
        row["bytes_per_token"] = kv_cache_bytes(
            shape["n_layers"], shape["n_kv_heads"], shape["head_dim"], 1, batch, bytes_per_element
        )
        for length in seq_lens:
            row[f"bytes_at_{length}"] = kv_cache_bytes(
                shape["n_layers"],
                shape["n_kv_heads"],
                shape["head_dim"],
                length,
                batch,
                bytes_per_element,
            )
            row[f"mha_bytes_at_{length}"] = kv_cache_bytes(
                shape["n_layers"],
                shape["n_heads"],
                shape["head_dim"],
                length,
                batch,
                bytes_per_element,
            )
            window = shape["sliding_window"]
            kept = length if window is None else min(length, window)
            row[f"kept_bytes_at_{length}"] = kv_cache_bytes(
                shape["n_layers"],
                shape["n_kv_heads"],
                shape["head_dim"],
                kept,
                batch,
                bytes_per_element,
            )
        rows.append(row)
    return rows


def hf_kv_cache_bytes(
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    head_dim: int = 16,
    seq_len: int = 10,
    batch: int = 2,
    seed: int = 0,
) -> int:
    """Bytes actually held by the KV cache of a tiny Hugging Face Mistral model (random weights, float32).

    Builds transformers' MistralForCausalLM with these shapes, runs one forward pass on
    `batch` random sequences of `seq_len` tokens with the cache on, and sums the bytes of
    every cached key and value tensor. An independent check of attnlab.kv_cache_bytes
    (with bytes_per_element=4). Needs transformers (no download: weights are random).
    """
    import torch
    from transformers import MistralConfig, MistralForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    config = MistralConfig(
        vocab_size=64,
        hidden_size=n_heads * head_dim,
        intermediate_size=32,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=max(64, seq_len),
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(config).eval()
    tokens = torch.randint(0, config.vocab_size, (batch, seq_len))
    with torch.no_grad():
        out = model(tokens, use_cache=True)
    cache = getattr(out, "past_key_values", None)
    total = 0
    for layer in cache.layers:
        total += layer.keys.numel() * layer.keys.element_size()
        total += layer.values.numel() * layer.values.element_size()
    return int(total)


# ============================================================================ KV cache
def incremental_attention(
    step: Callable[..., tuple[ArrayLike, np.ndarray, np.ndarray]],
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode token by token with a KV-cache step function, as a language model generates.

    step(q_new, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache) is
    attnlab.kv_cache_attention_step or the learner's version. q, k, v: (..., H, N, d); the
    caches start empty, (..., H, 0, d). Returns (out (..., H, N, d_v), k_cache, v_cache):
    row t of out is what token t saw with only tokens 0..t cached, so it must equal causal
    attention over the whole sequence.
    """
    q, k, v = (as_float_array(n, a) for n, a in (("q", q), ("k", k), ("v", v)))
    for name, a in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, a, 3)
    k_cache = np.zeros(k.shape[:-2] + (0, k.shape[-1]), dtype=k.dtype)
    v_cache = np.zeros(v.shape[:-2] + (0, v.shape[-1]), dtype=v.dtype)
    outs = []
    for t in range(q.shape[-2]):
        token = slice(t, t + 1)
        out, k_cache, v_cache = step(
            q[..., token, :], k[..., token, :], v[..., token, :], k_cache, v_cache
        )
        outs.append(np.asarray(out))
    return np.concatenate(outs, axis=-2), k_cache, v_cache


def attention_module_numpy(
    module: Attention,
    x: ArrayLike,
    gqa: Callable[..., ArrayLike] = grouped_query_attention,
) -> np.ndarray:
    """The output of an attnlab.Attention module recomputed in NumPy with `gqa`.

    Takes the module's fused qkv and output weights, splits the heads exactly as the module
    does, and calls gqa(q, k, v, causal=module.causal) (attnlab.grouped_query_attention or the
    learner's). x: (B, N, d_model) array. Only modules with absolute positions (learned,
    sinusoidal, none) qualify: RoPE and ALiBi act inside the attention.
    """
    if module.pos in ("rope", "alibi"):
        raise ValueError(
            f"attention_module_numpy needs a module without RoPE/ALiBi, got pos={module.pos!r}"
        )
    x = as_float_array("x", x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (batch, seq_len, d_model), got {x.shape}")
    batch, n, d_model = x.shape
    hd, n_heads, n_kv = module.head_dim, module.n_heads, module.n_kv_heads

    def linear(layer, inp):  # nn.Linear computes inp @ W^T + b
        out = inp @ layer.weight.detach().double().numpy().T
        if layer.bias is not None:
            out = out + layer.bias.detach().double().numpy()
        return out

    qkv = linear(module.qkv, x)
    q, k, v = np.split(qkv, [d_model, d_model + n_kv * hd], axis=-1)
    q = q.reshape(batch, n, n_heads, hd).transpose(0, 2, 1, 3)  # (B, H, N, hd)
    k = k.reshape(batch, n, n_kv, hd).transpose(0, 2, 1, 3)  # (B, H_kv, N, hd)
    v = v.reshape(batch, n, n_kv, hd).transpose(0, 2, 1, 3)
    heads = np.asarray(gqa(q, k, v, causal=module.causal))
    return linear(module.out, heads.transpose(0, 2, 1, 3).reshape(batch, n, d_model))


# ============================================================================ generation
def generation_comparison(
    model: GPT,
    prompt: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
) -> dict:
    """Generate with and without the KV cache from the same seed; compare tokens and time.

    Returns a dict: tokens_cached, tokens_uncached (B, N + max_new_tokens), same (bool),
    seconds_cached, seconds_uncached, speedup. With temperature > 0 both runs draw from the
    same random stream, so they must still pick the same tokens.
    """
    require_positive_int("max_new_tokens", max_new_tokens)
    result = {}
    for name, use_cache in (("cached", True), ("uncached", False)):
        torch.manual_seed(seed)
        start = time.perf_counter()
        tokens = model.generate(
            prompt, max_new_tokens, temperature=temperature, top_k=top_k, use_cache=use_cache
        )
        result[f"seconds_{name}"] = time.perf_counter() - start
        result[f"tokens_{name}"] = tokens
    result["same"] = bool(torch.equal(result["tokens_cached"], result["tokens_uncached"]))
    result["speedup"] = result["seconds_uncached"] / result["seconds_cached"]
    return result


# ============================================================================ KV cache
def kv_cache_speedup(
    model: GPT,
    prompt: torch.Tensor,
    new_tokens: Sequence[int] = (32, 64, 128, 256),
    repeats: int = 2,
    progress: bool = True,
) -> list[dict]:
    """Greedy generation of each number of new tokens with and without the KV cache, timed.

    Uses attnlab.generation_comparison; the best of `repeats` runs is kept. Returns one dict per
    length: new_tokens, seconds_cached, seconds_uncached, speedup, same (identical tokens).
    """
    require_positive_int("repeats", repeats)
    rows = []
    for n in tqdm(list(new_tokens), desc=tr("generating"), disable=not progress):
        runs = [
            generation_comparison(model, prompt, int(n), temperature=0.0) for _ in range(repeats)
        ]
        cached = min(r["seconds_cached"] for r in runs)
        uncached = min(r["seconds_uncached"] for r in runs)
        rows.append(
            {
                "new_tokens": int(n),
                "seconds_cached": cached,
                "seconds_uncached": uncached,
                "speedup": uncached / cached,
                "same": all(r["same"] for r in runs),
            }
        )
    return rows


def kv_cache_memory(
    config: GPTConfig, seq_len: int, batch: int = 1, kv_heads: Sequence[int] | None = None
) -> list[dict]:
    """The KV cache of one GPT per number of key/value heads: measured and by formula.

    For each n_kv_heads (default: n_heads (MHA), n_heads / 4 (GQA) if whole, and 1 (MQA)) a GPT
    is built (keep the config small: it is allocated), its preallocated cache for batch x
    seq_len is created (GPT.new_kv_cache) and its bytes are read; "formula" is
    attnlab.kv_cache_bytes with 4 bytes per float32 element. Also reports the attention
    parameters of one layer, which shrink with the key/value heads too.
    """
    seq_len = require_positive_int("seq_len", seq_len)
    if kv_heads is None:
        h = config.n_heads
        kv_heads = [h] + ([h // 4] if h % 4 == 0 and h >= 8 else []) + [1]
    rows = []
    for n_kv in kv_heads:
        cfg = config.replace(
            n_kv_heads=int(n_kv), context_length=max(config.context_length, seq_len)
        )
        model = GPT(cfg)
        measured = sum(layer_cache.nbytes for layer_cache in model.new_kv_cache(batch, seq_len))
        formula = kv_cache_bytes(
            cfg.n_layers, int(n_kv), cfg.head_dim, seq_len, batch, bytes_per_element=4
        )
        kind = "MHA" if n_kv == cfg.n_heads else ("MQA" if n_kv == 1 else "GQA")
        rows.append(
            {
                "kind": kind,
                "n_kv_heads": int(n_kv),
                "measured_bytes": measured,
                "formula_bytes": formula,
                "attention_params_per_layer": sum(
                    p.numel() for p in model.blocks[0].attn.parameters()
                ),
            }
        )
    return rows


@torch.no_grad()
def decode_seconds_per_token(
    model: nn.Module,
    context_len: int,
    batch: int = 8,
    n_steps: int = 8,
    repeats: int = 2,
    seed: int = 0,
) -> float:
    """Seconds to generate one more token (per sequence of a batch) after context_len tokens.

    The prompt is read first (not timed); then n_steps single-token steps are timed and the
    best of `repeats` averages is returned. attnlab.GPT steps with its KV cache, so each step
    attends over everything cached; attnlab.MambaLM steps its fixed-size recurrent state.
    """
    context_len = require_positive_int("context_len", context_len)
    vocab = model.config.vocab_size if isinstance(model, GPT) else model.vocab_size
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab, (batch, context_len), generator=g)
    tokens = torch.randint(0, vocab, (batch, n_steps), generator=g)
    was_training = model.training
    model.eval()
    best = math.inf
    for _ in range(require_positive_int("repeats", repeats)):
        if isinstance(model, GPT):
            cache = model.new_kv_cache(batch, context_len + n_steps)
            model(prompt, kv_cache=cache)
            start = time.perf_counter()
            for t in range(n_steps):
                model(tokens[:, t : t + 1], kv_cache=cache)
        else:
            _, state = model(prompt, return_state=True)
            start = time.perf_counter()
            for t in range(n_steps):
                _, state = model.step(tokens[:, t], state)
        best = min(best, (time.perf_counter() - start) / n_steps)
    model.train(was_training)
    return best
