"""NumPy reference implementations of attention: the formulas of the lecture, one function each.

Softmax and masks, scaled dot-product and multi-head attention, the score statistics and the
softmax Jacobian of the derivations, a KV-cache decoding step and grouped-query attention.
The rest of a Transformer block (norms, activations, SwiGLU, the GPT-2 block) is in
attnlab.blocks.

Shapes follow the course convention `(..., N, d)`: any leading batch/head axes, then
sequence length N, then feature width d. float32 and float64 both work; the result keeps
the input's floating dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from ._validate import (
    as_float_array,
    as_qkv,
    require_divides,
    require_finite,
    require_matrix,
    require_ndim,
    require_positive_int,
)

__all__ = [
    "causal_mask",
    "grouped_query_attention",
    "kv_cache_attention_step",
    "kv_cache_bytes",
    "multi_head_attention",
    "padding_mask",
    "permutation_check",
    "qkv_attention",
    "scaled_dot_product_attention",
    "score_statistics",
    "score_variance",
    "softmax",
    "softmax_jacobian",
]


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """exp(x_i) / sum_j exp(x_j) along `axis`, stable for any magnitude.

    Subtracting the row maximum first keeps exp() from overflowing. Entries equal to -inf
    get weight 0, and a row that is entirely -inf (a query that may see no key) gives all
    zeros instead of NaN.
    """
    x = as_float_array("x", x)
    if np.isnan(x).any():
        raise ValueError("x contains NaN; softmax of NaN is undefined")
    if np.isposinf(x).any():
        raise ValueError("x contains +inf; softmax of +inf is undefined (use -inf to mask)")
    row_max = np.max(x, axis=axis, keepdims=True)
    row_max = np.where(np.isneginf(row_max), 0.0, row_max)  # all -inf row: keep exp() at 0
    with np.errstate(over="ignore"):  # (-huge) - huge rounds to -inf: exp() gives 0, as it should
        e = np.exp(x - row_max)
    total = np.sum(e, axis=axis, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def causal_mask(n_q: int, n_k: int | None = None) -> np.ndarray:
    """Boolean (n_q, n_k) mask, True where query i may attend key j.

    Bottom-right aligned: j <= i + (n_k - n_q), so with a KV cache the single newest
    query sees every cached key. With n_q == n_k this is the usual lower triangle.
    """
    from ._validate import require_positive_int

    n_q = require_positive_int("n_q", n_q)
    n_k = n_q if n_k is None else require_positive_int("n_k", n_k)
    i = np.arange(n_q)[:, None]
    j = np.arange(n_k)[None, :]
    return j <= i + (n_k - n_q)


def scaled_dot_product_attention(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, mask: ArrayLike | None = None, causal: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q k^T / sqrt(d_k)) v, returning (out, weights).

    q: (..., Nq, d_k), k: (..., Nk, d_k), v: (..., Nk, d_v).
    mask: boolean, True = may attend, broadcastable to (..., Nq, Nk).
    causal: also apply the bottom-right aligned causal mask.
    Returns out (..., Nq, d_v) and weights (..., Nq, Nk); a query with no visible key
    gets zero weights and a zero output. NaN/inf in q, k, v, or scores that overflow the
    float range, raise ValueError.
    """
    q, k, v = as_qkv(q, k, v)
    for name, arr in (("q", q), ("k", k), ("v", v)):
        require_finite(name, arr)  # to hide a key, use mask= rather than an inf
    dtype = np.result_type(q, k, v)
    n_q, n_k = q.shape[-2], k.shape[-2]
    # math.sqrt gives a Python float, which keeps float32 inputs in float32 (np.sqrt would not)
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        scores = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])
    if not np.isfinite(scores).all():  # an overflow to -inf would silently act as a mask
        raise ValueError(
            f"the scores q @ k^T / sqrt(d_k) overflow {np.result_type(q, k)}: q and k are too large"
        )
    allowed = np.ones((n_q, n_k), dtype=bool)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
        try:
            allowed = np.broadcast_to(mask, np.broadcast_shapes(mask.shape, scores.shape))
        except ValueError:
            raise ValueError(
                f"mask of shape {mask.shape} does not broadcast to scores shape {scores.shape}"
            ) from None
    if causal:
        allowed = allowed & causal_mask(n_q, n_k)
    scores = np.where(allowed, scores, -np.inf)
    weights = softmax(scores, axis=-1).astype(dtype, copy=False)
    return (weights @ v).astype(dtype, copy=False), weights


# ---------------------------------------------------------------------------------------------
# Multi-head attention, norms, activations, masks and the GPT-2 block (zones 1-4)
# ---------------------------------------------------------------------------------------------


def _split_heads(x: np.ndarray, n_heads: int) -> np.ndarray:
    """(..., N, n_heads * d_head) -> (..., n_heads, N, d_head): each head gets its own slice."""
    *lead, n, width = x.shape
    x = x.reshape(*lead, n, n_heads, width // n_heads)
    return np.swapaxes(x, -3, -2)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """(..., n_heads, N, d_head) -> (..., N, n_heads * d_head): the heads side by side again."""
    x = np.swapaxes(x, -3, -2)
    *lead, n, n_heads, d_head = x.shape
    return x.reshape(*lead, n, n_heads * d_head)


def multi_head_attention(
    x: ArrayLike,
    w_q: ArrayLike,
    w_k: ArrayLike,
    w_v: ArrayLike,
    w_o: ArrayLike,
    n_heads: int,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head self-attention: project, split into heads, attend per head, merge, project.

    Row-vector convention q = x @ w_q. x: (..., N, d_model); w_q, w_k, w_v, w_o:
    (d_model, d_model); n_heads must divide d_model (each head has width d_model // n_heads).
    Returns out (..., N, d_model) and weights (..., n_heads, N, N).
    """
    x = as_float_array("x", x)
    require_ndim("x", x, 2)
    d_model = x.shape[-1]
    n_heads = require_positive_int("n_heads", n_heads)
    require_divides("n_heads", n_heads, "d_model", d_model)
    weights = {}
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o)):
        weights[name] = as_float_array(name, w)
        require_matrix(name, weights[name], (d_model, d_model))
    q = _split_heads(x @ weights["w_q"], n_heads)  # (..., H, N, d_head)
    k = _split_heads(x @ weights["w_k"], n_heads)
    v = _split_heads(x @ weights["w_v"], n_heads)
    heads, attn = scaled_dot_product_attention(q, k, v, causal=causal)
    return _merge_heads(heads) @ weights["w_o"], attn


def padding_mask(lengths: ArrayLike, n_k: int, n_q: int | None = None) -> np.ndarray:
    """Boolean key-padding mask, True where key j < lengths[b] (a real token, not padding).

    lengths: (batch,) integers in [0, n_k]. Returns shape (batch, 1, 1, n_k), or
    (batch, 1, n_q, n_k) when n_q is given: the axes are (batch, head, query, key), so it
    broadcasts against scores (batch, n_heads, n_q, n_k) and can be passed as `mask=` to
    scaled_dot_product_attention. For scores without a head axis, (batch, n_q, n_k), use
    `padding_mask(...)[:, 0]`.
    """
    n_k = require_positive_int("n_k", n_k)
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"lengths must be a 1-D integer array (batch,), got shape {lengths.shape} "
            f"and dtype {lengths.dtype}"
        )
    if ((lengths < 0) | (lengths > n_k)).any():
        raise ValueError(f"lengths must lie in [0, n_k={n_k}], got {lengths.tolist()}")
    mask = np.arange(n_k)[None, :] < lengths[:, None]  # (batch, n_k)
    mask = mask[:, None, None, :]
    if n_q is not None:
        n_q = require_positive_int("n_q", n_q)
        mask = np.broadcast_to(mask, (len(lengths), 1, n_q, n_k)).copy()
    return mask


def qkv_attention(
    x: ArrayLike,
    w_q: ArrayLike,
    w_k: ArrayLike,
    w_v: ArrayLike,
    mask: ArrayLike | None = None,
    causal: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Self-attention with learned projections: q, k, v = x @ w_q, x @ w_k, x @ w_v, then attend.

    x: (..., N, d_model); w_q, w_k: (d_model, d_k); w_v: (d_model, d_v).
    Returns out (..., N, d_v) and weights (..., N, N).
    """
    x = as_float_array("x", x)
    require_ndim("x", x, 2)
    d_model = x.shape[-1]
    w_q, w_k, w_v = (as_float_array(n, w) for n, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v)))
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v)):
        if w.ndim != 2 or w.shape[0] != d_model:
            raise ValueError(f"{name} must have shape (d_model={d_model}, width), got {w.shape}")
    if w_q.shape != w_k.shape:
        raise ValueError(f"w_q and w_k must have the same shape, got {w_q.shape} and {w_k.shape}")
    return scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, mask=mask, causal=causal)


def score_statistics(q: ArrayLike, k: ArrayLike) -> tuple[float, float]:
    """Empirical mean and population std (ddof=0) of the row-wise dot products q[i] . k[i].

    q, k: (n, d), n pairs of query/key vectors. With unit-variance entries the std grows
    like sqrt(d): the reason attention divides the scores by sqrt(d_k).
    """
    q, k = as_float_array("q", q), as_float_array("k", k)
    for name, a in (("q", q), ("k", k)):
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape (n, d), got {a.shape}")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got {q.shape} and {k.shape}")
    scores = np.sum(q * k, axis=-1)
    return float(np.mean(scores)), float(np.std(scores))


def score_variance(d_k: int, q_var: float = 1.0, k_var: float = 1.0, scaled: bool = False) -> float:
    """Var(q . k) for independent zero-mean entries: d_k * q_var * k_var.

    Each of the d_k products q_i k_i has variance q_var * k_var and they are independent, so
    the variances add. With scaled=True the score is q . k / sqrt(d_k), whose variance is
    q_var * k_var whatever d_k is.
    """
    d_k = require_positive_int("d_k", d_k)
    for name, value in (("q_var", q_var), ("k_var", k_var)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    var = d_k * float(q_var) * float(k_var)
    return var / d_k if scaled else var


def softmax_jacobian(s: ArrayLike) -> np.ndarray:
    """Jacobian of a = softmax(s) along the last axis: J[i, j] = da_i/ds_j = a_i (delta_ij - a_j).

    s: (..., n). Returns (..., n, n) = diag(a) - a a^T. When one a_i is near 1 (saturation),
    every entry is near 0: the gradient vanishes.
    """
    s = as_float_array("s", s)
    require_ndim("s", s, 1)
    a = softmax(s, axis=-1)
    diag = a[..., :, None] * np.eye(a.shape[-1], dtype=a.dtype)
    return diag - a[..., :, None] * a[..., None, :]


def permutation_check(
    fn: Callable[[np.ndarray], ArrayLike], x: ArrayLike, perm: ArrayLike
) -> float:
    """How far fn is from permutation equivariance: max |fn(x[perm]) - fn(x)[perm]|.

    Permutes the sequence axis (-2) of x: (..., N, d). fn maps (N, d) -> (N, d'). Self-attention
    without positional information gives ~0 (up to rounding); a positional encoding breaks it.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    x = as_float_array("x", x)
    require_ndim("x", x, 2)
    perm = np.asarray(perm)
    n = x.shape[-2]
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise ValueError(f"perm must be a permutation of range({n}) (x has N={n}), got {perm}")
    fn_x = np.asarray(fn(x))
    permuted_then_fn = np.asarray(fn(x[..., perm, :]))
    if fn_x.ndim < 2 or fn_x.shape[-2] != n or permuted_then_fn.shape != fn_x.shape:
        raise ValueError(
            f"fn must map (N, d) -> (N, d') with N={n}, got shapes {fn_x.shape} for x and "
            f"{permuted_then_fn.shape} for the permuted x"
        )
    fn_then_permuted = fn_x[..., perm, :]
    return float(np.max(np.abs(permuted_then_fn - fn_then_permuted)))


def kv_cache_attention_step(
    q_new: ArrayLike, k_new: ArrayLike, v_new: ArrayLike, k_cache: ArrayLike, v_cache: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One decoding step with a KV cache: append the new key/value, attend from the new query.

    q_new, k_new, v_new: (..., H, 1, d) for the newest token; k_cache, v_cache: (..., H, T, d)
    for the T earlier tokens (T may be 0). No causal mask is needed: the newest token may see
    every key. Returns out (..., H, 1, d_v) and the caches grown to (..., H, T + 1, d).
    """
    arrays = {}
    for name, a in (
        ("q_new", q_new),
        ("k_new", k_new),
        ("v_new", v_new),
        ("k_cache", k_cache),
        ("v_cache", v_cache),
    ):
        arrays[name] = as_float_array(name, a)
        require_ndim(name, arrays[name], 3)
    for name in ("q_new", "k_new", "v_new"):
        if arrays[name].shape[-2] != 1:
            raise ValueError(
                f"{name} must hold one token (axis -2 of size 1), got {arrays[name].shape}"
            )
    for new, cache in (("k_new", "k_cache"), ("v_new", "v_cache")):
        a, c = arrays[new].shape, arrays[cache].shape
        if a[:-2] != c[:-2] or a[-1] != c[-1]:
            raise ValueError(
                f"{cache} {c} must match {new} {a} in every axis except the token axis (-2)"
            )
    k_all = np.concatenate([arrays["k_cache"], arrays["k_new"]], axis=-2)
    v_all = np.concatenate([arrays["v_cache"], arrays["v_new"]], axis=-2)
    out, _ = scaled_dot_product_attention(arrays["q_new"], k_all, v_all)
    return out, k_all, v_all


def grouped_query_attention(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, causal: bool = False
) -> np.ndarray:
    """Grouped-query attention (Ainslie et al. 2023): H query heads share H_kv key/value heads.

    q: (..., H, N, d); k, v: (..., H_kv, N_k, d); H_kv must divide H. Query head h uses key/value
    head h // (H // H_kv). H_kv == H is multi-head, H_kv == 1 is multi-query attention.
    Returns out (..., H, N, d_v).
    """
    q, k, v = (as_float_array(n, a) for n, a in (("q", q), ("k", k), ("v", v)))
    for name, a in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, a, 3)
    n_heads, n_kv_heads = q.shape[-3], k.shape[-3]
    if v.shape[-3] != n_kv_heads:
        raise ValueError(
            f"k and v must have the same number of heads (axis -3), got {k.shape} and {v.shape}"
        )
    require_divides("n_kv_heads", n_kv_heads, "n_heads", n_heads)
    group = n_heads // n_kv_heads
    k = np.repeat(k, group, axis=-3)  # kv head g serves query heads g*group ... g*group + group-1
    v = np.repeat(v, group, axis=-3)
    out, _ = scaled_dot_product_attention(q, k, v, causal=causal)
    return out


def kv_cache_bytes(
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch: int = 1,
    bytes_per_element: int = 2,
) -> int:
    """Memory of a KV cache: 2 (K and V) * layers * kv heads * head_dim * tokens * batch * bytes.

    bytes_per_element=2 is fp16/bf16. Fewer kv heads (GQA, MQA) shrink it proportionally.
    """
    sizes = [
        require_positive_int(name, value)
        for name, value in (
            ("n_layers", n_layers),
            ("n_kv_heads", n_kv_heads),
            ("head_dim", head_dim),
            ("seq_len", seq_len),
            ("batch", batch),
            ("bytes_per_element", bytes_per_element),
        )
    ]
    return 2 * math.prod(sizes)
