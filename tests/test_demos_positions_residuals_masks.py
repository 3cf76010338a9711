"""Zone 3a's measured demos and explorers: attnlab.demos.softmax_scale, positions, residuals,
pretrained (GPT-2 blocks) and attnlab.plots (masks, the head grid, positions, curves).

Each test checks a demo against something independent of its code: a closed form from the
lecture's derivations, torch, or Hugging Face's GPT2Block.
"""

from __future__ import annotations

import attnlab
import matplotlib.pyplot as plt  # the Agg backend is set by conftest.py
import numpy as np
import pytest
import torch
from attnlab.blocks import GPT2_BLOCK_KEYS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- Var(q . k)


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize("d_k, q_var, k_var", [(1, 1.0, 1.0), (64, 2.0, 0.5), (300, 1.0, 3.0)])
def test_monte_carlo_variance_agrees_with_the_derivation(distribution, d_k, q_var, k_var):
    for scaled in (False, True):
        r = attnlab.score_variance_monte_carlo(
            d_k,
            n_samples=4000,
            q_var=q_var,
            k_var=k_var,
            scaled=scaled,
            distribution=distribution,
            seed=3,
        )
        claim = d_k * q_var * k_var / (d_k if scaled else 1)
        assert r["predicted"] == pytest.approx(claim)
        assert abs(r["empirical"] - claim) < 5 * r["std_error"], r
        assert abs(r["z"]) < 5


def test_monte_carlo_standard_error_matches_the_product_of_normals():
    # For d_k = 1, q k with q, k ~ N(0, 1): E[(qk)^4] = 9, Var = 1, so se = sqrt(8 / n).
    n = 20_000
    r = attnlab.score_variance_monte_carlo(1, n_samples=n, seed=1)
    assert r["std_error"] == pytest.approx(np.sqrt(8 / n), rel=0.25)


def test_monte_carlo_rejects_bad_arguments():
    with pytest.raises(ValueError, match="distribution"):
        attnlab.score_variance_monte_carlo(4, distribution="cauchy")
    with pytest.raises(ValueError, match="n_samples"):
        attnlab.score_variance_monte_carlo(4, n_samples=1)


# ----------------------------------------------------------------------------- positions


@pytest.mark.parametrize("d_model", [8, 64])
def test_sinusoidal_similarity_is_the_mean_of_cosines(d_model):
    dist, sim = attnlab.positional_similarity("sinusoidal", 50, d_model)
    omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
    closed_form = np.cos(dist[:, None] * omega).mean(axis=1)  # (2/d) sum_i cos(k w_i)
    np.testing.assert_allclose(sim, closed_form, atol=1e-12)
    _, later = attnlab.positional_similarity("sinusoidal", 50, d_model, position=123)
    np.testing.assert_allclose(later, sim, atol=1e-12)


def test_rope_similarity_is_a_weighted_sum_of_cosines():
    d, base = 16, 500.0
    dist, sim = attnlab.positional_similarity("rope", 40, d, base=base, seed=4)
    q = np.random.default_rng(4).normal(size=d)  # the documented vector
    pair_energy = q[0::2] ** 2 + q[1::2] ** 2
    theta = base ** (-np.arange(0, d, 2) / d)
    closed_form = np.cos(dist[:, None] * theta) @ pair_energy / (q @ q)
    np.testing.assert_allclose(sim, closed_form, atol=1e-12)
    _, later = attnlab.positional_similarity("rope", 40, d, base=base, seed=4, position=77)
    np.testing.assert_allclose(later, sim, atol=1e-12)


def test_alibi_similarity_is_exp_minus_slope_times_distance():
    dist, factor = attnlab.positional_similarity("alibi", 30, n_heads=6)
    slopes = attnlab.alibi_slopes(6)
    assert factor.shape == (6, 31)
    np.testing.assert_allclose(factor, np.exp(-slopes[:, None] * dist[None, :]), rtol=1e-12)


def test_positional_similarity_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        attnlab.positional_similarity("learned")


def test_relative_position_check_separates_the_encodings():
    spreads = {
        kind: attnlab.relative_position_check(kind)[1]
        for kind in ("none", "sinusoidal", "rope", "alibi")
    }
    assert spreads["rope"] < 1e-12 and spreads["alibi"] < 1e-12 and spreads["none"] < 1e-12
    assert spreads["sinusoidal"] > 0.1  # added positions are not purely relative
    scores, _ = attnlab.relative_position_check("none")
    assert np.ptp(scores) < 1e-12  # no positions: every position pair scores the same
    scores, _ = attnlab.relative_position_check("rope")
    assert np.ptp(scores) > 0.1  # ... while RoPE's scores do change with m - n


# ----------------------------------------------------------------------------- gradients


def test_residual_connections_keep_the_gradient():
    norms = attnlab.residual_gradient_demo(n_layers=30, width=16, gain=0.5)
    assert norms["plain"] < 1e-5  # a product of 30 small Jacobians
    assert norms["residual"] > 0.5


def test_residual_demo_matches_finite_differences_for_one_layer():
    # One plain layer: d sum(tanh(x W)) / dx, compared with central differences in NumPy.
    norms = attnlab.residual_gradient_demo(n_layers=1, width=4, gain=1.0, seed=2)
    g = torch.Generator().manual_seed(2)
    w = (torch.randn(4, 4, generator=g, dtype=torch.float64) / 2.0).numpy()
    x0 = torch.randn(1, 4, generator=g, dtype=torch.float64).numpy()[0]
    eps = 1e-6
    grad = np.array(
        [
            (np.tanh((x0 + eps * e) @ w).sum() - np.tanh((x0 - eps * e) @ w).sum()) / (2 * eps)
            for e in np.eye(4)
        ]
    )
    assert norms["plain"] == pytest.approx(np.linalg.norm(grad), rel=1e-6)


def test_pre_ln_gradients_shrink_with_depth_post_ln_do_not():
    """Xiong et al. 2020, Theorem 1: last-layer gradient ~ 1/sqrt(L) (Pre-LN), ~ 1 (Post-LN)."""

    def last(prenorm, n_layers):
        return np.mean(
            [
                attnlab.gradient_norms_by_depth(prenorm, n_layers=n_layers, seed=s)[-1]
                for s in (0, 1)
            ]
        )

    pre_ratio = last(True, 32) / last(True, 4)
    post_ratio = last(False, 32) / last(False, 4)
    assert pre_ratio == pytest.approx(8**-0.5, rel=0.3)
    assert post_ratio == pytest.approx(1.0, rel=0.3)


def test_gradient_norms_are_deterministic_and_leave_torch_settings_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = attnlab.gradient_norms_by_depth(True, n_layers=3, seed=5)
    assert torch.rand(1) == expected_next  # the global generator was not consumed
    b = attnlab.gradient_norms_by_depth(True, n_layers=3, seed=5)
    assert a.shape == (3,) and np.all(np.isfinite(a)) and np.all(a > 0)
    np.testing.assert_array_equal(a, b)
    assert torch.get_num_threads() == threads


# ----------------------------------------------------------------------------- GPT-2 block


def test_random_block_params_have_gpt2_names_and_shapes():
    p = attnlab.random_gpt2_block_params(12, d_ff=20, seed=0, dtype=np.float32)
    assert list(p) == list(GPT2_BLOCK_KEYS)
    assert p["attn.c_attn.weight"].shape == (12, 36) and p["mlp.c_fc.weight"].shape == (12, 20)
    assert p["mlp.c_proj.weight"].shape == (20, 12) and p["ln_2.bias"].shape == (12,)
    assert all(v.dtype == np.float32 for v in p.values())
    q = attnlab.random_gpt2_block_params(12, d_ff=20, seed=0, dtype=np.float32)
    assert all(np.array_equal(p[k], q[k]) for k in p)


@pytest.mark.parametrize("d_model, n_heads, d_ff", [(16, 4, None), (24, 3, 40)])
def test_torch_block_matches_numpy_block(d_model, n_heads, d_ff):
    params = attnlab.random_gpt2_block_params(d_model, d_ff=d_ff, seed=1)
    x = np.random.default_rng(0).normal(size=(2, 7, d_model))
    block = attnlab.gpt2_block_torch(params, n_heads)
    with torch.no_grad():
        y, weights = block(torch.from_numpy(x), need_weights=True)
    np.testing.assert_allclose(y.numpy(), attnlab.gpt2_block(x, params, n_heads), atol=1e-12)
    assert weights.shape == (2, n_heads, 7, 7)
    assert torch.all(torch.triu(weights, diagonal=1) == 0)  # causal


def test_hf_block_matches_numpy_and_torch_blocks():
    pytest.importorskip("transformers", reason="Hugging Face transformers is in the dev extra")
    params = attnlab.random_gpt2_block_params(24, d_ff=40, seed=2)
    x = np.random.default_rng(1).normal(size=(1, 6, 24))
    additive = torch.from_numpy(np.where(attnlab.causal_mask(6), 0.0, -np.inf))[None, None]
    with torch.no_grad():
        out = attnlab.gpt2_block_hf(params, 3)(torch.from_numpy(x), attention_mask=additive)
        out = out[0] if isinstance(out, tuple) else out
        ours, _ = attnlab.gpt2_block_torch(params, 3)(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), attnlab.gpt2_block(x, params, 3), atol=1e-12)
    np.testing.assert_allclose(out.numpy(), ours.numpy(), atol=1e-12)


def test_hf_block_without_transformers_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install transformers"):
        attnlab.gpt2_block_hf(attnlab.random_gpt2_block_params(8), 2)


def test_block_builders_reject_bad_params():
    params = attnlab.random_gpt2_block_params(16)
    with pytest.raises(ValueError, match="n_heads=3 must divide d_model=16"):
        attnlab.gpt2_block_torch(params, 3)
    del params["ln_2.bias"]
    with pytest.raises(ValueError, match=r"ln_2\.bias"):
        attnlab.gpt2_block_torch(params, 4)


# ----------------------------------------------------------------------------- widgets


def test_mask_patterns_are_the_masks_they_claim():
    n, window, stride = 10, 2, 3
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    np.testing.assert_array_equal(attnlab.mask_for_pattern("full", n), j <= i)
    np.testing.assert_array_equal(
        attnlab.mask_for_pattern("full", n, causal=False), np.ones((n, n), dtype=bool)
    )
    np.testing.assert_array_equal(
        attnlab.mask_for_pattern("local", n, window=window), (j <= i) & (i - j <= window)
    )
    np.testing.assert_array_equal(
        attnlab.mask_for_pattern("strided", n, stride=stride), (j <= i) & ((i - j) % stride == 0)
    )
    with pytest.raises(ValueError, match="pattern"):
        attnlab.mask_for_pattern("diagonal", n)


def test_draw_mask_prints_counts_and_no_forbidden_weight(capsys):
    attnlab.draw_mask("local", n=8, causal=True, window=1)
    text = capsys.readouterr().out
    assert "15 (query, key) pairs computed (closed form 15) of 36" in text  # 8 + 7 of 8 * 9 / 2
    assert "largest weight on a forbidden key: 0.0" in text


def test_explorers_draw_once_when_static(monkeypatch, capsys):
    monkeypatch.setenv("ATTNLAB_STATIC", "1")
    assert attnlab.positional_encoding_explorer() is None
    assert attnlab.mask_explorer() is None
    text = capsys.readouterr().out
    assert "RoPE base=10000" in text and "pattern='full'" in text
    assert len(plt.get_fignums()) == 2


def test_plot_helpers_draw_the_expected_panels():
    weights = attnlab.softmax(np.random.default_rng(0).normal(size=(3, 5, 5)))
    fig = attnlab.plot_attention_grid(weights, tokens=list("abcde"))
    assert [ax.get_title() for ax in fig.axes] == ["head 1", "head 2", "head 3"]
    fig = attnlab.plot_attention_grid(attnlab.alibi_bias(2, 4), kind="bias")
    assert sum(ax.get_title().startswith("head") for ax in fig.axes) == 2
    with pytest.raises(ValueError, match="n_heads, Nq, Nk"):
        attnlab.plot_attention_grid(weights[0])
    with pytest.raises(ValueError, match="kind"):
        attnlab.plot_attention_grid(weights, kind="scores")
    assert len(attnlab.plot_activations().axes) == 2
    depths = np.array([1, 2, 4, 8])
    fig = attnlab.plot_gradient_norms({"a": np.ones(3)}, depths, {"a": 1 / np.sqrt(depths)})
    assert "slope -0.50" in fig.axes[1].get_legend().get_texts()[0].get_text()
