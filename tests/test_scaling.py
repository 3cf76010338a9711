"""attnlab.scaling: power-law fits, Chinchilla sizing, and in-context GD by linear attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from attnlab import (
    chinchilla_optimal,
    fit_power_law,
    gd_step_linear_attention,
    icl_tokens,
    linear_attention_gd_weights,
    linear_self_attention,
)


@pytest.fixture
def rng():
    return np.random.default_rng(11)


# ---------------------------------------------------------------------------------------------
# power laws and Chinchilla
# ---------------------------------------------------------------------------------------------


def test_fit_power_law_recovers_exact_law():
    n = np.array([1e6, 3e6, 1e7, 3e7, 1e8])
    a, alpha = fit_power_law(n, 406.4 * n**-0.34)
    assert a == pytest.approx(406.4, rel=1e-10)
    assert alpha == pytest.approx(0.34, rel=1e-10)
    assert isinstance(a, float) and isinstance(alpha, float)


def test_fit_power_law_is_least_squares_in_log_space(rng):
    n = np.geomspace(1e3, 1e7, 12)
    loss = 5.0 * n**-0.1 * np.exp(0.05 * rng.standard_normal(12))
    a, alpha = fit_power_law(n, loss)
    # Independent least squares: solve [1, log n] [log a, -alpha]^T = log loss with torch.
    design = torch.stack([torch.ones(12, dtype=torch.float64), torch.from_numpy(np.log(n))], 1)
    sol = torch.linalg.lstsq(design, torch.from_numpy(np.log(loss))[:, None]).solution[:, 0]
    assert math.log(a) == pytest.approx(sol[0].item(), rel=1e-9)
    assert alpha == pytest.approx(-sol[1].item(), rel=1e-9)


def test_fit_power_law_float32_agrees_with_float64(rng):
    n = np.geomspace(1e3, 1e7, 8)
    loss = 3.0 * n**-0.2 * np.exp(0.02 * rng.standard_normal(8))
    a32, alpha32 = fit_power_law(n.astype(np.float32), loss.astype(np.float32))
    a64, alpha64 = fit_power_law(n, loss)
    assert alpha32 == pytest.approx(alpha64, abs=1e-4)
    assert a32 == pytest.approx(a64, rel=1e-3)


def test_fit_power_law_errors():
    with pytest.raises(ValueError, match="n must hold finite positive"):
        fit_power_law([1.0, -2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="loss must hold finite positive"):
        fit_power_law([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_power_law([1.0], [1.0])
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([4.0, 4.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="n must be a 1-D"):
        fit_power_law([[1.0, 2.0]], [1.0, 2.0])


def test_chinchilla_optimal_closed_forms():
    # Chinchilla itself (Hoffmann et al. 2022): 70B parameters on 1.4T tokens, C = 6 N D.
    flops = 6 * 70e9 * 1.4e12
    n_params, n_tokens = chinchilla_optimal(flops)
    assert n_params == pytest.approx(70e9, rel=1e-12)
    assert n_tokens == pytest.approx(1.4e12, rel=1e-12)
    # Any budget: the two constraints hold, and N grows like sqrt(C).
    for c, r in [(1e18, 20.0), (3.3e21, 5.0), (1e15, 100.0)]:
        n, d = chinchilla_optimal(c, tokens_per_param=r)
        assert 6 * n * d == pytest.approx(c, rel=1e-12)
        assert d / n == pytest.approx(r, rel=1e-12)
    assert chinchilla_optimal(4e20)[0] == pytest.approx(2 * chinchilla_optimal(1e20)[0])


def test_chinchilla_errors():
    with pytest.raises(ValueError, match="flops"):
        chinchilla_optimal(0.0)
    with pytest.raises(ValueError, match="flops"):
        chinchilla_optimal(float("inf"))
    with pytest.raises(ValueError, match="tokens_per_param"):
        chinchilla_optimal(1e20, tokens_per_param=-1)
    with pytest.raises(TypeError, match="flops"):
        chinchilla_optimal("1e20")


# ---------------------------------------------------------------------------------------------
# in-context learning: one gradient step = one linear attention layer
# ---------------------------------------------------------------------------------------------


def test_gd_step_matches_autograd(rng):
    n, d, m, lr = 20, 5, 7, 0.3
    x, x_query = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    y = x @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
    w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    loss = ((torch.from_numpy(x) @ w - torch.from_numpy(y)) ** 2).sum() / (2 * n)
    loss.backward()
    w1 = -lr * w.grad  # one step of gradient descent from w = 0
    expected = (torch.from_numpy(x_query) @ w1).numpy()
    pred = gd_step_linear_attention(x, y, x_query, lr)
    assert pred.shape == (m,)
    np.testing.assert_allclose(pred, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("n", "d", "m", "lr"), [(20, 5, 7, 0.3), (3, 1, 1, 2.0), (50, 8, 4, -0.1)])
def test_linear_attention_weights_implement_the_gd_step(rng, n, d, m, lr):
    x, x_query = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    y = rng.standard_normal(n)
    weights = linear_attention_gd_weights(d, lr, n_context=n)
    assert set(weights) == {"w_q", "w_k", "w_v", "w_o"}
    assert all(w.shape == (d + 1, d + 1) for w in weights.values())
    z = icl_tokens(x, y, x_query)
    assert z.shape == (n + m, d + 1)
    out = linear_self_attention(z, **weights)
    np.testing.assert_allclose(
        out[n:, d], gd_step_linear_attention(x, y, x_query, lr), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_array_equal(out[:, :d], z[:, :d])  # the x part passes through unchanged


def test_linear_self_attention_matches_torch_and_batches(rng):
    z = rng.standard_normal((2, 6, 4))
    w_q, w_k, w_v = (rng.standard_normal((4, 3)) for _ in range(3))
    w_o = rng.standard_normal((3, 4))
    zt = torch.from_numpy(z)
    q, k, v = zt @ torch.from_numpy(w_q), zt @ torch.from_numpy(w_k), zt @ torch.from_numpy(w_v)
    ref = zt + torch.einsum("btd,bsd,bse->bte", q, k, v) @ torch.from_numpy(w_o)
    np.testing.assert_allclose(
        linear_self_attention(z, w_q, w_k, w_v, w_o), ref.numpy(), rtol=1e-10
    )


def test_icl_errors(rng):
    x, y, xq = rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
        gd_step_linear_attention(x, y[:4], xq, 0.1)
    with pytest.raises(ValueError, match="x_query"):
        gd_step_linear_attention(x, y, xq[:, :2], 0.1)
    with pytest.raises(ValueError, match="x must have shape"):
        icl_tokens(x[0], y, xq)
    with pytest.raises(ValueError, match="lr"):
        gd_step_linear_attention(x, y, xq, float("nan"))
    with pytest.raises(ValueError, match="d"):
        linear_attention_gd_weights(0, 0.1, 5)
    with pytest.raises(ValueError, match="n_context"):
        linear_attention_gd_weights(3, 0.1, 0)
    with pytest.raises(ValueError, match="lr"):
        linear_attention_gd_weights(3, float("inf"), 5)
    w = rng.standard_normal((4, 4))
    with pytest.raises(ValueError, match="w_v"):
        linear_self_attention(rng.standard_normal((5, 4)), w, w, w[:3], w)
    with pytest.raises(ValueError, match="w_o"):
        linear_self_attention(rng.standard_normal((5, 4)), w, w, w, w[:3])
    with pytest.raises(ValueError, match="z"):
        linear_self_attention(rng.standard_normal(4), w, w, w, w)
    with pytest.raises(ValueError, match="w_q and w_k"):
        linear_self_attention(rng.standard_normal((5, 4)), w, w[:, :2], w, w)
    with pytest.raises(ValueError, match="w_q"):
        linear_self_attention(rng.standard_normal((5, 3)), w, w, w, w)
