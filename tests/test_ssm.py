"""State space models (attnlab.ssm): ZOH, kernel, recurrence, FFT convolution, scans.

Independent references: torch.linalg.matrix_exp (and scipy when installed), the augmented
matrix exponential for the ZOH integral, np.convolve, plain loops, and transformers' own
Mamba slow-path scan.
"""

from __future__ import annotations

import sys

import attnlab
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

RNG = np.random.default_rng(1234)


def _stable_dense(n, rng):
    m = rng.normal(size=(n, n))
    return -1.5 * np.eye(n) + 0.4 * (m - m.T) + 0.2 * rng.normal(size=(n, n))


def _torch_expm(M):
    return torch.linalg.matrix_exp(torch.as_tensor(M, dtype=torch.float64)).numpy()


# ----------------------------------------------------------------------------- expm
@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_expm_matches_torch_matrix_exp(scale):
    M = scale * RNG.normal(size=(6, 6))
    expected = _torch_expm(M)
    np.testing.assert_allclose(attnlab.expm(M), expected, rtol=1e-12 * max(1, scale), atol=1e-13)


def test_expm_matches_scipy_when_installed():
    scipy_linalg = pytest.importorskip("scipy.linalg", reason="scipy is optional (tests only)")
    M = RNG.normal(size=(5, 5)) * 3
    np.testing.assert_allclose(attnlab.expm(M), scipy_linalg.expm(M), rtol=1e-12)


def test_expm_of_commuting_blocks_and_dtype():
    # exp of a diagonal matrix is the diagonal of exponentials; float32 stays float32
    d = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    out = attnlab.expm(np.diag(d))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.diag(np.exp(d)), rtol=1e-6)


def test_expm_rejects_non_square():
    with pytest.raises(ValueError, match="M must be a square"):
        attnlab.expm(np.ones((2, 3)))


# ----------------------------------------------------------------------------- ZOH
def _zoh_by_augmented_exponential(A, B, delta):
    """exp(delta [[A, B], [0, 0]]) = [[exp(delta A), int_0^delta exp(A s) ds B], [0, I]]."""
    n, m = B.shape
    M = np.zeros((n + m, n + m))
    M[:n, :n] = A
    M[:n, n:] = B
    E = _torch_expm(delta * M)
    return E[:n, :n], E[:n, n:]


@pytest.mark.parametrize("delta", [1e-3, 0.1, 2.0])
def test_dense_zoh_equals_the_exact_integral(delta):
    A = _stable_dense(4, RNG)
    B = RNG.normal(size=(4, 2))
    A_bar, B_bar = attnlab.ssm_discretize(A, B, delta)
    A_ref, B_ref = _zoh_by_augmented_exponential(A, B, delta)
    np.testing.assert_allclose(A_bar, A_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(B_bar, B_ref, rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("b_shape", [(5,), (5, 3)])
def test_diagonal_zoh_equals_dense_zoh_of_diag_matrix(b_shape):
    a = -np.exp(RNG.normal(size=5))
    B = RNG.normal(size=b_shape)
    A_bar, B_bar = attnlab.ssm_discretize(a, B, 0.3)
    A_dense, B_dense = _zoh_by_augmented_exponential(np.diag(a), B.reshape(5, -1), 0.3)
    np.testing.assert_allclose(A_bar, np.diag(A_dense), rtol=1e-12)
    np.testing.assert_allclose(B_bar.reshape(5, -1), B_dense, rtol=1e-10)


def test_zoh_is_exact_for_a_constant_input():
    # h' = a h + b u with u = 1 from h(0) = 0 has h(t) = b (exp(a t) - 1) / a
    a, b, delta = np.array([-0.7, -3.0]), np.array([1.5, -0.4]), 0.25
    A_bar, B_bar = attnlab.ssm_discretize(a, b, delta)
    h = np.zeros(2)
    for _ in range(8):
        h = A_bar * h + B_bar
    np.testing.assert_allclose(h, b * np.expm1(a * 8 * delta) / a, rtol=1e-12)


def test_complex_diagonal_zoh():
    a = np.array([-0.5 + 2.0j, -1.0 - 1.0j])
    A_bar, B_bar = attnlab.ssm_discretize(a, np.ones(2), 0.1)
    np.testing.assert_allclose(A_bar, np.exp(0.1 * a))
    np.testing.assert_allclose(B_bar, (np.exp(0.1 * a) - 1) / a)


def test_zoh_keeps_float32():
    A_bar, B_bar = attnlab.ssm_discretize(
        np.array([-1.0, -2.0], np.float32), np.ones(2, np.float32), 0.5
    )
    assert A_bar.dtype == np.float32 and B_bar.dtype == np.float32


@pytest.mark.parametrize(
    "A, B, delta, match",
    [
        (np.array([-1.0, 0.0]), np.ones(2), 0.1, "A must have a strictly negative real part"),
        (np.array([-1.0, 0.3]), np.ones(2), 0.1, "A must have a strictly negative real part"),
        (np.array([-1.0 + 1j, 0.1 + 1j]), np.ones(2), 0.1, "A must have a strictly negative"),
        (np.array([[0.5, 1.0], [0.0, -1.0]]), np.ones(2), 0.1, r"A \(its eigenvalues\)"),
        (np.array([-1.0, -2.0]), np.ones(3), 0.1, "A and B must have the same state size"),
        (np.ones((2, 3)), np.ones(2), 0.1, "A must be a diagonal vector"),
        (np.array([-1.0]), np.ones(1), 0.0, "delta must be a positive step"),
        (np.array([-1.0]), np.ones(1), np.ones(2), "delta must be a finite positive scalar"),
    ],
)
def test_discretize_errors_name_the_argument(A, B, delta, match):
    with pytest.raises(ValueError, match=match):
        attnlab.ssm_discretize(A, B, delta)


# ----------------------------------------------------------------------------- kernel, recurrence, FFT
def _dense_system(n, rng):
    A_bar, B_bar = attnlab.ssm_discretize(_stable_dense(n, rng), rng.normal(size=n), 0.2)
    return A_bar, B_bar, rng.normal(size=n)


def _diag_system(n, rng):
    A_bar, B_bar = attnlab.ssm_discretize(-np.exp(rng.normal(size=n)), rng.normal(size=n), 0.2)
    return A_bar, B_bar, rng.normal(size=n)


@pytest.mark.parametrize("system", [_dense_system, _diag_system])
def test_kernel_is_the_impulse_response_and_matches_matrix_powers(system):
    A_bar, B_bar, C = system(4, RNG)
    L = 12
    K = attnlab.ssm_kernel(A_bar, B_bar, C, L)
    impulse = np.zeros(L)
    impulse[0] = 1.0
    np.testing.assert_allclose(
        K, attnlab.ssm_recurrence(A_bar, B_bar, C, impulse), rtol=1e-12, atol=1e-15
    )
    A_mat = A_bar if A_bar.ndim == 2 else np.diag(A_bar)
    powers = [C @ np.linalg.matrix_power(A_mat, k) @ B_bar for k in range(L)]
    np.testing.assert_allclose(K, powers, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("system", [_dense_system, _diag_system])
@pytest.mark.parametrize("L", [1, 7, 64, 300])
def test_fft_convolution_equals_recurrence_float64(system, L):
    A_bar, B_bar, C = system(5, RNG)
    u = RNG.normal(size=(3, L))
    K = attnlab.ssm_kernel(A_bar, B_bar, C, L)
    y_fft = attnlab.ssm_convolve(K, u)
    np.testing.assert_allclose(y_fft, attnlab.ssm_recurrence(A_bar, B_bar, C, u), rtol=0, atol=1e-8)
    np.testing.assert_allclose(y_fft[0], np.convolve(K, u[0])[:L], atol=1e-10)


def test_complex_diagonal_kernel_and_convolution():
    a = np.array([-0.3 + 1.0j, -0.3 - 1.0j])  # a conjugate pair: real impulse response
    A_bar, B_bar = attnlab.ssm_discretize(a, np.array([1.0, 1.0]), 0.5)
    C = np.array([0.5 - 0.2j, 0.5 + 0.2j])
    u = RNG.normal(size=40)
    K = attnlab.ssm_kernel(A_bar, B_bar, C, 40)
    np.testing.assert_allclose(K.imag, 0, atol=1e-12)
    np.testing.assert_allclose(
        attnlab.ssm_convolve(K, u), attnlab.ssm_recurrence(A_bar, B_bar, C, u), atol=1e-10
    )


def test_kernel_and_convolve_keep_float32():
    A_bar, B_bar, C = (x.astype(np.float32) for x in _diag_system(3, RNG))
    K = attnlab.ssm_kernel(A_bar, B_bar, C, 10)
    assert K.dtype == np.float32
    assert attnlab.ssm_convolve(K, np.ones(10, np.float32)).dtype == np.float32
    assert attnlab.ssm_recurrence(A_bar, B_bar, C, np.ones(10, np.float32)).dtype == np.float32


def test_kernel_and_convolve_errors():
    with pytest.raises(ValueError, match="B_bar must have shape"):
        attnlab.ssm_kernel(np.ones(3) * 0.5, np.ones(4), np.ones(3), 5)
    with pytest.raises(ValueError, match="C must have shape"):
        attnlab.ssm_kernel(np.ones(3) * 0.5, np.ones(3), np.ones(2), 5)
    with pytest.raises(ValueError, match="L must be a positive integer"):
        attnlab.ssm_kernel(np.ones(3) * 0.5, np.ones(3), np.ones(3), 0)
    with pytest.raises(ValueError, match="K and u must have the same length"):
        attnlab.ssm_convolve(np.ones(4), np.ones(5))


# ----------------------------------------------------------------------------- parallel_scan
def _loop_scan(a, b):
    h = np.zeros(a.shape[:-1])
    out = np.empty_like(b)
    for t in range(a.shape[-1]):
        h = a[..., t] * h + b[..., t]
        out[..., t] = h
    return out


@settings(max_examples=30, deadline=None)
@given(length=st.integers(1, 70), batch=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_parallel_scan_equals_the_loop(length, batch, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.1, 1.1, size=(batch, length))
    b = rng.normal(size=(batch, length))
    np.testing.assert_allclose(
        attnlab.parallel_scan(a, b), _loop_scan(a, b), rtol=1e-10, atol=1e-12
    )


def test_parallel_scan_broadcasts_and_keeps_float32():
    a = np.full(9, 0.5, dtype=np.float32)
    b = np.ones((2, 9), dtype=np.float32)
    h = attnlab.parallel_scan(a, b)
    assert h.dtype == np.float32 and h.shape == (2, 9)
    np.testing.assert_allclose(h[0], 2 * (1 - 0.5 ** np.arange(1, 10)), rtol=1e-6)


def test_parallel_scan_uses_log_steps():
    # ceil(log2(L)) vectorised rounds: on L = 4096 only a few dozen lines run, not thousands
    lines = 0

    def tracer(frame, event, arg):
        nonlocal lines
        if frame.f_code is attnlab.parallel_scan.__code__ and event == "line":
            lines += 1
        return tracer

    a = np.full(4096, 0.9)
    sys.settrace(tracer)
    try:
        h = attnlab.parallel_scan(a, np.ones(4096))
    finally:
        sys.settrace(None)
    np.testing.assert_allclose(h[-1], (1 - 0.9**4096) / 0.1)
    assert lines < 200, f"parallel_scan ran {lines} lines for L=4096: a loop over time?"


def test_parallel_scan_shape_error():
    with pytest.raises(ValueError, match="a and b must have broadcastable shapes"):
        attnlab.parallel_scan(np.ones(3), np.ones(4))


# ----------------------------------------------------------------------------- selective_scan
def _scan_inputs(rng, batch=2, d_inner=3, d_state=4, L=9, dtype=np.float64):
    u = rng.normal(size=(batch, d_inner, L))
    delta = np.log1p(np.exp(rng.normal(size=(batch, d_inner, L))))
    A = -np.exp(rng.normal(size=(d_inner, d_state)))
    B = rng.normal(size=(batch, d_state, L))
    C = rng.normal(size=(batch, d_state, L))
    D = rng.normal(size=d_inner)
    return tuple(x.astype(dtype) for x in (u, delta, A, B, C, D))


@pytest.mark.parametrize("with_d", [True, False])
def test_selective_scan_matches_transformers_slow_path(with_d):
    from transformers.models.mamba.modeling_mamba import mamba_selective_scan

    u, delta, A, B, C, D = _scan_inputs(RNG)
    ours = attnlab.selective_scan(u, delta, A, B, C, D if with_d else None)
    t = [torch.from_numpy(x) for x in (u, delta, A, B, C, D)]
    theirs = mamba_selective_scan(*t[:5], D=t[5] if with_d else None).numpy()
    # transformers casts B and u to float32 inside its scan, hence the float32 tolerance
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_selective_scan_with_constant_inputs_is_an_lti_ssm():
    # delta, B, C constant in time: each channel is the LTI system (exp(delta A), delta B, C)
    rng = np.random.default_rng(3)
    u, _, A, _, _, _ = _scan_inputs(rng, batch=1, d_inner=2, d_state=3, L=20)
    b, c = rng.normal(size=3), rng.normal(size=3)
    delta = np.full_like(u, 0.3)
    B = np.broadcast_to(b[None, :, None], (1, 3, 20))
    C = np.broadcast_to(c[None, :, None], (1, 3, 20))
    y = attnlab.selective_scan(u, delta, A, B, C)
    for d in range(2):
        expected = attnlab.ssm_recurrence(np.exp(0.3 * A[d]), 0.3 * b, c, u[0, d])
        np.testing.assert_allclose(y[0, d], expected, rtol=1e-12)


def test_selective_scan_keeps_float32():
    y = attnlab.selective_scan(*_scan_inputs(RNG, dtype=np.float32))
    assert y.dtype == np.float32


@pytest.mark.parametrize(
    "change, match",
    [
        ({"A": lambda A: -A}, "A must have a strictly negative real part"),
        ({"A": lambda A: A[:, :2][:2]}, r"A must have shape \(d_inner=3, d_state\)"),
        ({"delta": lambda d: d[..., :-1]}, "delta must have the shape of u"),
        ({"B": lambda B: B[:, :2]}, r"B must have shape \(batch, d_state, L\)"),
        ({"C": lambda C: C[..., :-1]}, r"C must have shape \(batch, d_state, L\)"),
        ({"D": lambda D: D[:2]}, r"D must have shape \(d_inner,\)"),
        ({"u": lambda u: u[0]}, r"u must have shape \(batch, d_inner, L\)"),
    ],
)
def test_selective_scan_errors_name_the_argument(change, match):
    args = dict(zip(["u", "delta", "A", "B", "C", "D"], _scan_inputs(RNG)))
    ((name, fn),) = change.items()
    args[name] = fn(args[name])
    with pytest.raises(ValueError, match=match):
        attnlab.selective_scan(**args)
