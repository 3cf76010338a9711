"""Measured demos of Zone 3b (efficiency): memory of tiled attention, Performer error vs m,
linear vs quadratic timing, Mamba's selective parameters, KV cache sizes of real models,
attention as message passing and the efficiency / expressiveness / memory map.

Every function computes its numbers when called; nothing here is a pasted result.
"""

from __future__ import annotations

import time

import numpy as np

from ..efficient import linear_attention, performer_attention, sparse_mask, sparse_mask_nnz
from ..flash import flash_attention_numpy
from ..functional import causal_mask, kv_cache_bytes, scaled_dot_product_attention, softmax
from ..kv_compress import (
    compare_head_grouping,
    compare_kv_pruning,
    gpt_attention_qkv,
    grouping_cost,
)
from ..measure import peak_memory

__all__ = [
    "KV_MODEL_SHAPES",
    "attention_peak_memory",
    "efficiency_map",
    "graph_hops",
    "hf_kv_cache_bytes",
    "kv_cache_table",
    "kv_compression_errors",
    "mamba_selective_inputs",
    "message_passing_attention",
    "performer_error_curve",
    "time_linear_vs_quadratic",
    "train_tiny_char_gpt",
]


# ============================================================================ FlashAttention
def attention_peak_memory(
    n: int, d: int = 64, block_size: int = 64, causal: bool = False, seed: int = 0
) -> dict:
    """Measure the peak extra memory of standard vs tiled attention on random (n, d) float64 inputs.

    Returns a dict with standard_bytes, flash_bytes (peaks measured by tracemalloc, the inputs
    excluded), scores_bytes (one (n, n) float64 matrix, for scale) and max_abs_diff between the
    two outputs. Standard attention holds several (n, n) arrays; the tiled one only
    (block, block) tiles and O(n d) state.
    """
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    _, standard = peak_memory(scaled_dot_product_attention, q, k, v, causal=causal)
    _, flash = peak_memory(flash_attention_numpy, q, k, v, causal=causal, block_size=block_size)
    out_standard, _ = scaled_dot_product_attention(q, k, v, causal=causal)
    out_flash = flash_attention_numpy(q, k, v, causal=causal, block_size=block_size)
    return {
        "n": n,
        "standard_bytes": standard,
        "flash_bytes": flash,
        "scores_bytes": n * n * 8,
        "max_abs_diff": float(np.abs(out_standard - out_flash).max()),
    }


# ============================================================================ Performer
def performer_error_curve(
    n: int = 128,
    d: int = 16,
    ms=(8, 32, 128, 512, 2048),
    qk_std: float = 0.5,
    n_seeds: int = 6,
    seed: int = 0,
) -> dict:
    """Relative error of Performer attention vs exact softmax attention, for each number of features m.

    q, k ~ N(0, qk_std^2) and v ~ N(0, 1), all (n, d), fixed by `seed`; for each m the error
    ||performer - exact||_F / ||exact||_F is averaged over `n_seeds` draws of the random
    features, i.i.d. and orthogonal. Returns {"m", "iid", "orthogonal"} (arrays) and the
    log-log slopes {"iid_slope", "orthogonal_slope"} fitted on the larger half of the m values. The estimator's variance grows like
    exp(|q|^2 + |k|^2) / sqrt(d) (Choromanski et al. 2021), so small q, k keep it usable; its
    error falls like 1/sqrt(m) (slope -1/2) once m is large enough.
    """
    rng = np.random.default_rng(seed)
    q, k = (qk_std * rng.standard_normal((n, d)) for _ in range(2))
    v = rng.standard_normal((n, d))
    exact, _ = scaled_dot_product_attention(q, k, v)
    norm = np.linalg.norm(exact)
    result = {"m": np.asarray(ms)}
    for name, orthogonal in (("iid", False), ("orthogonal", True)):
        errors = []
        for m in ms:
            errs = [
                np.linalg.norm(
                    performer_attention(q, k, v, m=m, orthogonal=orthogonal, seed=1000 + s) - exact
                )
                / norm
                for s in range(n_seeds)
            ]
            errors.append(float(np.mean(errs)))
        errors = np.asarray(errors)
        result[name] = errors
        tail = slice(len(ms) // 2, None)  # the larger half of the m values
        result[f"{name}_slope"] = float(
            np.polyfit(np.log(np.asarray(ms)[tail]), np.log(errors[tail]), 1)[0]
        )
    return result


# ============================================================================ linear attention
def _best_time(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_linear_vs_quadratic(
    ns=(256, 512, 1024, 2048), d: int = 32, repeats: int = 7, seed: int = 0
) -> list[dict]:
    """Wall-clock seconds of softmax attention (O(N^2 d)) vs linear attention (O(N d^2)).

    Best of `repeats` runs per size on random float32 (N, d) inputs; returns one dict per N
    with quadratic_s, linear_s and their ratio. BLAS runs on one thread when threadpoolctl is
    installed: multi-threaded small matrix products are erratic on a busy machine. Timings vary
    from machine to machine; the trend with N is the point.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: time with the default threads
        threadpool_limits = None
    if threadpool_limits is None:
        return _time_linear_vs_quadratic(ns, d, repeats, seed)
    with threadpool_limits(limits=1):
        return _time_linear_vs_quadratic(ns, d, repeats, seed)


def _time_linear_vs_quadratic(ns, d, repeats, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for n in ns:
        q, k, v = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(3))
        linear_attention(q, k, v)  # warm up caches and allocator before timing
        scaled_dot_product_attention(q, k, v)
        quad = _best_time(lambda q=q, k=k, v=v: scaled_dot_product_attention(q, k, v), repeats)
        lin = _best_time(lambda q=q, k=k, v=v: linear_attention(q, k, v), repeats)
        rows.append({"n": n, "quadratic_s": quad, "linear_s": lin, "ratio": quad / lin})
    return rows


# ============================================================================ Mamba
def mamba_selective_inputs(
    tokens, d_model: int = 16, d_state: int = 8, vocab_size: int = 16, seed: int = 0
) -> dict:
    """What a (randomly initialised) Mamba block feeds its selective scan for a token sequence.

    tokens: 1-D integer sequence. A fixed random embedding (seeded) maps tokens to
    (1, L, d_model); an attnlab.MambaBlock (seeded) computes u, delta (1, d_inner, L),
    A (d_inner, d_state), B, C (1, d_state, L) and D. Returns them as float64 NumPy arrays,
    plus "torch_out": the block's own scan output y (1, d_inner, L) from
    attnlab.selective_scan_torch, for comparison with the NumPy selective_scan.
    """
    import torch

    from ..mamba import MambaBlock, selective_scan_torch

    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"tokens must be a 1-D integer sequence, got {tokens.dtype} {tokens.shape}"
        )
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(
            f"tokens must lie in [0, vocab_size={vocab_size}), got {tokens.min()}..{tokens.max()}"
        )
    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(vocab_size, d_model, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)
    block = MambaBlock(d_model=d_model, d_state=d_state).double().eval()
    x = embedding[torch.as_tensor(tokens)][None]  # (1, L, d_model)
    with torch.no_grad():
        s = block.scan_inputs(x)
        y = selective_scan_torch(s["u"], s["delta"], s["A"], s["B"], s["C"], s["D"])
    arrays = {name: s[name].detach().numpy() for name in ("u", "delta", "A", "B", "C", "D")}
    arrays["torch_out"] = y.detach().numpy()
    return arrays


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


def kv_cache_table(seq_lens=(2048, 8192), batch: int = 1, bytes_per_element: int = 2) -> list[dict]:
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


def train_tiny_char_gpt(
    steps: int = 300,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 8,
    context_length: int = 128,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
):
    """Train a tiny character-level GPT (RoPE, 8 heads of width 8) on the built-in corpus.

    The corpus is attnlab.stdlib_corpus (Python standard-library source, 200k characters).
    `steps` AdamW steps on random windows of `context_length` characters, with a tqdm bar.
    Runs torch on one thread (faster for a model this small, and robust on a busy 2-core
    machine), restoring the thread count afterwards. Returns (model, corpus, history).
    """
    import torch

    from ..data import stdlib_corpus
    from ..nn import GPT, GPTConfig
    from ..train import TrainConfig, Trainer, torch_threads

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
    model,
    corpus,
    n_groups: int = 4,
    prune_fractions=(0.3, 0.6, 0.9),
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
    import torch

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


# ============================================================================ message passing
def message_passing_attention(q, k, v, edges) -> np.ndarray:
    """Attention written as message passing on a graph, one node at a time.

    edges: boolean (N, N); edges[i, j] = True means node j sends a message to node i (query i
    may attend key j). Node j's message is its value v_j; node i scores each incoming message
    by q_i . k_j / sqrt(d), normalises the scores over its in-neighbours with a softmax and
    sums the weighted messages. A node with no in-neighbour gets 0. q, k (N, d), v (N, d_v).
    Equal to scaled_dot_product_attention(q, k, v, mask=edges): a mask IS the edge set.
    """
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    edges = np.asarray(edges, dtype=bool)
    n = q.shape[0]
    if q.ndim != 2 or k.shape != q.shape or v.ndim != 2 or v.shape[0] != n:
        raise ValueError(
            f"q, k must be (N, d) and v (N, d_v), got q {q.shape}, k {k.shape}, v {v.shape}"
        )
    if edges.shape != (n, n):
        raise ValueError(f"edges must have shape (N, N) = {(n, n)}, got {edges.shape}")
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        senders = np.flatnonzero(edges[i])
        if senders.size == 0:
            continue
        scores = np.array([q[i] @ k[j] for j in senders]) / np.sqrt(q.shape[1])
        weights = softmax(scores)
        for w, j in zip(weights, senders):
            out[i] += w * v[j]
    return out


def graph_hops(mask) -> float:
    """Layers needed before every token can influence every token it may ever see, for a mask.

    mask: boolean (N, N), mask[i, j] = query i reads key j, i.e. an edge j -> i. Residual
    connections keep each token's own information, so one layer maps "i has heard from j" to
    R' = R | (mask @ R). Returns the smallest L with R_L equal to its limit when that limit is
    everything (all pairs; j <= i when the mask is causal), else inf (some token can never
    reach another, e.g. a purely strided pattern). Full attention gives 1.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"mask must be a square boolean (N, N) array, got shape {mask.shape}")
    n = mask.shape[0]
    is_causal = not np.any(np.triu(mask, k=1))
    target = causal_mask(n) if is_causal else np.ones((n, n), dtype=bool)
    step = mask.astype(np.float32)
    reach = mask | np.eye(n, dtype=bool)
    hops = 1
    while not np.array_equal(reach, target):
        new = reach | ((step @ reach.astype(np.float32)) > 0)
        if np.array_equal(new, reach):
            return float("inf")
        reach, hops = new, hops + 1
    return float(hops)


# ============================================================================ the map
def efficiency_map(
    n: int = 4096,
    d: int = 64,
    window: int = 64,
    n_random: int = 3,
    m: int = 256,
    d_state: int = 16,
    n_graph: int = 256,
    graph_window: int = 8,
) -> list[dict]:
    """Cost, memory and expressiveness of attention variants for one head of width d at length n.

    For each method: cost = multiply-adds of one layer over the whole sequence; train_memory =
    elements of the intermediates that grow with n (score matrix, mask entries, or the
    summary state); decode_state = elements kept per head to produce the next token at
    context n (KV cache or recurrent state); exactness in words; hops = layers before every
    token can reach every other, measured with graph_hops on masks of n_graph tokens
    (window graph_window for the sparse patterns, so the graphs stay small). Sparse counts come
    from attnlab.sparse_mask_nnz; a causal model is assumed for decoding.
    """
    stride = int(np.sqrt(n))
    local_nnz = sparse_mask_nnz(n, "local", window=window)
    strided_nnz = sparse_mask_nnz(n, "strided", stride=stride)
    bigbird_nnz = sparse_mask_nnz(n, "bigbird", window=window, n_global=2, n_random=n_random)
    g_stride = int(np.sqrt(n_graph))
    full_graph = np.ones((n_graph, n_graph), dtype=bool)
    local_graph = sparse_mask(n_graph, "local", window=graph_window)
    factor_graph = local_graph | sparse_mask(n_graph, "strided", stride=g_stride)
    bigbird_graph = sparse_mask(
        n_graph, "bigbird", window=graph_window, n_global=2, n_random=n_random
    )
    full_hops = graph_hops(full_graph)
    rows = [
        {
            "method": "full softmax",
            "cost": 2 * n * n * d,
            "train_memory": n * n,
            "decode_state": 2 * n * d,
            "exact": "exact",
            "hops": full_hops,
        },
        {
            "method": "FlashAttention",
            "cost": 2 * n * n * d,
            "train_memory": 2 * n,
            "decode_state": 2 * n * d,
            "exact": "exact",
            "hops": full_hops,
        },
        {
            "method": "GQA (4 query heads per kv head)",
            "cost": 2 * n * n * d,
            "train_memory": n * n,
            "decode_state": 2 * n * d // 4,
            "exact": "exact (fewer kv heads)",
            "hops": full_hops,
        },
        {
            "method": f"local window {window}",
            "cost": 2 * local_nnz * d,
            "train_memory": local_nnz,
            "decode_state": 2 * (window + 1) * d,
            "exact": "exact on the pattern",
            "hops": graph_hops(local_graph),
        },
        {
            "method": f"local + strided {stride}",
            "cost": 2 * (local_nnz + strided_nnz) * d,
            "train_memory": local_nnz + strided_nnz,
            "decode_state": 2 * n * d,
            "exact": "exact on the pattern",
            "hops": graph_hops(factor_graph),
        },
        {
            "method": "BigBird",
            "cost": 2 * bigbird_nnz * d,
            "train_memory": bigbird_nnz,
            "decode_state": 2 * n * d,
            "exact": "exact on the pattern",
            "hops": graph_hops(bigbird_graph),
        },
        {
            "method": "linear (elu+1)",
            "cost": 2 * n * d * d,
            "train_memory": d * d + d,
            "decode_state": d * d + d,
            "exact": "another kernel, not softmax",
            "hops": full_hops,
        },
        {
            "method": f"Performer m={m}",
            "cost": 2 * n * m * d + 2 * n * m * d,
            "train_memory": n * m,
            "decode_state": m * d + m,
            "exact": "random-feature estimate (kernel unbiased, output not)",
            "hops": full_hops,
        },
        {
            "method": f"SSM / Mamba (d_state={d_state})",
            "cost": 3 * n * d * d_state,
            "train_memory": d * d_state,
            "decode_state": d * d_state,
            "exact": "a different model (fixed-size memory)",
            "hops": full_hops,
        },
    ]
    for row in rows:
        row["n"] = n
    return rows
