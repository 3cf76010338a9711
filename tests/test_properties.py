"""Property tests (hypothesis) for the NumPy contract functions of DESIGN.md.

Random shapes, float32 and float64, extreme values (huge, tiny, subnormal, -inf where it means
"masked"): the results are finite where the maths defines them, attention rows sum to 1 (or to 0
when a query may see no key), and undefined input raises ValueError instead of a silent NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from attnlab import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    causal_mask,
    layer_norm,
    rms_norm,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
    softmax,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])
# Values whose rotation or weighted average cannot leave the float range (|x| * sqrt(2) < max).
BOUNDED = {np.float32: float(np.float32(1e37)), np.float64: 1e300}
SUM_TOL = {np.float32: 1e-5, np.float64: 1e-12}


def floats_of(dtype, max_abs=None, neg_inf=False):
    """Finite floats of `dtype` over the whole range (hypothesis favours 0, subnormals, extremes)."""
    width = 32 if dtype == np.float32 else 64
    finite = st.floats(
        min_value=None if max_abs is None else -max_abs,
        max_value=max_abs,
        allow_nan=False,
        allow_infinity=False,
        width=width,
    )
    return st.one_of(finite, st.just(-math.inf)) if neg_inf else finite


@st.composite
def float_arrays(draw, min_dims=1, max_dims=3, max_side=5, max_abs=None, neg_inf=False, dtype=None):
    dtype = dtype if dtype is not None else draw(DTYPES)
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side))
    return draw(hnp.arrays(dtype, shape, elements=floats_of(dtype, max_abs, neg_inf)))


# ---------------------------------------------------------------------------------------------
# softmax
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(x=float_arrays(neg_inf=True), data=st.data())
def test_softmax_rows_sum_to_one_or_zero(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    out = softmax(x, axis=axis)
    assert out.dtype == x.dtype and out.shape == x.shape
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all()
    assert (out[np.isneginf(x)] == 0).all()  # masked entries get exactly 0
    sums = out.sum(axis=axis)
    all_masked = np.isneginf(x).all(axis=axis)
    np.testing.assert_array_equal(sums[all_masked], 0.0)
    np.testing.assert_allclose(sums[~all_masked], 1.0, atol=SUM_TOL[x.dtype.type] * x.shape[axis])
    # The largest entry of a row gets the largest weight.
    np.testing.assert_array_equal(
        np.take_along_axis(out, np.argmax(x, axis=axis, keepdims=True), axis=axis),
        np.max(out, axis=axis, keepdims=True),
    )


@SETTINGS
@given(x=float_arrays(), data=st.data(), bad=st.sampled_from([math.nan, math.inf]))
def test_softmax_rejects_nan_and_plus_inf(x, data, bad):
    index = tuple(data.draw(st.integers(0, n - 1)) for n in x.shape)
    x = x.copy()
    x[index] = bad
    with pytest.raises(ValueError, match="x contains"):
        softmax(x)


# ---------------------------------------------------------------------------------------------
# scaled_dot_product_attention and causal_mask
# ---------------------------------------------------------------------------------------------


@st.composite
def attention_inputs(draw):
    dtype = draw(DTYPES)
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    n_q, n_k, d, d_v = (draw(st.integers(1, 5)) for _ in range(4))
    qk = floats_of(dtype)  # huge q, k may overflow the scores: that must raise, not give NaN
    q = draw(hnp.arrays(dtype, (*batch, n_q, d), elements=qk))
    k = draw(hnp.arrays(dtype, (*batch, n_k, d), elements=qk))
    v = draw(hnp.arrays(dtype, (*batch, n_k, d_v), elements=floats_of(dtype, BOUNDED[dtype])))
    mask = draw(st.none() | hnp.arrays(bool, (n_q, n_k)))
    causal = draw(st.booleans())
    return q, k, v, mask, causal


@SETTINGS
@given(inputs=attention_inputs())
def test_attention_weights_are_distributions_or_raise(inputs):
    q, k, v, mask, causal = inputs
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = np.ones((n_q, n_k), dtype=bool) if mask is None else mask.copy()
    if causal:
        allowed &= np.tril(np.ones((n_q, n_k), dtype=bool), k=n_k - n_q)
    with np.errstate(all="ignore"):
        overflow = not np.isfinite(q @ np.swapaxes(k, -1, -2)).all()
    if overflow:  # an overflowing score must raise, never act as a silent mask or a NaN
        with pytest.raises(ValueError, match="overflow"):
            scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
        return
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    assert out.dtype == q.dtype and weights.dtype == q.dtype
    assert out.shape == (*q.shape[:-1], v.shape[-1]) and weights.shape == (*q.shape[:-1], n_k)
    assert np.isfinite(out).all() and np.isfinite(weights).all()
    assert (weights[..., ~allowed] == 0).all()
    sums = weights.sum(axis=-1)
    no_key = ~allowed.any(axis=-1)  # (n_q,): queries that may see nothing
    np.testing.assert_array_equal(sums[..., no_key], 0.0)
    np.testing.assert_allclose(sums[..., ~no_key], 1.0, atol=SUM_TOL[q.dtype.type] * n_k)


@SETTINGS
@given(n_q=st.integers(1, 30), n_k=st.none() | st.integers(1, 30))
def test_causal_mask_is_the_shifted_lower_triangle(n_q, n_k):
    mask = causal_mask(n_q, n_k)
    n_k = n_q if n_k is None else n_k
    assert mask.dtype == bool and mask.shape == (n_q, n_k)
    np.testing.assert_array_equal(mask, np.tril(np.ones((n_q, n_k), dtype=bool), k=n_k - n_q))
    # Each query sees one key more than the previous one; the last query sees every key
    # when there are at least as many keys as queries.
    seen = mask.sum(axis=1)
    np.testing.assert_array_equal(seen, np.clip(np.arange(n_q) + n_k - n_q + 1, 0, n_k))
    if n_k >= n_q:
        assert mask[-1].all()


# ---------------------------------------------------------------------------------------------
# norms
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(x=float_arrays(), data=st.data())
def test_layer_norm_finite_and_normalised(x, data):
    d = x.shape[-1]
    dtype = x.dtype.type
    gamma = data.draw(hnp.arrays(dtype, (d,), elements=st.floats(-3, 3, width=32)), label="gamma")
    beta = data.draw(hnp.arrays(dtype, (d,), elements=st.floats(-3, 3, width=32)), label="beta")
    out = layer_norm(x, gamma, beta)
    assert out.dtype == x.dtype and out.shape == x.shape and np.isfinite(out).all()
    x_hat = layer_norm(x, np.ones(d, dtype), np.zeros(d, dtype))
    assert np.isfinite(x_hat).all()
    assert (np.abs(x_hat) <= math.sqrt(d) * (1 + 1e-3)).all()  # sum of x_hat**2 <= d
    np.testing.assert_allclose(out, x_hat * gamma + beta, rtol=1e-4, atol=1e-4)
    # Rows whose spread is well above sqrt(eps) and above rounding: mean 0, variance 1.
    scale = np.max(np.abs(x.astype(np.float64)), axis=-1, keepdims=True)
    xs = x / np.where(scale > 0, scale, 1.0)
    spread = np.std(xs.astype(np.float64), axis=-1)
    with np.errstate(over="ignore"):
        good = (spread > 1e-2) & (spread * scale[..., 0] > 1.0)
    np.testing.assert_allclose(np.mean(x_hat, axis=-1)[good], 0.0, atol=1e-3)
    np.testing.assert_allclose(
        np.mean(x_hat.astype(np.float64) ** 2, axis=-1)[good], 1.0, rtol=1e-2
    )


@SETTINGS
@given(x=float_arrays())
def test_rms_norm_finite_and_unit_rms(x):
    d = x.shape[-1]
    out = rms_norm(x, np.ones(d, x.dtype))
    assert out.dtype == x.dtype and out.shape == x.shape and np.isfinite(out).all()
    assert (np.abs(out) <= math.sqrt(d) * (1 + 1e-3)).all()
    scale = np.max(np.abs(x.astype(np.float64)), axis=-1)
    with np.errstate(over="ignore"):
        ms = np.mean((x / np.where(scale > 0, scale, 1.0)[..., None]).astype(np.float64) ** 2, -1)
        good = np.sqrt(ms) * scale > 1.0  # rms well above sqrt(eps)
    np.testing.assert_allclose(np.mean(out.astype(np.float64) ** 2, axis=-1)[good], 1.0, rtol=1e-3)


@SETTINGS
@given(x=float_arrays(), data=st.data(), bad=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_norms_reject_non_finite_input(x, data, bad):
    index = tuple(data.draw(st.integers(0, n - 1)) for n in x.shape)
    x = x.copy()
    x[index] = bad
    d = x.shape[-1]
    with pytest.raises(ValueError, match="x contains"):
        layer_norm(x, np.ones(d), np.zeros(d))
    with pytest.raises(ValueError, match="x contains"):
        rms_norm(x, np.ones(d))


# ---------------------------------------------------------------------------------------------
# positions
# ---------------------------------------------------------------------------------------------


@st.composite
def rope_inputs(draw):
    dtype = draw(DTYPES)
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    n, half_d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    x = draw(hnp.arrays(dtype, (*lead, n, 2 * half_d), elements=floats_of(dtype, BOUNDED[dtype])))
    positions = draw(st.none() | hnp.arrays(np.int64, (n,), elements=st.integers(0, 10**6)))
    base = draw(st.sampled_from([10000.0, 500000.0, 2.0]))
    return x, positions, base


@SETTINGS
@given(inputs=rope_inputs())
def test_rope_is_a_rotation_of_each_pair(inputs):
    x, positions, base = inputs
    out = apply_rope(x, positions, base=base)
    assert out.dtype == x.dtype and out.shape == x.shape and np.isfinite(out).all()
    x64, out64 = x.astype(np.float64), out.astype(np.float64)
    rtol = 1e-5 if x.dtype == np.float32 else 1e-12
    atol = 1e-36 if x.dtype == np.float32 else 1e-300  # subnormals lose relative precision
    np.testing.assert_allclose(
        np.hypot(out64[..., 0::2], out64[..., 1::2]),
        np.hypot(x64[..., 0::2], x64[..., 1::2]),
        rtol=rtol,
        atol=atol,
    )
    if positions is None:  # position 0 is the identity
        np.testing.assert_array_equal(out[..., 0, :], x[..., 0, :])


@SETTINGS
@given(n_heads=st.integers(1, 64), n_q=st.integers(1, 20), n_k=st.none() | st.integers(1, 20))
def test_alibi_bias_is_minus_slope_times_distance(n_heads, n_q, n_k):
    bias = alibi_bias(n_heads, n_q, n_k)
    n_k = n_q if n_k is None else n_k
    slopes = alibi_slopes(n_heads)
    assert bias.shape == (n_heads, n_q, n_k) and np.isfinite(bias).all() and (bias <= 0).all()
    assert ((slopes > 0) & (slopes < 1)).all() and len(np.unique(slopes)) == n_heads
    distance = np.abs(np.arange(n_q)[:, None] + n_k - n_q - np.arange(n_k)[None, :])
    np.testing.assert_array_equal(bias[:, distance == 0], 0.0)
    far = distance > 0
    ratio = -bias[:, far] / distance[far]
    np.testing.assert_allclose(ratio, np.broadcast_to(slopes[:, None], ratio.shape), rtol=1e-12)


@SETTINGS
@given(n_positions=st.integers(1, 300), d_model=st.integers(1, 64))
def test_sinusoidal_encoding_is_bounded_and_on_the_circle(n_positions, d_model):
    pe = sinusoidal_positional_encoding(n_positions, d_model)
    assert pe.shape == (n_positions, d_model) and np.isfinite(pe).all()
    assert (np.abs(pe) <= 1).all()
    pairs = d_model // 2
    np.testing.assert_allclose(pe[:, 0 : 2 * pairs : 2] ** 2 + pe[:, 1 : 2 * pairs : 2] ** 2, 1.0)
    np.testing.assert_array_equal(pe[0, 0::2], 0.0)  # sin(0)
    np.testing.assert_array_equal(pe[0, 1::2], 1.0)  # cos(0)
