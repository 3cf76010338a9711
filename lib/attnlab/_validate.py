"""Argument checks shared by the library: every error names the argument and the value at fault."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__: list[str] = []  # internal helpers, not part of the public API


def as_float_array(name: str, x: ArrayLike) -> np.ndarray:
    """Return `x` as a floating NumPy array (float64 unless it already is float16/32/64)."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def require_ndim(name: str, x: np.ndarray, min_ndim: int) -> None:
    """Raise ValueError unless `x` has at least `min_ndim` dimensions."""
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {x.shape}")


def require_positive_int(name: str, value: object) -> int:
    """Return `value` as int, raising ValueError unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def require_divides(name_div: str, divisor: int, name_total: str, total: int) -> None:
    """Raise ValueError unless `divisor` divides `total` (e.g. n_heads divides d_model)."""
    if total % divisor != 0:
        raise ValueError(f"{name_div}={divisor} must divide {name_total}={total}")


def require_matrix(name: str, w: np.ndarray, shape: tuple) -> None:
    """Raise ValueError unless the weight matrix `w` has exactly `shape`."""
    if w.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {w.shape}")


def require_finite(name: str, x: np.ndarray) -> None:
    """Raise ValueError if `x` holds NaN or +-inf (where the result would be undefined)."""
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; the result would be undefined")


def require_same(name_a: str, a: object, name_b: str, b: object, what: str = "size") -> None:
    """Raise ValueError unless two sizes (or shapes) agree."""
    if a != b:
        raise ValueError(f"{name_a} and {name_b} must have the same {what}, got {a} and {b}")


def as_qkv(q: ArrayLike, k: ArrayLike, v: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q (..., Nq, d_k), k (..., Nk, d_k), v (..., Nk, d_v) as float arrays, shapes checked."""
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
    return q, k, v
