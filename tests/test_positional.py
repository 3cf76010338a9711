"""attnlab.positional against closed forms and independent formulations (torch, Hugging Face)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from attnlab import (
    alibi_bias,
    alibi_slopes,
    apply_rope,
    sinusoid_shift_matrix,
    sinusoidal_positional_encoding,
)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---------------------------------------------------------------------------------------------
# sinusoidal
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d_model", [1, 2, 7, 16])
def test_sinusoidal_matches_the_formula_written_out(d_model):
    n = 9
    pe = sinusoidal_positional_encoding(n, d_model)
    assert pe.shape == (n, d_model) and pe.dtype == np.float64
    for p in range(n):
        for col in range(d_model):
            i2 = col - col % 2  # 2i for both members of the pair
            angle = p / 10000 ** (i2 / d_model)
            expected = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert pe[p, col] == pytest.approx(expected, abs=1e-12)


def test_sinusoidal_matches_the_exp_log_formulation():
    # The common torch formulation: div_term = exp(2i * -log(10000) / d).
    n, d = 50, 32
    position = torch.arange(n, dtype=torch.float64)[:, None]
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    ref = torch.zeros(n, d, dtype=torch.float64)
    ref[:, 0::2] = torch.sin(position * div_term)
    ref[:, 1::2] = torch.cos(position * div_term)
    np.testing.assert_allclose(sinusoidal_positional_encoding(n, d), ref.numpy(), atol=1e-12)


@pytest.mark.parametrize("k", [0, 1, 5, -3, 40])
def test_shift_matrix_moves_every_position_by_k(k):
    d = 16
    pe = sinusoidal_positional_encoding(100, d)
    a = sinusoid_shift_matrix(k, d)
    assert a.shape == (d, d)
    for p in range(max(0, -k), 100 - max(k, 0)):
        np.testing.assert_allclose(a @ pe[p], pe[p + k], atol=1e-10)
    np.testing.assert_allclose(a @ a.T, np.eye(d), atol=1e-12)  # a rotation: orthogonal
    np.testing.assert_allclose(
        sinusoid_shift_matrix(2, d) @ a, sinusoid_shift_matrix(k + 2, d), atol=1e-12
    )


def test_shift_matrix_errors():
    with pytest.raises(ValueError, match="d_model must be even"):
        sinusoid_shift_matrix(1, 7)
    with pytest.raises(ValueError, match="d_model"):
        sinusoid_shift_matrix(1, 0)
    with pytest.raises(ValueError, match="k"):
        sinusoid_shift_matrix(float("inf"), 4)
    with pytest.raises(ValueError, match="n_positions"):
        sinusoidal_positional_encoding(0, 4)
    with pytest.raises(ValueError, match="d_model"):
        sinusoidal_positional_encoding(3, -1)


# ---------------------------------------------------------------------------------------------
# RoPE
# ---------------------------------------------------------------------------------------------


def rope_complex(x, positions, base=10000.0):
    """Independent formulation (as in Meta's LLaMA code): pairs as complex numbers times e^{i p theta}."""
    xt = torch.from_numpy(x.astype(np.float64))
    d = x.shape[-1]
    theta = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    freqs = torch.outer(torch.as_tensor(positions, dtype=torch.float64), theta)
    rotation = torch.polar(torch.ones_like(freqs), freqs)
    z = torch.view_as_complex(xt.reshape(*xt.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * rotation).reshape(xt.shape).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rope_matches_complex_formulation(rng, dtype):
    x = rng.standard_normal((2, 3, 7, 8)).astype(dtype)
    out = apply_rope(x)
    assert out.dtype == dtype and out.shape == x.shape
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(out, rope_complex(x, np.arange(7)), **tol)
    positions = np.array([3, 10, 0, 250, 4, 4, 1000])
    np.testing.assert_allclose(
        apply_rope(x, positions, base=500.0), rope_complex(x, positions, base=500.0), **tol
    )


def test_rope_scores_depend_only_on_offset(rng):
    d = 16
    q, k = rng.standard_normal(d), rng.standard_normal(d)

    def score(m, n):
        qm = apply_rope(q[None, :], positions=[m])[0]
        kn = apply_rope(k[None, :], positions=[n])[0]
        return qm @ kn

    for m, n in [(0, 0), (5, 2), (2, 5), (30, 11)]:
        for shift in (1, 17, 400):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), rel=1e-10, abs=1e-10)
    assert abs(score(5, 2) - score(2, 5)) > 1e-3  # but it does depend on the offset's sign


def test_rope_preserves_norms_and_position_zero(rng):
    x = rng.standard_normal((5, 10))
    out = apply_rope(x)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)
    pairs_in = np.hypot(x[:, 0::2], x[:, 1::2])
    np.testing.assert_allclose(np.hypot(out[:, 0::2], out[:, 1::2]), pairs_in, rtol=1e-12)
    np.testing.assert_allclose(out[0], x[0])  # position 0 is not rotated


def test_rope_positions_broadcast_over_batch(rng):
    x = rng.standard_normal((2, 4, 6))
    positions = np.array([[0, 1, 2, 3], [5, 6, 7, 8]])
    out = apply_rope(x, positions)
    for b in range(2):
        np.testing.assert_allclose(out[b], apply_rope(x[b], positions[b]))


def test_rope_errors(rng):
    with pytest.raises(ValueError, match=r"x must be even|last axis of x must be even"):
        apply_rope(rng.standard_normal((4, 5)))
    with pytest.raises(ValueError, match=r"positions must have N=4"):
        apply_rope(rng.standard_normal((4, 6)), positions=[0, 1, 2])
    with pytest.raises(ValueError, match="positions"):
        apply_rope(rng.standard_normal((3, 4, 6)), positions=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="x must have at least 2 dimensions"):
        apply_rope(rng.standard_normal(6))
    with pytest.raises(ValueError, match="base"):
        apply_rope(rng.standard_normal((4, 6)), base=0.0)


# ---------------------------------------------------------------------------------------------
# ALiBi
# ---------------------------------------------------------------------------------------------


def test_alibi_slopes_closed_forms():
    # 8 heads: 1/2, 1/4, ..., 1/256 (Press et al. 2022, section 3).
    np.testing.assert_allclose(alibi_slopes(8), [2.0 ** -(h + 1) for h in range(8)], rtol=1e-14)
    # 16 heads: 1/sqrt(2), 1/2, ..., 1/256.
    np.testing.assert_allclose(
        alibi_slopes(16), [2.0 ** (-(h + 1) / 2) for h in range(16)], rtol=1e-14
    )
    # 12 heads, the paper's rule: the 8 slopes of 8 heads, then every other slope of 16 heads.
    expected_12 = [2.0 ** -(h + 1) for h in range(8)] + [2.0**-0.5, 2.0**-1.5, 2.0**-2.5, 2.0**-3.5]
    np.testing.assert_allclose(alibi_slopes(12), expected_12, rtol=1e-14)


def test_alibi_slopes_match_hugging_face_bloom():
    pytest.importorskip("transformers", reason="BLOOM's ALiBi slopes as a reference")
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    for n in range(1, 41):
        ref = _get_alibi_slopes(n, torch.device("cpu")).double().numpy()
        np.testing.assert_allclose(alibi_slopes(n), ref, rtol=1e-6, err_msg=f"n_heads={n}")


def test_alibi_bias_closed_form_and_alignment():
    h, n_q, n_k = 4, 3, 6
    bias = alibi_bias(h, n_q, n_k)
    slopes = alibi_slopes(h)
    assert bias.shape == (h, n_q, n_k)
    for head in range(h):
        for i in range(n_q):
            for j in range(n_k):
                assert bias[head, i, j] == -slopes[head] * abs(i + n_k - n_q - j)
    # Bottom-right aligned: the queries are the last n_q rows of the square bias.
    np.testing.assert_array_equal(bias, alibi_bias(h, n_k)[:, -n_q:, :])
    # One decoding query sees the newest key at distance 0.
    assert alibi_bias(h, 1, 10)[:, 0, -1].tolist() == [0.0] * h


def test_alibi_bias_matches_bloom_up_to_a_row_constant():
    """BLOOM adds +slope * j; on the causal part this differs from -slope * (i - j) by a per-row
    constant (-slope * i), which softmax ignores."""
    pytest.importorskip("transformers", reason="BLOOM's ALiBi tensor as a reference")
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    h, n = 6, 5
    ref = build_alibi_tensor(torch.ones(1, n), h, torch.float64).reshape(h, 1, n).numpy()
    ours = alibi_bias(h, n)
    slopes = alibi_slopes(h)
    causal = np.tril(np.ones((n, n), dtype=bool))
    shifted = ref - slopes[:, None, None] * np.arange(n)[None, :, None]  # minus slope * i
    np.testing.assert_allclose(
        ours[:, causal], np.broadcast_to(shifted, ours.shape)[:, causal], rtol=1e-6
    )


def test_alibi_errors():
    with pytest.raises(ValueError, match="n_heads"):
        alibi_slopes(0)
    with pytest.raises(ValueError, match="n_heads"):
        alibi_bias(2.5, 3)
    with pytest.raises(ValueError, match="n_q"):
        alibi_bias(2, 0)
    with pytest.raises(ValueError, match="n_k"):
        alibi_bias(2, 3, -1)
