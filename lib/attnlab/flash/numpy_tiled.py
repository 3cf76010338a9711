"""FlashAttention in NumPy: tiled attention with an online softmax (Dao et al. 2022).

Standard attention builds the whole (Nq, Nk) score matrix. FlashAttention walks over
blocks of keys instead and keeps, for every query row, three running numbers:

    m    the largest score seen so far                       (..., Nq)
    l    sum of exp(score - m) over the keys seen so far     (..., Nq)
    acc  sum of exp(score - m) * v over those keys           (..., Nq, d_v)   (not normalised)

Two such partial states over disjoint key blocks merge exactly (`online_softmax_merge`),
and the output is acc / l. Only (block, block) score tiles ever exist, never (Nq, Nk).

The backward pass (FlashAttention-2, Dao 2023) recomputes the score tiles from q, k and the
saved log-sum-exp L = m + log(l) instead of storing the attention matrix:
P = exp(S - L), dV = P^T dO, dP = dO V^T, dS = P * (dP - D) with D = rowsum(dO * O),
dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d).

Rows with no visible key (causal with Nq > Nk) give output 0, log-sum-exp -inf and zero
gradients, like `attnlab.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from .._validate import as_float_array, as_qkv, require_ndim, require_positive_int

__all__ = [
    "flash_attention_numpy",
    "flash_attention_numpy_backward",
    "flash_attention_numpy_forward",
    "online_softmax_merge",
]


def online_softmax_merge(
    m1: ArrayLike, l1: ArrayLike, acc1: ArrayLike, m2: ArrayLike, l2: ArrayLike, acc2: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge two partial softmax states over disjoint key blocks into one, exactly.

    m (..., Nq): running row maximum; l (..., Nq): sum of exp(s - m);
    acc (..., Nq, d_v): sum of exp(s - m) * v, UNnormalised. Each state is rescaled to the
    common maximum m = max(m1, m2) by exp(m_i - m). Returns (m, l, acc); the attention
    output is acc / l[..., None]. A state that has seen no key has m = -inf, l = 0, acc = 0
    and is absorbed without NaN (also when both are empty).
    """
    m1, l1, acc1, m2, l2, acc2 = (
        as_float_array(name, x)
        for name, x in (
            ("m1", m1),
            ("l1", l1),
            ("acc1", acc1),
            ("m2", m2),
            ("l2", l2),
            ("acc2", acc2),
        )
    )
    for name, m, l_, acc in (("1", m1, l1, acc1), ("2", m2, l2, acc2)):
        require_ndim(f"acc{name}", acc, 1)
        if m.shape != l_.shape or acc.shape[:-1] != m.shape:
            raise ValueError(
                f"m{name} and l{name} must have shape acc{name}.shape[:-1]; got m{name} {m.shape}, "
                f"l{name} {l_.shape}, acc{name} {acc.shape}"
            )
    if m1.shape != m2.shape or acc1.shape != acc2.shape:
        raise ValueError(
            f"the two states must have the same shapes, got m1 {m1.shape}, acc1 {acc1.shape} "
            f"and m2 {m2.shape}, acc2 {acc2.shape}"
        )
    m = np.maximum(m1, m2)
    # If both states are empty, m = -inf and exp(-inf - (-inf)) would be NaN: shift by 0 instead.
    m_shift = np.where(np.isneginf(m), 0.0, m)
    scale1 = np.exp(m1 - m_shift)
    scale2 = np.exp(m2 - m_shift)
    l = scale1 * l1 + scale2 * l2
    acc = scale1[..., None] * acc1 + scale2[..., None] * acc2
    return m, l, acc


def _check_qkv(q, k, v, block_size):
    """Validate and convert q (..., Nq, d), k (..., Nk, d), v (..., Nk, d_v) with equal leading dims."""
    q, k, v = as_qkv(q, k, v)
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(
            "q, k and v must have the same leading (batch, head) dimensions, got "
            f"q {q.shape}, k {k.shape}, v {v.shape}"
        )
    block_size = require_positive_int("block_size", block_size)
    return q, k, v, block_size, np.result_type(q, k, v)


def _visible(rows: np.ndarray, cols: np.ndarray, n_q: int, n_k: int) -> np.ndarray:
    """Causal visibility of one tile: query rows[i] may see key cols[j] iff cols[j] <= rows[i] + (n_k - n_q).

    The same bottom-right aligned rule as `attnlab.causal_mask`, evaluated only for the
    (rows, cols) of one tile so the full (Nq, Nk) mask is never built.
    """
    return cols[None, :] <= rows[:, None] + (n_k - n_q)


def _tile_scores(q_tile, k_tile, rows, cols, n_q, n_k, causal):
    """Scores q k^T / sqrt(d) of one (Br, Bc) tile, -inf where the causal mask hides a key."""
    # A Python float scale keeps float32 tiles in float32 (a NumPy float64 would promote them).
    s = (q_tile @ np.swapaxes(k_tile, -1, -2)) * (1.0 / math.sqrt(q_tile.shape[-1]))
    if causal:
        s = np.where(_visible(rows, cols, n_q, n_k), s, -np.inf)
    return s


def _tile_state(s, v_tile):
    """The partial softmax state (m, l, acc) of one score tile s (..., Br, Bc) with values (..., Bc, d_v)."""
    m = np.max(s, axis=-1)
    m_shift = np.where(np.isneginf(m), 0.0, m)  # a row that sees no key of this tile
    p = np.exp(s - m_shift[..., None])
    return m, p.sum(axis=-1), p @ v_tile


def _last_visible_block_end(rows: np.ndarray, n_q: int, n_k: int, causal: bool) -> int:
    """One past the last key index that the query rows (ascending) can see (all keys unless causal)."""
    if not causal:
        return n_k
    return max(0, min(n_k, int(rows[-1]) + 1 + (n_k - n_q)))


def _finish_rows(m, l, acc):
    """(out, logsumexp) of finished query rows: acc / l and m + log(l); 0 and -inf for a row
    that saw no key."""
    seen = l > 0
    out = np.divide(acc, l[..., None], out=np.zeros_like(acc), where=seen[..., None])
    return out, np.where(seen, m + np.log(np.where(seen, l, 1.0)), -np.inf)


def flash_attention_numpy_forward(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, causal: bool = False, block_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Tiled attention forward returning (out, logsumexp).

    q (..., Nq, d), k (..., Nk, d), v (..., Nk, d_v) -> out (..., Nq, d_v) and
    logsumexp (..., Nq) = log sum_j exp(q_i . k_j / sqrt(d)) over the visible keys (-inf for a
    row with no visible key, whose output is 0). Query and key blocks have `block_size` rows;
    causal masks are bottom-right aligned like `attnlab.causal_mask`. The backward pass needs
    only out and logsumexp, not the attention matrix.
    """
    q, k, v, block, dtype = _check_qkv(q, k, v, block_size)
    return _tiled_forward(q, k, v, causal, block, dtype)


def _tiled_forward(
    q,
    k,
    v,
    causal,
    block,
    dtype,
    *,
    tile_scores=_tile_scores,
    tile_state=_tile_state,
    merge=online_softmax_merge,
    key_end=_last_visible_block_end,
    finish=_finish_rows,
):
    """The loop of `flash_attention_numpy_forward` on checked inputs, with its steps as
    arguments: the graders build each typical mistake by swapping one step
    (grader_tests/exercises/flash.py)."""
    n_q, n_k = q.shape[-2], k.shape[-2]
    out = np.zeros(q.shape[:-1] + (v.shape[-1],), dtype=dtype)
    logsumexp = np.full(q.shape[:-1], -np.inf, dtype=dtype)
    for r0 in range(0, n_q, block):
        r1 = min(r0 + block, n_q)
        rows = np.arange(r0, r1)
        q_tile = q[..., r0:r1, :]
        # The empty state: no key seen yet.
        m = np.full(q_tile.shape[:-1], -np.inf, dtype=dtype)
        l = np.zeros_like(m)
        acc = np.zeros(q_tile.shape[:-1] + (v.shape[-1],), dtype=dtype)
        for c0 in range(0, key_end(rows, n_q, n_k, causal), block):
            c1 = min(c0 + block, n_k)
            s = tile_scores(q_tile, k[..., c0:c1, :], rows, np.arange(c0, c1), n_q, n_k, causal)
            m, l, acc = merge(m, l, acc, *tile_state(s, v[..., c0:c1, :]))
        out[..., r0:r1, :], logsumexp[..., r0:r1] = finish(m, l, acc)
    return out, logsumexp


def flash_attention_numpy(
    q: ArrayLike, k: ArrayLike, v: ArrayLike, causal: bool = False, block_size: int = 64
) -> np.ndarray:
    """softmax(q k^T / sqrt(d)) v computed tile by tile with an online softmax.

    Same result as `attnlab.scaled_dot_product_attention(q, k, v, causal=causal)[0]`, but
    never materialises an (Nq, Nk) array: peak extra memory is O(block_size^2 + Nq d).
    q (..., Nq, d), k (..., Nk, d), v (..., Nk, d_v) -> out (..., Nq, d_v).
    """
    return flash_attention_numpy_forward(q, k, v, causal=causal, block_size=block_size)[0]


def flash_attention_numpy_backward(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    out: ArrayLike,
    logsumexp: ArrayLike,
    dout: ArrayLike,
    causal: bool = False,
    block_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dq, dk, dv) of tiled attention, recomputing each score tile (FlashAttention-2).

    q, k, v as in `flash_attention_numpy_forward`; out (..., Nq, d_v) and logsumexp (..., Nq)
    are its outputs and dout (..., Nq, d_v) the gradient of the loss with respect to out.
    For each tile: P = exp(S - L), dV += P^T dO, dP = dO V^T, dS = P * (dP - D) with
    D = rowsum(dO * O), dQ += dS K / sqrt(d), dK += dS^T Q / sqrt(d).
    """
    q, k, v, block, dtype = _check_qkv(q, k, v, block_size)
    out, dout, logsumexp = (
        as_float_array(n, a) for n, a in (("out", out), ("dout", dout), ("logsumexp", logsumexp))
    )
    expected_out = q.shape[:-1] + (v.shape[-1],)
    for name, arr, shape in (
        ("out", out, expected_out),
        ("dout", dout, expected_out),
        ("logsumexp", logsumexp, q.shape[:-1]),
    ):
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    n_q, n_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])
    delta = np.sum(dout * out, axis=-1)  # D_i = sum_d dO_id O_id = sum_j P_ij dP_ij
    # Rows with no visible key have L = -inf; all their scores are -inf too, so any finite
    # stand-in gives P = exp(-inf) = 0 there instead of exp(-inf + inf) = NaN.
    lse = np.where(np.isneginf(logsumexp), 0.0, logsumexp)
    dq = np.zeros_like(q, dtype=dtype)
    dk = np.zeros_like(k, dtype=dtype)
    dv = np.zeros_like(v, dtype=dtype)
    for c0 in range(0, n_k, block):  # outer loop over key/value blocks: dK, dV stay local
        c1 = min(c0 + block, n_k)
        cols = np.arange(c0, c1)
        k_tile, v_tile = k[..., c0:c1, :], v[..., c0:c1, :]
        # Rows before the first query that sees key c0 see no key of this block: skip them.
        first_row = 0 if not causal else max(0, c0 - (n_k - n_q))
        for r0 in range(first_row, n_q, block):
            r1 = min(r0 + block, n_q)
            s = _tile_scores(q[..., r0:r1, :], k_tile, np.arange(r0, r1), cols, n_q, n_k, causal)
            p = np.exp(s - lse[..., r0:r1, None])
            do_tile = dout[..., r0:r1, :]
            dv[..., c0:c1, :] += np.swapaxes(p, -1, -2) @ do_tile
            dp = do_tile @ np.swapaxes(v_tile, -1, -2)
            ds = p * (dp - delta[..., r0:r1, None])
            dq[..., r0:r1, :] += (ds @ k_tile) * scale
            dk[..., c0:c1, :] += (np.swapaxes(ds, -1, -2) @ q[..., r0:r1, :]) * scale
    return dq, dk, dv
