"""Positional information for attention: sinusoidal encodings, RoPE and ALiBi (NumPy).

Self-attention is permutation equivariant: without positions it cannot tell "dog bites man"
from "man bites dog". These functions add positions in the three ways the lecture compares:
added to the input (sinusoidal), rotating q and k (RoPE), or biasing the scores (ALiBi).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ._validate import as_float_array, require_ndim, require_positive_int

__all__ = [
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "sinusoid_shift_matrix",
    "sinusoidal_positional_encoding",
]

SINUSOID_BASE = 10000.0  # Vaswani et al. 2017, "Attention Is All You Need", section 3.5


def _sinusoid_frequencies(d_model: int) -> np.ndarray:
    """omega_i = 1 / 10000**(2i / d_model) for each pair i = 0, 1, ..., ceil(d_model / 2) - 1."""
    two_i = np.arange(0, d_model, 2)
    return SINUSOID_BASE ** (-two_i / d_model)


def sinusoidal_positional_encoding(n_positions: int, d_model: int) -> np.ndarray:
    """The fixed encoding of Vaswani et al. 2017: PE[p, 2i] = sin(p w_i), PE[p, 2i+1] = cos(p w_i).

    w_i = 1 / 10000**(2i / d_model), positions p = 0 .. n_positions - 1. Low dimensions turn
    fast, high dimensions slowly, like the hands of a clock. With an odd d_model the last
    column is the sine of one more frequency. Returns (n_positions, d_model), float64.
    """
    n_positions = require_positive_int("n_positions", n_positions)
    d_model = require_positive_int("d_model", d_model)
    angles = np.arange(n_positions)[:, None] * _sinusoid_frequencies(d_model)[None, :]
    pe = np.zeros((n_positions, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe


def sinusoid_shift_matrix(k: float, d_model: int) -> np.ndarray:
    """The linear map A(k) with PE[p + k] = A(k) @ PE[p] for every position p.

    Per pair (sin(p w), cos(p w)) the angle addition formulas give
        sin((p+k) w) =  cos(k w) sin(p w) + sin(k w) cos(p w)
        cos((p+k) w) = -sin(k w) sin(p w) + cos(k w) cos(p w)
    so A(k) is block diagonal with 2x2 rotations [[cos kw, sin kw], [-sin kw, cos kw]]: it does
    not depend on p, which is why relative offsets are easy to read from this encoding.
    d_model must be even (a lone sine has no partner to rotate with). Returns (d_model, d_model).
    """
    d_model = require_positive_int("d_model", d_model)
    if d_model % 2:
        raise ValueError(f"d_model must be even for the shift matrix, got d_model={d_model}")
    if not np.isfinite(k):
        raise ValueError(f"k must be a finite offset, got {k}")
    a = np.zeros((d_model, d_model))
    for i, omega in enumerate(_sinusoid_frequencies(d_model)):
        c, s = math.cos(k * omega), math.sin(k * omega)
        a[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, s], [-s, c]]
    return a


def apply_rope(
    x: ArrayLike, positions: ArrayLike | None = None, base: float = 10000.0
) -> np.ndarray:
    """Rotary position embedding (Su et al. 2021, RoFormer) with interleaved pairs.

    Pair (x[2i], x[2i+1]) of the token at position p is rotated by the angle
    p * base**(-2i/d). Applied to q and k, the score rope(q)_m . rope(k)_n depends only on
    q, k and the offset m - n. x: (..., N, d) with d even; positions: (N,) or broadcastable
    to x.shape[:-1], default arange(N). Returns an array shaped like x.
    """
    x = as_float_array("x", x)
    require_ndim("x", x, 2)
    n, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError(f"the last axis of x must be even to form pairs, got x.shape={x.shape}")
    if not base > 0:
        raise ValueError(f"base must be positive, got {base}")
    if positions is None:
        positions = np.arange(n)
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 0 or positions.shape[-1] != n:
        raise ValueError(
            f"positions must have N={n} entries on its last axis, got shape {positions.shape}"
        )
    inv_freq = base ** (-np.arange(0, d, 2) / d)  # (d/2,)
    angles = positions[..., None] * inv_freq  # (..., N, d/2), in float64 for accuracy
    cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    try:
        rotated_even = x_even * cos - x_odd * sin
        rotated_odd = x_even * sin + x_odd * cos
    except ValueError:
        raise ValueError(
            f"positions of shape {positions.shape} does not broadcast to "
            f"x.shape[:-1]={x.shape[:-1]}"
        ) from None
    # Interleave back: (even_0, odd_0, even_1, odd_1, ...).
    out = np.stack([rotated_even, rotated_odd], axis=-1)
    return out.reshape(*out.shape[:-2], d)


def alibi_slopes(n_heads: int) -> np.ndarray:
    """Per-head ALiBi slopes (Press et al. 2022, "Train Short, Test Long").

    For a power of two n: the geometric sequence 2**(-8/n), 2**(-16/n), ..., 2**(-8). Otherwise,
    with m = 2**floor(log2 n): the m slopes for m heads, then the first n - m of every other
    slope (1st, 3rd, 5th, ...) of the sequence for 2m heads, as in the paper's code.
    Returns (n_heads,), float64.
    """
    n_heads = require_positive_int("n_heads", n_heads)

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(n_heads))
    slopes = power_of_two_slopes(closest)
    if closest < n_heads:
        slopes += power_of_two_slopes(2 * closest)[0::2][: n_heads - closest]
    return np.array(slopes)


def alibi_bias(n_heads: int, n_q: int, n_k: int | None = None) -> np.ndarray:
    """The ALiBi score bias -slope_h * |i - j|, added to q k^T / sqrt(d) before the softmax.

    Bottom-right aligned like causal_mask: query i sits at absolute position i + (n_k - n_q),
    so with a KV cache the newest query is level with the last key. n_k defaults to n_q.
    Returns (n_heads, n_q, n_k), float64.
    """
    n_q = require_positive_int("n_q", n_q)
    n_k = n_q if n_k is None else require_positive_int("n_k", n_k)
    slopes = alibi_slopes(n_heads)
    query_pos = np.arange(n_q)[:, None] + (n_k - n_q)
    key_pos = np.arange(n_k)[None, :]
    distance = np.abs(query_pos - key_pos)  # (n_q, n_k)
    return -slopes[:, None, None] * distance[None, :, :]
