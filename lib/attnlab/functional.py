"""NumPy reference implementations of attention: the formulas of the lecture, one function each.

Shapes follow the course convention `(..., N, d)`: any leading batch/head axes, then
sequence length N, then feature width d. float32 and float64 both work; the result keeps
the input's floating dtype.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_float_array, require_ndim

__all__ = ["softmax", "scaled_dot_product_attention", "causal_mask"]


def softmax(x, axis: int = -1) -> np.ndarray:
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


def scaled_dot_product_attention(q, k, v, mask=None, causal: bool = False):
    """softmax(q k^T / sqrt(d_k)) v, returning (out, weights).

    q: (..., Nq, d_k), k: (..., Nk, d_k), v: (..., Nk, d_v).
    mask: boolean, True = may attend, broadcastable to (..., Nq, Nk).
    causal: also apply the bottom-right aligned causal mask.
    Returns out (..., Nq, d_v) and weights (..., Nq, Nk); a query with no visible key
    gets zero weights and a zero output.
    """
    q, k, v = (as_float_array(n, a) for n, a in (("q", q), ("k", k), ("v", v)))
    for name, arr in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, arr, 2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension d_k, got q {q.shape} and k {k.shape}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys (axis -2), got k {k.shape} and v {v.shape}"
        )
    dtype = np.result_type(q, k, v)
    n_q, n_k = q.shape[-2], k.shape[-2]
    scores = (q @ np.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
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
