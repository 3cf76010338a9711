"""State space models in NumPy: discretisation, kernel, recurrence, convolution, scans.

A continuous linear SSM  h'(t) = A h(t) + B u(t),  y(t) = C h(t)  is turned into the
discrete recurrence  h_k = A_bar h_{k-1} + B_bar u_k,  y_k = C h_k  by a zero-order hold
with step delta (S4: Gu et al. 2022, "Efficiently Modeling Long Sequences with Structured
State Spaces"). Unrolled, the recurrence is a causal convolution with the kernel
K = (C B_bar, C A_bar B_bar, C A_bar^2 B_bar, ...). Mamba (Gu & Dao 2023, "Mamba:
Linear-Time Sequence Modeling with Selective State Spaces") makes delta, B and C depend on
the input, which breaks the convolution view but keeps a linear recurrence that an
associative (parallel) scan can evaluate in O(log L) vectorised steps.

Conventions: A either diagonal, given as a 1-D vector (n,), or dense (n, n). Functions keep
the input's floating dtype (float32 in, float32 out); complex A (as in S4D) is accepted and
gives complex results.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ._validate import require_positive_int, require_same

__all__ = [
    "expm",
    "parallel_scan",
    "selective_scan",
    "ssm_convolve",
    "ssm_discretize",
    "ssm_kernel",
    "ssm_recurrence",
]


# ----------------------------------------------------------------------------- helpers
def _as_array(name: str, x, allow_complex: bool = True) -> np.ndarray:
    """Return `x` as a float (or complex) NumPy array; integers become float64."""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        if not allow_complex:
            raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def _result_dtype(*arrays) -> np.dtype:
    """The floating dtype the result should keep: float32 only if every input is float32."""
    return np.result_type(*arrays)


def _require_stable_diagonal(name: str, a: np.ndarray) -> None:
    """Continuous-time stability: every real part strictly negative."""
    if not np.all(np.real(a) < 0):
        worst = np.max(np.real(a))
        raise ValueError(
            f"{name} must have a strictly negative real part for a stable SSM, "
            f"got an entry with real part {worst:g}"
        )


# ----------------------------------------------------------------------------- expm
# Pade [6/6] coefficients c_j = (2q - j)! q! / ((2q)! j! (q - j)!) with q = 6
# (Moler & Van Loan 2003, "Nineteen Dubious Ways to Compute the Exponential of a Matrix").
_PADE_Q = 6
_PADE_COEFFS = [1.0]
for _j in range(1, _PADE_Q + 1):
    _PADE_COEFFS.append(_PADE_COEFFS[-1] * (_PADE_Q - _j + 1) / (_j * (2 * _PADE_Q - _j + 1)))


def expm(M: ArrayLike) -> np.ndarray:
    """Matrix exponential exp(M) of a square (n, n) matrix, by scaling and squaring.

    Scale M by 2^-s until its infinity norm is at most 1/2, take the [6/6] Pade
    approximant N(X)/D(X) (accurate to about 1e-16 there, Moler & Van Loan 2003), then
    square s times: exp(M) = exp(M / 2^s)^(2^s). Computed in float64/complex128 and
    returned in the input's dtype.
    """
    M = _as_array("M", M)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"M must be a square (n, n) matrix, got shape {M.shape}")
    out_dtype = M.dtype
    X = M.astype(np.complex128 if np.iscomplexobj(M) else np.float64)
    norm = np.max(np.sum(np.abs(X), axis=1)) if X.size else 0.0
    s = max(0, int(np.ceil(np.log2(norm / 0.5)))) if norm > 0.5 else 0
    X = X / 2.0**s
    n = X.shape[0]
    numer = np.zeros_like(X)
    denom = np.zeros_like(X)
    power = np.eye(n, dtype=X.dtype)  # X^j, built up term by term
    for j, c in enumerate(_PADE_COEFFS):
        if j > 0:
            power = power @ X
        numer = numer + c * power
        denom = denom + c * (-1) ** j * power
    E = np.linalg.solve(denom, numer)
    for _ in range(s):
        E = E @ E
    return E.astype(out_dtype, copy=False)


# ----------------------------------------------------------------------------- ZOH
def ssm_discretize(A: ArrayLike, B: ArrayLike, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order-hold discretisation: returns (A_bar, B_bar).

    A_bar = exp(delta A),  B_bar = (delta A)^{-1} (exp(delta A) - I) delta B.
    A: diagonal as a vector (n,) (then everything is elementwise) or dense (n, n)
    (matrix exponential). B: (n,) or (n, m). delta: positive scalar step.
    A must be stable (real parts of its eigenvalues < 0), which also makes it invertible.
    """
    A = _as_array("A", A)
    B = _as_array("B", B)
    delta_arr = np.asarray(delta)
    if delta_arr.ndim != 0 or not np.isreal(delta_arr) or not np.isfinite(delta_arr):
        raise ValueError(f"delta must be a finite positive scalar step, got {delta!r}")
    delta = float(delta_arr)
    if delta <= 0:
        raise ValueError(f"delta must be a positive step, got {delta}")
    if A.ndim not in (1, 2) or (A.ndim == 2 and A.shape[0] != A.shape[1]):
        raise ValueError(
            f"A must be a diagonal vector (n,) or a square (n, n) matrix, got {A.shape}"
        )
    if B.ndim not in (1, 2):
        raise ValueError(f"B must have shape (n,) or (n, m), got {B.shape}")
    n = A.shape[0]
    require_same("A", f"n={n}", "B", f"n={B.shape[0]}", "state size (axis 0)")
    dtype = _result_dtype(A, B)

    if A.ndim == 1:
        _require_stable_diagonal("A", A)
        dA = delta * A.astype(np.result_type(A, np.float64))
        A_bar = np.exp(dA)
        # (dA)^-1 (exp(dA) - 1) dB, elementwise; expm1 keeps precision when dA is tiny.
        gain = np.expm1(dA) / A
        B_bar = gain * B if B.ndim == 1 else gain[:, None] * B
    else:
        eigenvalues = np.linalg.eigvals(A.astype(np.result_type(A, np.float64)))
        _require_stable_diagonal("A (its eigenvalues)", eigenvalues)
        dA = delta * A.astype(np.result_type(A, np.float64))
        A_bar = expm(dA)
        B_bar = np.linalg.solve(dA, (A_bar - np.eye(n)) @ (delta * B))
    return A_bar.astype(dtype, copy=False), B_bar.astype(dtype, copy=False)


# ----------------------------------------------------------------------------- kernel
def _check_siso(A_bar, B_bar, C):
    """Validate a single-input single-output discrete SSM; returns arrays (A_bar, b, c)."""
    A_bar = _as_array("A_bar", A_bar)
    B_bar = _as_array("B_bar", B_bar)
    C = _as_array("C", C)
    if A_bar.ndim not in (1, 2) or (A_bar.ndim == 2 and A_bar.shape[0] != A_bar.shape[1]):
        raise ValueError(
            f"A_bar must be a diagonal vector (n,) or a square (n, n) matrix, got {A_bar.shape}"
        )
    n = A_bar.shape[0]
    if B_bar.shape not in ((n,), (n, 1)):
        raise ValueError(
            f"B_bar must have shape ({n},) or ({n}, 1) to match A_bar, got {B_bar.shape}"
        )
    if C.shape not in ((n,), (1, n)):
        raise ValueError(f"C must have shape ({n},) or (1, {n}) to match A_bar, got {C.shape}")
    return A_bar, B_bar.reshape(n), C.reshape(n)


def _apply(A_bar: np.ndarray, h: np.ndarray) -> np.ndarray:
    """A_bar h for a diagonal (vector) or dense A_bar; h may carry leading batch axes."""
    return A_bar * h if A_bar.ndim == 1 else h @ A_bar.T


def ssm_kernel(A_bar: ArrayLike, B_bar: ArrayLike, C: ArrayLike, L: int) -> np.ndarray:
    """The SSM convolution kernel K = (C B_bar, C A_bar B_bar, ..., C A_bar^(L-1) B_bar), shape (L,).

    Single input, single output: B_bar (n,), C (n,); A_bar diagonal (n,) or dense (n, n).
    """
    A_bar, b, c = _check_siso(A_bar, B_bar, C)
    L = require_positive_int("L", L)
    dtype = _result_dtype(A_bar, b, c)
    K = np.empty(L, dtype=dtype)
    x = b.astype(dtype)  # A_bar^k B_bar, one power at a time
    for k in range(L):
        K[k] = c @ x
        x = _apply(A_bar, x)
    return K


def ssm_recurrence(A_bar: ArrayLike, B_bar: ArrayLike, C: ArrayLike, u: ArrayLike) -> np.ndarray:
    """Run h_k = A_bar h_{k-1} + B_bar u_k, y_k = C h_k with h_{-1} = 0, step by step.

    u: (..., L) with time on the last axis; returns y of the same shape.
    """
    A_bar, b, c = _check_siso(A_bar, B_bar, C)
    u = _as_array("u", u)
    if u.ndim < 1:
        raise ValueError(f"u must have a time axis (..., L), got shape {u.shape}")
    dtype = _result_dtype(A_bar, b, c, u)
    h = np.zeros(u.shape[:-1] + (A_bar.shape[0],), dtype=dtype)
    y = np.empty(u.shape, dtype=dtype)
    for k in range(u.shape[-1]):
        h = _apply(A_bar, h) + b * u[..., k, None]
        y[..., k] = h @ c
    return y


def ssm_convolve(K: ArrayLike, u: ArrayLike) -> np.ndarray:
    """Causal convolution y_k = sum_{j<=k} K_j u_{k-j} along the last axis, via the FFT.

    Zero-padding both to length >= 2L turns the FFT's circular convolution into a linear
    one, so nothing wraps around from the end into the start. K: (L,) or broadcastable to
    u's leading axes with length L; u: (..., L). O(L log L) instead of O(L^2).
    """
    K = _as_array("K", K)
    u = _as_array("u", u)
    if K.ndim < 1 or u.ndim < 1:
        raise ValueError(f"K and u need a time axis, got K {K.shape} and u {u.shape}")
    L = u.shape[-1]
    require_same("K", f"L={K.shape[-1]}", "u", f"L={L}", "length (last axis)")
    dtype = _result_dtype(K, u)
    n_fft = 1 << int(np.ceil(np.log2(2 * L)))
    if np.iscomplexobj(K) or np.iscomplexobj(u):
        y = np.fft.ifft(np.fft.fft(K, n_fft) * np.fft.fft(u, n_fft), n_fft)
    else:
        y = np.fft.irfft(np.fft.rfft(K, n_fft) * np.fft.rfft(u, n_fft), n_fft)
    return y[..., :L].astype(dtype, copy=False)


# ----------------------------------------------------------------------------- scans
def parallel_scan(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """h_t = a_t * h_{t-1} + b_t along the last axis (h_{-1} = 0) by an associative scan.

    Each step t is the affine map h -> a_t h + b_t; composing two maps gives another one,
    (a1, b1) then (a2, b2) = (a2 a1, a2 b1 + b2), and composition is associative. The
    Hillis-Steele scan combines every position with the one `offset` steps earlier, doubling
    offset each round, so after ceil(log2 L) vectorised rounds position t holds the
    composition of steps 0..t, whose b-part is h_t (Hillis & Steele 1986, "Data Parallel
    Algorithms"; Blelloch 1990, "Prefix Sums and Their Applications", gives the O(L)-work
    variant). Work O(L log L), depth O(log L).
    a, b: same shape (..., L) (broadcastable). Returns h with that shape.
    """
    a = _as_array("a", a)
    b = _as_array("b", b)
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise ValueError(
            f"a and b must have broadcastable shapes, got {a.shape} and {b.shape}"
        ) from None
    if a.ndim < 1:
        raise ValueError(f"a and b need a time axis (..., L), got shape {a.shape}")
    dtype = _result_dtype(a, b)
    A = a.astype(dtype, copy=True)  # running product of a over the window ending at t
    H = b.astype(dtype, copy=True)  # running value of h over that window (starting from 0)
    L = A.shape[-1]
    offset = 1
    while offset < L:
        # Combine window [t-2*offset+1, t-offset] (earlier) with [t-offset+1, t] (later).
        H_new = H.copy()
        H_new[..., offset:] = A[..., offset:] * H[..., :-offset] + H[..., offset:]
        A_new = A.copy()
        A_new[..., offset:] = A[..., offset:] * A[..., :-offset]
        A, H = A_new, H_new
        offset *= 2
    return H


def selective_scan(
    u: ArrayLike,
    delta: ArrayLike,
    A: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    D: ArrayLike | None = None,
) -> np.ndarray:
    """Mamba's selective scan, step by step, with the shapes of mamba_ssm's selective_scan_ref.

    For every channel d and time t (state size n):
        h_t = exp(delta_t A_d) * h_{t-1} + delta_t B_t u_t        (ZOH for A, Euler for B)
        y_t = C_t . h_t  (+ D_d u_t)
    u, delta: (batch, d_inner, L); A: (d_inner, d_state), strictly negative (Mamba uses
    A = -exp(A_log)); B, C: (batch, d_state, L), shared by all channels; D: (d_inner,).
    Returns y (batch, d_inner, L). Unlike an LTI SSM, delta, B, C change with t (they are
    computed from the input), so there is no single convolution kernel.
    """
    u = _as_array("u", u, allow_complex=False)
    delta = _as_array("delta", delta, allow_complex=False)
    A = _as_array("A", A, allow_complex=False)
    B = _as_array("B", B, allow_complex=False)
    C = _as_array("C", C, allow_complex=False)
    if u.ndim != 3:
        raise ValueError(f"u must have shape (batch, d_inner, L), got {u.shape}")
    batch, d_inner, L = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have the shape of u {u.shape}, got {delta.shape}")
    if A.ndim != 2 or A.shape[0] != d_inner:
        raise ValueError(f"A must have shape (d_inner={d_inner}, d_state), got {A.shape}")
    d_state = A.shape[1]
    for name, arr in (("B", B), ("C", C)):
        if arr.shape != (batch, d_state, L):
            raise ValueError(
                f"{name} must have shape (batch, d_state, L) = {(batch, d_state, L)}, got {arr.shape}"
            )
    arrays = [u, delta, A, B, C]
    if D is not None:
        D = _as_array("D", D, allow_complex=False)
        if D.shape != (d_inner,):
            raise ValueError(f"D must have shape (d_inner,) = ({d_inner},), got {D.shape}")
        arrays.append(D)
    _require_stable_diagonal("A", A)
    dtype = _result_dtype(*arrays)

    h = np.zeros((batch, d_inner, d_state), dtype=dtype)
    y = np.empty((batch, d_inner, L), dtype=dtype)
    for t in range(L):
        dt = delta[:, :, t, None]  # (batch, d_inner, 1)
        A_bar = np.exp(dt * A)  # (batch, d_inner, d_state)
        B_bar_u = dt * B[:, None, :, t] * u[:, :, t, None]
        h = A_bar * h + B_bar_u
        y[:, :, t] = np.einsum("bdn,bn->bd", h, C[:, :, t])
    if D is not None:
        y = y + D[:, None] * u
    return y.astype(dtype, copy=False)
