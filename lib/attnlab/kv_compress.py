"""KV-cache compression: share key/value heads (MHA -> GQA) and prune cached entries.

Two ways to shrink the cache of a trained multi-head layer, with the output error each costs:
- Grouping heads. Mean-pool the key/value heads of each group into one (Ainslie et al. 2023,
  "GQA"); the cache then holds n_groups heads instead of n_heads. Uniform consecutive groups
  (heads 0-1, 2-3, ...) ignore which heads are alike; QCQA (Joshi et al. 2024, "QCQA:
  Quality and Capacity-aware grouped Query Attention") chooses groups that make the
  averaging error small. Here that choice is k-means over the heads' keys and values,
  started from the uniform groups, so its averaging error is never larger.
- Pruning entries. Keep only some cached positions. Expected Attention (Devoto et al. 2025,
  "Expected Attention: KV Cache Compression by Estimating Attention from Future Queries
  Distribution") models the upcoming queries as a Gaussian N(mu, Sigma) fitted to recent
  queries, for which E[exp(q.k / sqrt(d))] = exp(mu.k / sqrt(d) + k^T Sigma k / (2 d)) in
  closed form, and keeps the keys with the largest expected attention (times ||v||).
  Baselines: keep the most recent positions, or random ones.

Arrays are NumPy, per head: q, k, v (..., n_heads, N, d_head). Averaging keys of a group
equals using the averaged key projection weights (the projection is linear), so comparing
on activations is comparing converted layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._validate import as_float_array, require_positive_int
from .functional import scaled_dot_product_attention

if TYPE_CHECKING:
    import torch

    from .nn import GPT

__all__ = [
    "average_kv_heads",
    "compare_head_grouping",
    "compare_kv_pruning",
    "expected_attention_scores",
    "gaussian_query_estimate",
    "gpt_attention_qkv",
    "grouped_attention",
    "grouping_cost",
    "select_kv_to_keep",
    "similarity_head_groups",
    "uniform_head_groups",
]

PRUNING_METHODS = ("expected_attention", "recency", "random")


# ============================================================================ head grouping
def _check_heads(name: str, x, min_ndim: int = 3) -> np.ndarray:
    x = as_float_array(name, x)
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have shape (..., n_heads, N, d_head), got {x.shape}")
    return x


def _check_labels(labels, n_heads: int) -> np.ndarray:
    labels = np.asarray(labels)
    if (
        labels.shape != (n_heads,)
        or not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
    ):
        raise ValueError(f"labels must be {n_heads} non-negative group ids, got {labels!r}")
    return labels


def uniform_head_groups(n_heads: int, n_groups: int) -> np.ndarray:
    """Group id of each head for consecutive equal groups: head h -> h // (n_heads / n_groups)."""
    n_heads = require_positive_int("n_heads", n_heads)
    n_groups = require_positive_int("n_groups", n_groups)
    if n_heads % n_groups:
        raise ValueError(f"n_groups={n_groups} must divide n_heads={n_heads}")
    return np.arange(n_heads) // (n_heads // n_groups)


def _head_vectors(k, v) -> np.ndarray:
    """One row per head: its keys and values over all positions (and batch), flattened."""
    k = np.moveaxis(k, -3, 0)  # (n_heads, ..., N, d)
    v = np.moveaxis(v, -3, 0)
    return np.concatenate([k.reshape(k.shape[0], -1), v.reshape(v.shape[0], -1)], axis=1)


def grouping_cost(k: ArrayLike, v: ArrayLike, labels: ArrayLike) -> float:
    """Squared error of replacing every head's keys and values by its group mean:
    sum_h ||k_h - mean_{g(h)} k||^2 + ||v_h - mean_{g(h)} v||^2 (QCQA's weight-sharing error)."""
    k, v = _check_heads("k", k), _check_heads("v", v)
    X = _head_vectors(k, v)
    labels = _check_labels(labels, X.shape[0])
    cost = 0.0
    for g in np.unique(labels):
        members = X[labels == g]
        cost += float(np.sum((members - members.mean(axis=0)) ** 2))
    return cost


def similarity_head_groups(
    k: ArrayLike, v: ArrayLike, n_groups: int, n_iter: int = 50
) -> np.ndarray:
    """Group id of each head, grouping heads whose keys and values are alike (QCQA-style).

    k, v: (..., n_heads, N, d_head) calibration keys and values. Lloyd's k-means on the heads'
    flattened keys+values, started from the uniform consecutive groups: each iteration moves
    every head to the nearest group mean, which never increases grouping_cost, so the result
    is at least as good as uniform groups by that measure. Groups may end up of unequal sizes
    (QCQA allows that); the cache size is set by n_groups alone.
    """
    k, v = _check_heads("k", k), _check_heads("v", v)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {k.shape} and {v.shape}")
    X = _head_vectors(k, v)
    n_heads = X.shape[0]
    n_groups = require_positive_int("n_groups", n_groups)
    if n_groups > n_heads:
        raise ValueError(f"n_groups={n_groups} must be at most n_heads={n_heads}")
    labels = np.concatenate(
        [
            np.full(len(part), g)
            for g, part in enumerate(np.array_split(np.arange(n_heads), n_groups))
        ]
    )
    for _ in range(n_iter):
        centres = np.stack([X[labels == g].mean(axis=0) for g in range(n_groups)])
        distances = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)  # (n_heads, n_groups)
        # stay in the current group on a tie, so the cost can only go down
        current = distances[np.arange(n_heads), labels]
        best = distances.argmin(axis=1)
        new_labels = np.where(distances[np.arange(n_heads), best] < current, best, labels)
        for g in range(n_groups):  # a group left empty takes the head worst served by its group
            if not np.any(new_labels == g):
                own = distances[np.arange(n_heads), new_labels]
                movable = [h for h in range(n_heads) if np.sum(new_labels == new_labels[h]) > 1]
                new_labels[max(movable, key=lambda h: own[h])] = g
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return labels


def average_kv_heads(
    k: ArrayLike, v: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-pool the key and value heads of each group: (..., n_heads, N, d) -> (..., n_groups, N, d).

    labels[h] is the group of head h (groups numbered 0 .. n_groups-1). Works on cached keys
    and values or on per-head projection weights alike, since the projection is linear.
    """
    k, v = _check_heads("k", k), _check_heads("v", v)
    labels = _check_labels(labels, k.shape[-3])
    n_groups = int(labels.max()) + 1
    if len(np.unique(labels)) != n_groups:
        raise ValueError(f"labels must use every group id 0..{n_groups - 1}, got {labels!r}")
    k_groups = np.stack([k[..., labels == g, :, :].mean(axis=-3) for g in range(n_groups)], axis=-3)
    v_groups = np.stack([v[..., labels == g, :, :].mean(axis=-3) for g in range(n_groups)], axis=-3)
    return k_groups, v_groups


def grouped_attention(
    q: ArrayLike,
    k_groups: ArrayLike,
    v_groups: ArrayLike,
    labels: ArrayLike,
    causal: bool = False,
) -> np.ndarray:
    """Attention where query head h reads key/value head labels[h]:
    q (..., n_heads, N, d), k_groups, v_groups (..., n_groups, N_k, d) -> (..., n_heads, N, d_v).
    With labels = uniform_head_groups(...) this is ordinary grouped-query attention."""
    q = _check_heads("q", q)
    labels = _check_labels(labels, q.shape[-3])
    k_groups, v_groups = _check_heads("k_groups", k_groups), _check_heads("v_groups", v_groups)
    if labels.max() >= k_groups.shape[-3]:
        raise ValueError(
            f"labels refer to group {labels.max()} but k_groups has {k_groups.shape[-3]} heads"
        )
    out, _ = scaled_dot_product_attention(
        q, k_groups[..., labels, :, :], v_groups[..., labels, :, :], causal=causal
    )
    return out


def _relative_error(approx, exact) -> float:
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))


def compare_head_grouping(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    n_groups: int,
    causal: bool = True,
    calibration: tuple[ArrayLike, ArrayLike] | None = None,
) -> dict:
    """Output error of converting MHA to GQA with n_groups key/value heads, two ways.

    q, k, v: (..., n_heads, N, d_head) of a trained layer. Groups come from `calibration`
    = (k_cal, v_cal) if given (other data than the evaluation), else from k, v. Returns
    {"uniform": err, "similarity": err, "uniform_labels": ..., "similarity_labels": ...}
    with err = ||out_gqa - out_mha|| / ||out_mha||, at equal cache size (n_groups heads).
    """
    q, k, v = _check_heads("q", q), _check_heads("k", k), _check_heads("v", v)
    exact, _ = scaled_dot_product_attention(q, k, v, causal=causal)
    k_cal, v_cal = (k, v) if calibration is None else calibration
    n_heads = q.shape[-3]
    result = {}
    for name, labels in (
        ("uniform", uniform_head_groups(n_heads, n_groups)),
        ("similarity", similarity_head_groups(k_cal, v_cal, n_groups)),
    ):
        k_groups, v_groups = average_kv_heads(k, v, labels)
        result[name] = _relative_error(
            grouped_attention(q, k_groups, v_groups, labels, causal), exact
        )
        result[f"{name}_labels"] = labels
    return result


# ============================================================================ pruning
def gaussian_query_estimate(
    q_recent: ArrayLike, ridge: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (..., d) and covariance (..., d, d) of recent queries (..., n, d): the Gaussian model
    of the queries to come. A small ridge keeps the covariance positive definite."""
    q_recent = as_float_array("q_recent", q_recent)
    if q_recent.ndim < 2 or q_recent.shape[-2] < 2:
        raise ValueError(
            f"q_recent must hold at least 2 queries, shape (..., n, d), got {q_recent.shape}"
        )
    mean = q_recent.mean(axis=-2)
    centred = q_recent - mean[..., None, :]
    cov = np.swapaxes(centred, -1, -2) @ centred / (q_recent.shape[-2] - 1)
    return mean, cov + ridge * np.eye(q_recent.shape[-1])


def expected_attention_scores(
    k: ArrayLike, q_mean: ArrayLike, q_cov: ArrayLike, v: ArrayLike | None = None
) -> np.ndarray:
    """Expected attention each cached key will receive from queries q ~ N(q_mean, q_cov).

    E[exp(q.k / sqrt(d))] = exp(mu.k / sqrt(d) + k^T Sigma k / (2 d)) (the Gaussian moment
    generating function), normalised over keys like softmax weights. With v given, each
    score is multiplied by ||v_j||, since a key matters through the value it mixes in
    (Devoto et al. 2025). k: (..., N, d), q_mean (..., d), q_cov (..., d, d) -> (..., N).
    """
    k = as_float_array("k", k)
    q_mean, q_cov = as_float_array("q_mean", q_mean), as_float_array("q_cov", q_cov)
    d = k.shape[-1]
    if q_mean.shape[-1] != d or q_cov.shape[-2:] != (d, d):
        raise ValueError(
            f"q_mean (..., {d}) and q_cov (..., {d}, {d}) must match k {k.shape}, "
            f"got {q_mean.shape} and {q_cov.shape}"
        )
    log_scores = (k @ q_mean[..., :, None])[..., 0] / np.sqrt(d)
    log_scores = log_scores + np.einsum("...nd,...de,...ne->...n", k, q_cov, k) / (2 * d)
    scores = np.exp(log_scores - log_scores.max(axis=-1, keepdims=True))
    scores = scores / scores.sum(axis=-1, keepdims=True)
    if v is not None:
        scores = scores * np.linalg.norm(as_float_array("v", v), axis=-1)
    return scores


def select_kv_to_keep(
    k: ArrayLike,
    n_keep: int,
    method: str,
    q_recent: ArrayLike | None = None,
    v: ArrayLike | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices (..., n_keep), sorted, of the cached positions to keep out of k (..., N, d).

    method: "expected_attention" (needs q_recent (..., n, d): the top n_keep keys by
    expected_attention_scores, times ||v|| if v is given), "recency" (the last n_keep
    positions) or "random" (seeded).
    """
    k = as_float_array("k", k)
    n = k.shape[-2]
    n_keep = require_positive_int("n_keep", n_keep)
    if n_keep > n:
        raise ValueError(f"n_keep={n_keep} must be at most the number of cached positions {n}")
    if method not in PRUNING_METHODS:
        raise ValueError(f"method must be one of {PRUNING_METHODS}, got {method!r}")
    lead = k.shape[:-2]
    if method == "recency":
        keep = np.broadcast_to(np.arange(n - n_keep, n), lead + (n_keep,))
    elif method == "random":
        priority = np.random.default_rng(seed).random(lead + (n,))
        keep = np.argsort(priority, axis=-1)[..., :n_keep]
    else:
        if q_recent is None:
            raise ValueError(
                "method='expected_attention' needs q_recent, the recent queries (..., n, d)"
            )
        scores = expected_attention_scores(k, *gaussian_query_estimate(q_recent), v=v)
        keep = np.argsort(-scores, axis=-1)[..., :n_keep]
    return np.sort(keep, axis=-1)


def compare_kv_pruning(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    n_cache: int,
    prune_fraction: float = 0.6,
    n_recent: int = 16,
    seed: int = 0,
) -> dict:
    """Output error of pruning a KV cache by expected attention, by recency and at random.

    q, k, v: (..., N, d_head) of a trained causal layer (one sequence; leading axes = heads).
    When position n_cache arrives, the cache holds positions [0, n_cache) and prune_fraction
    of them are dropped. The following queries (positions n_cache .. N-1) then attend
    causally to the kept cache entries and to the new positions (never pruned), and the
    error is ||out_pruned - out_full|| / ||out_full|| over those queries. The Gaussian query
    estimate uses the n_recent queries just before n_cache (what is known when pruning).
    Returns {method: error}.
    """
    q, k, v = (as_float_array(name, a) for name, a in (("q", q), ("k", k), ("v", v)))
    n = q.shape[-2]
    n_cache = require_positive_int("n_cache", n_cache)
    if not n_cache < n:
        raise ValueError(f"n_cache={n_cache} must be smaller than the sequence length {n}")
    if not 0.0 <= prune_fraction < 1.0:
        raise ValueError(f"prune_fraction must be in [0, 1), got {prune_fraction}")
    n_recent = min(require_positive_int("n_recent", n_recent), n_cache)
    n_keep = max(1, round((1 - prune_fraction) * n_cache))
    full, _ = scaled_dot_product_attention(q[..., n_cache:, :], k, v, causal=True)
    errors = {}
    for method in PRUNING_METHODS:
        keep = select_kv_to_keep(
            k[..., :n_cache, :],
            n_keep,
            method,
            q_recent=q[..., n_cache - n_recent : n_cache, :],
            v=v[..., :n_cache, :],
            seed=seed,
        )
        positions = np.concatenate(
            [keep, np.broadcast_to(np.arange(n_cache, n), keep.shape[:-1] + (n - n_cache,))],
            axis=-1,
        )
        k_kept = np.take_along_axis(k, positions[..., None], axis=-2)
        v_kept = np.take_along_axis(v, positions[..., None], axis=-2)
        # bottom-right aligned causal mask: new query i sees the kept cache and new keys <= i
        pruned, _ = scaled_dot_product_attention(q[..., n_cache:, :], k_kept, v_kept, causal=True)
        errors[method] = _relative_error(pruned, full)
    return errors


# ============================================================================ from a GPT
def gpt_attention_qkv(
    model: GPT, idx: torch.Tensor
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-layer (q, k, v) NumPy arrays (batch, n_heads, N, head_dim) of an attnlab.GPT on idx.

    Read with forward hooks on each attention layer's fused qkv projection, then rotated by
    RoPE when the model uses it, i.e. exactly the q and k whose dot products the model takes.
    Key/value heads of a grouped model are repeated to n_heads. ALiBi adds a distance bias
    that is not part of q.k, so it is refused.
    """
    import torch

    from .nn import apply_rope_torch

    cfg = model.config
    if cfg.pos == "alibi":
        raise ValueError("gpt_attention_qkv: the model uses ALiBi, whose bias is not part of q.k")
    outputs = []
    hooks = [
        block.attn.qkv.register_forward_hook(lambda mod, inp, out: outputs.append(out))
        for block in model.blocks
    ]
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for hook in hooks:
            hook.remove()
    batch, n = idx.shape
    hd, kv_width = cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    result = []
    for out in outputs:
        q, k, v = out.split([cfg.d_model, kv_width, kv_width], dim=-1)
        q = q.view(batch, n, cfg.n_heads, hd).transpose(1, 2)
        k = k.view(batch, n, cfg.n_kv_heads, hd).transpose(1, 2)
        v = v.view(batch, n, cfg.n_kv_heads, hd).transpose(1, 2)
        if cfg.pos == "rope":
            positions = torch.arange(n)
            q, k = (
                apply_rope_torch(q, positions, cfg.rope_base),
                apply_rope_torch(k, positions, cfg.rope_base),
            )
        group = cfg.n_heads // cfg.n_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        result.append(tuple(t.double().numpy() for t in (q, k, v)))
    return result
