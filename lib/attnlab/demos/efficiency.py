"""The cost of attention measured: peak memory of tiled attention, Performer's error, linear vs
quadratic time, attention as message passing, and the efficiency map (Zones 3 and 5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from .._validate import require_positive_int
from ..efficient import linear_attention, performer_attention, sparse_mask, sparse_mask_nnz
from ..flash import flash_attention_numpy
from ..functional import causal_mask, scaled_dot_product_attention, softmax
from ..i18n import tr
from ..measure import best_time, peak_memory
from ..nn import GPT
from .kv_cache import decode_seconds_per_token

__all__ = [
    "attention_cost_vs_length",
    "attention_peak_memory",
    "efficiency_map",
    "graph_hops",
    "message_passing_attention",
    "performer_error_curve",
    "throughput_vs_length",
    "time_linear_vs_quadratic",
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
    ms: Sequence[int] = (8, 32, 128, 512, 2048),
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
def time_linear_vs_quadratic(
    ns: Sequence[int] = (256, 512, 1024, 2048), d: int = 32, repeats: int = 7, seed: int = 0
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
        quad = best_time(scaled_dot_product_attention, q, k, v, repeats=repeats)
        lin = best_time(linear_attention, q, k, v, repeats=repeats)
        rows.append({"n": n, "quadratic_s": quad, "linear_s": lin, "ratio": quad / lin})
    return rows


# ============================================================================ message passing
def message_passing_attention(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, edges: ArrayLike
) -> np.ndarray:
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


def graph_hops(mask: ArrayLike) -> float:
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


# ============================================================================ FlashAttention
def attention_cost_vs_length(
    lengths: Sequence[int] = (256, 512, 1024, 2048),
    d: int = 64,
    block_size: int = 64,
    causal: bool = False,
    repeats: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Time and peak memory of standard vs tiled attention (NumPy) at each sequence length.

    Standard: attnlab.scaled_dot_product_attention, which builds the (N, N) scores and weights.
    Tiled: attnlab.flash_attention_numpy with block_size, which never does. Times are the best
    of `repeats`; peak memory is measured in a separate run with tracemalloc
    (attnlab.peak_memory), inputs excluded. Returns one dict per N: n, seconds_standard,
    seconds_tiled, peak_bytes_standard, peak_bytes_tiled, max_abs_diff.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in tqdm(list(lengths), desc=tr("attention"), disable=not progress):
        n = require_positive_int("lengths", int(n))
        q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
        (standard, _), standard_peak = peak_memory(
            scaled_dot_product_attention, q, k, v, causal=causal
        )
        tiled, tiled_peak = peak_memory(
            flash_attention_numpy, q, k, v, causal=causal, block_size=block_size
        )
        rows.append(
            {
                "n": n,
                "seconds_standard": best_time(
                    scaled_dot_product_attention, q, k, v, causal=causal, repeats=repeats
                ),
                "seconds_tiled": best_time(
                    flash_attention_numpy,
                    q,
                    k,
                    v,
                    causal=causal,
                    block_size=block_size,
                    repeats=repeats,
                ),
                "peak_bytes_standard": standard_peak,
                "peak_bytes_tiled": tiled_peak,
                "max_abs_diff": float(np.abs(standard - tiled).max()),
            }
        )
    return rows


@torch.no_grad()
def throughput_vs_length(
    models: dict,
    lengths: Sequence[int] = (256, 512, 1024, 2048, 4096),
    batch: int = 8,
    repeats: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Prefill throughput and per-token decoding time of each model at each sequence length.

    models: name -> attnlab.GPT or attnlab.MambaLM (a GPT needs context_length >= max(lengths)
    + 8). For each length L: "prefill_tokens_per_s", a forward pass over a batch of L-token
    sequences (tokens processed per second, best of `repeats`), and "decode_ms_per_token"
    (decode_seconds_per_token with batch sequences). Returns {name: {metric: [value per L]}}.
    """
    g = torch.Generator().manual_seed(seed)
    result = {}
    for name, model in models.items():
        vocab = model.config.vocab_size if isinstance(model, GPT) else model.vocab_size
        model.eval()
        prefill, decode = [], []
        for n in tqdm(list(lengths), desc=name, disable=not progress):
            idx = torch.randint(0, vocab, (batch, int(n)), generator=g)
            seconds = best_time(model, idx, repeats=repeats)
            prefill.append(batch * int(n) / seconds)
            decode.append(
                1e3
                * decode_seconds_per_token(model, int(n), batch=batch, repeats=repeats, seed=seed)
            )
        result[name] = {"prefill_tokens_per_s": prefill, "decode_ms_per_token": decode}
    return result
