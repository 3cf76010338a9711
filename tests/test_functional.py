"""attnlab.functional and attnlab.blocks against independent references: torch, Hugging Face
GPT-2, closed forms."""

from __future__ import annotations

import warnings

import attnlab
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from attnlab import (
    causal_mask,
    gelu,
    gpt2_block,
    gpt2_block_params,
    grouped_query_attention,
    kv_cache_attention_step,
    kv_cache_bytes,
    layer_norm,
    multi_head_attention,
    padding_mask,
    permutation_check,
    qkv_attention,
    rms_norm,
    scaled_dot_product_attention,
    score_statistics,
    score_variance,
    silu,
    softmax_jacobian,
    swiglu,
)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: {"rtol": 1e-4, "atol": 1e-5}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}


def randn(rng, *shape, dtype=np.float64, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def t(a):
    """NumPy -> torch, keeping the dtype."""
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------
# scaled_dot_product_attention: non-finite input and overflowing scores raise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["q", "k", "v"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_attention_rejects_non_finite_input(rng, name, bad):
    args = {"q": randn(rng, 3, 4), "k": randn(rng, 5, 4), "v": randn(rng, 5, 2)}
    args[name][1, 1] = bad
    with pytest.raises(ValueError, match=f"{name} contains NaN or inf"):
        scaled_dot_product_attention(**args)


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_overflow_raises_instead_of_masking(dtype):
    # q k^T = -(huge)**2 overflows to -inf, which must not be mistaken for a masked key.
    huge = np.finfo(dtype).max / 4
    q, k, v = (np.array([[x]], dtype=dtype) for x in (huge, -huge, 1.0))
    with pytest.raises(ValueError, match="overflow"):
        scaled_dot_product_attention(q, k, v)
    # Large but representable scores are fine: the softmax is stable.
    big = np.sqrt(np.finfo(dtype).max) / 4
    out, w = scaled_dot_product_attention(
        np.array([[big]], dtype=dtype),
        np.array([[big], [-big]], dtype=dtype),
        np.eye(2, dtype=dtype),
    )
    np.testing.assert_allclose(w, [[1.0, 0.0]])
    np.testing.assert_allclose(out, [[1.0, 0.0]])  # v = identity: out equals the weights


# ---------------------------------------------------------------------------------------------
# multi_head_attention
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_torch(rng, dtype, causal):
    b, n, d, h = 3, 5, 12, 3
    x = randn(rng, b, n, d, dtype=dtype)
    w_q, w_k, w_v, w_o = (randn(rng, d, d, dtype=dtype, scale=0.4) for _ in range(4))
    out, weights = multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads=h, causal=causal)

    # torch uses the column convention y = x W^T, so its matrices are our transposes.
    mha = torch.nn.MultiheadAttention(d, h, bias=False, batch_first=True)
    mha = mha.to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        mha.in_proj_weight.copy_(t(np.concatenate([w_q.T, w_k.T, w_v.T])))
        mha.out_proj.weight.copy_(t(w_o.T))
    block = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1) if causal else None
    xt = t(x)
    with torch.no_grad():
        ref_out, ref_w = mha(
            xt, xt, xt, attn_mask=block, need_weights=True, average_attn_weights=False
        )
    assert out.dtype == dtype and weights.dtype == dtype
    assert weights.shape == (b, h, n, n)
    np.testing.assert_allclose(out, ref_out.numpy(), **TOL[dtype])
    np.testing.assert_allclose(weights, ref_w.numpy(), **TOL[dtype])


def test_multi_head_attention_batch_dims_and_one_head(rng):
    x = randn(rng, 2, 3, 4, 8)
    w = [randn(rng, 8, 8, scale=0.5) for _ in range(4)]
    out, weights = multi_head_attention(x, *w, n_heads=2)
    assert out.shape == (2, 3, 4, 8) and weights.shape == (2, 3, 2, 4, 4)
    for i in range(2):
        o, wt = multi_head_attention(x[i, 1], *w, n_heads=2)
        np.testing.assert_allclose(out[i, 1], o, rtol=1e-12)
        np.testing.assert_allclose(weights[i, 1], wt, rtol=1e-12)
    # One head is plain attention on the projections.
    out1, w1 = multi_head_attention(x, *w, n_heads=1)
    ref_heads, ref_w = scaled_dot_product_attention(x @ w[0], x @ w[1], x @ w[2])
    np.testing.assert_allclose(out1, ref_heads @ w[3], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w1[..., 0, :, :], ref_w, rtol=1e-10)


def test_multi_head_attention_errors(rng):
    x = randn(rng, 4, 12)
    w = randn(rng, 12, 12)
    with pytest.raises(ValueError, match=r"n_heads=5 must divide d_model=12"):
        multi_head_attention(x, w, w, w, w, n_heads=5)
    with pytest.raises(ValueError, match="n_heads"):
        multi_head_attention(x, w, w, w, w, n_heads=0)
    with pytest.raises(ValueError, match=r"w_k must have shape \(12, 12\)"):
        multi_head_attention(x, w, w[:, :6], w, w, n_heads=2)
    with pytest.raises(ValueError, match="w_o"):
        multi_head_attention(x, w, w, w, w[:6], n_heads=2)
    with pytest.raises(ValueError, match="x"):
        multi_head_attention(x[0], w, w, w, w, n_heads=2)


# ---------------------------------------------------------------------------------------------
# norms and activations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_matches_torch(rng, dtype):
    x = randn(rng, 2, 3, 16, dtype=dtype, scale=3.0) + dtype(5)
    gamma, beta = randn(rng, 16, dtype=dtype), randn(rng, 16, dtype=dtype)
    for eps in (1e-5, 0.1):
        out = layer_norm(x, gamma, beta, eps=eps)
        ref = F.layer_norm(t(x), (16,), t(gamma), t(beta), eps=eps).numpy()
        assert out.dtype == dtype and out.shape == x.shape
        np.testing.assert_allclose(out, ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_matches_torch(rng, dtype):
    x = randn(rng, 2, 3, 16, dtype=dtype, scale=3.0)
    gamma = randn(rng, 16, dtype=dtype)
    for eps in (1e-6, 0.5):
        out = rms_norm(x, gamma, eps=eps)
        ref = F.rms_norm(t(x), (16,), t(gamma), eps=eps).numpy()
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, **TOL[dtype])


def test_norms_survive_huge_and_tiny_rows():
    # Squaring 1e200 overflows float64; the library rescales each row first.
    x = np.array([[1e200, -1e200, 3e200, 0.0], [1e-300, 2e-300, 0.0, -1e-300], [7.0] * 4])
    ones, zeros = np.ones(4), np.zeros(4)
    ln = layer_norm(x, ones, zeros)
    ref_row0 = layer_norm(x[0] / 1e200, ones, zeros, eps=0.0)  # eps is negligible at 1e200
    np.testing.assert_allclose(ln[0], ref_row0, rtol=1e-12)
    np.testing.assert_allclose(ln[1:], 0.0, atol=1e-12)  # |x| << sqrt(eps), constant row -> 0
    rms = rms_norm(x, ones)
    np.testing.assert_allclose(rms[0], x[0] / np.sqrt(np.mean((x[0] / 1e200) ** 2)) / 1e200)
    np.testing.assert_allclose(rms[2], 1.0, rtol=1e-7)
    assert np.isfinite(ln).all() and np.isfinite(rms).all()


def test_norm_errors():
    x = np.ones((2, 4))
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\)"):
        layer_norm(x, np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match="beta"):
        layer_norm(x, np.ones(4), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="gamma"):
        rms_norm(x, np.ones(5))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            layer_norm(np.array([1.0, bad]), np.ones(2), np.zeros(2))
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            rms_norm(np.array([1.0, bad]), np.ones(2))
    with pytest.raises(ValueError, match="eps"):
        layer_norm(x, np.ones(4), np.zeros(4), eps=-1.0)
    with pytest.raises(ValueError, match="eps"):
        rms_norm(x, np.ones(4), eps=-1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(dtype, approximate):
    x = np.concatenate([np.linspace(-8, 8, 101), [-60.0, 60.0, 0.0]]).astype(dtype)
    out = gelu(x, approximate=approximate)
    ref = F.gelu(t(x), approximate=approximate).numpy()
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, **TOL[dtype])


def test_gelu_modes_differ_and_bad_mode():
    x = np.linspace(-3, 3, 13)
    assert np.abs(gelu(x) - gelu(x, approximate="tanh")).max() > 1e-5
    with pytest.raises(ValueError, match="approximate"):
        gelu(x, approximate="sigmoid")


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_matches_torch(dtype):
    x = np.concatenate([np.linspace(-10, 10, 41), [-1000.0, 1000.0]]).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings at +-1000
        out = silu(x)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, F.silu(t(x)).numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_swiglu_matches_torch(rng, dtype):
    x = randn(rng, 2, 5, 8, dtype=dtype)
    w1, w3 = randn(rng, 8, 12, dtype=dtype), randn(rng, 8, 12, dtype=dtype)
    w2 = randn(rng, 12, 6, dtype=dtype)
    ref = ((F.silu(t(x) @ t(w1)) * (t(x) @ t(w3))) @ t(w2)).numpy()
    out = swiglu(x, w1, w2, w3)
    assert out.dtype == dtype and out.shape == (2, 5, 6)
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    with pytest.raises(ValueError, match="w3"):
        swiglu(x, w1, w2, w3[:, :5])
    with pytest.raises(ValueError, match="w2"):
        swiglu(x, w1, w2[:5], w3)
    with pytest.raises(ValueError, match="w1"):
        swiglu(x, w1[:4], w2, w3)
    with pytest.raises(ValueError, match="w2 must be a matrix"):
        swiglu(x, w1, w2[None], w3)


# ---------------------------------------------------------------------------------------------
# masks and projections
# ---------------------------------------------------------------------------------------------


def test_padding_mask_shape_and_values():
    m = padding_mask([3, 0, 5], n_k=5)
    assert m.shape == (3, 1, 1, 5) and m.dtype == bool
    np.testing.assert_array_equal(m[:, 0, 0].sum(axis=-1), [3, 0, 5])
    m2 = padding_mask(np.array([2, 4]), n_k=4, n_q=3)
    assert m2.shape == (2, 1, 3, 4)
    np.testing.assert_array_equal(m2[1, 0], np.ones((3, 4), dtype=bool))
    np.testing.assert_array_equal(m2[0, 0, :, 2:], False)


def test_padding_mask_equals_truncated_sequences(rng):
    """Masking the padded keys gives the same result as dropping them, and as torch SDPA."""
    b, h, n, d = 3, 2, 6, 4
    lengths = np.array([6, 2, 4])
    q, k, v = (randn(rng, b, h, n, d) for _ in range(3))
    out, weights = scaled_dot_product_attention(q, k, v, mask=padding_mask(lengths, n_k=n))
    for i, length in enumerate(lengths):
        ref, _ = scaled_dot_product_attention(q[i], k[i, :, :length], v[i, :, :length])
        np.testing.assert_allclose(out[i], ref, rtol=1e-12)
        np.testing.assert_array_equal(weights[i, :, :, length:], 0.0)
    mask_t = t(padding_mask(lengths, n_k=n))
    ref_t = F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=mask_t).numpy()
    np.testing.assert_allclose(out, ref_t, rtol=1e-10, atol=1e-12)
    # A sequence of length 0 sees no key: zero weights and output, never NaN.
    out0, w0 = scaled_dot_product_attention(q, k, v, mask=padding_mask([0, 1, 6], n_k=n))
    assert np.all(out0[0] == 0) and np.all(w0[0] == 0) and np.isfinite(out0).all()


def test_padding_mask_errors():
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, n_k=4\]"):
        padding_mask([1, 5], n_k=4)
    with pytest.raises(ValueError, match="lengths"):
        padding_mask([-1], n_k=4)
    with pytest.raises(ValueError, match="lengths"):
        padding_mask([1.5, 2.0], n_k=4)
    with pytest.raises(ValueError, match="lengths"):
        padding_mask([[1, 2]], n_k=4)
    with pytest.raises(ValueError, match="n_k"):
        padding_mask([1], n_k=0)
    with pytest.raises(ValueError, match="n_q"):
        padding_mask([1], n_k=3, n_q=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
def test_qkv_attention_matches_torch(rng, dtype, causal):
    x = randn(rng, 2, 5, 8, dtype=dtype)
    w_q, w_k = randn(rng, 8, 4, dtype=dtype), randn(rng, 8, 4, dtype=dtype)
    w_v = randn(rng, 8, 6, dtype=dtype)
    out, weights = qkv_attention(x, w_q, w_k, w_v, causal=causal)
    xt = t(x)
    ref = F.scaled_dot_product_attention(xt @ t(w_q), xt @ t(w_k), xt @ t(w_v), is_causal=causal)
    assert out.dtype == dtype and out.shape == (2, 5, 6) and weights.shape == (2, 5, 5)
    np.testing.assert_allclose(out, ref.numpy(), **TOL[dtype])
    # mask= is passed through
    mask = rng.random((5, 5)) < 0.7
    mask[:, 0] = True
    out_m, _ = qkv_attention(x, w_q, w_k, w_v, mask=mask)
    ref_m = F.scaled_dot_product_attention(
        xt @ t(w_q), xt @ t(w_k), xt @ t(w_v), attn_mask=torch.from_numpy(mask)
    )
    np.testing.assert_allclose(out_m, ref_m.numpy(), **TOL[dtype])


def test_qkv_attention_errors(rng):
    x = randn(rng, 5, 8)
    w = randn(rng, 8, 4)
    with pytest.raises(ValueError, match="w_q"):
        qkv_attention(x, randn(rng, 7, 4), w, w)
    with pytest.raises(ValueError, match="w_v"):
        qkv_attention(x, w, w, randn(rng, 4))
    with pytest.raises(ValueError, match="w_q and w_k"):
        qkv_attention(x, w, randn(rng, 8, 3), w)
    with pytest.raises(ValueError, match="x"):
        qkv_attention(x[0], w, w, w)


# ---------------------------------------------------------------------------------------------
# score statistics, variance, softmax Jacobian, permutation equivariance
# ---------------------------------------------------------------------------------------------


def test_score_statistics_matches_torch(rng):
    q, k = randn(rng, 50, 16), randn(rng, 50, 16)
    mean, std = score_statistics(q, k)
    dots = (t(q) * t(k)).sum(-1)
    assert isinstance(mean, float) and isinstance(std, float)
    assert mean == pytest.approx(dots.mean().item(), rel=1e-12)
    assert std == pytest.approx(dots.std(unbiased=False).item(), rel=1e-12)


def test_score_variance_matches_monte_carlo():
    """Var(q.k) = d_k q_var k_var, checked by sampling (fixed seed, 3% tolerance)."""
    rng = np.random.default_rng(0)
    d_k, q_var, k_var, n = 64, 2.0, 0.5, 40_000
    q = rng.normal(0, np.sqrt(q_var), (n, d_k))
    k = rng.normal(0, np.sqrt(k_var), (n, d_k))
    mean, std = score_statistics(q, k)
    assert score_variance(d_k, q_var, k_var) == pytest.approx(std**2, rel=0.03)
    scaled_std = np.std(np.sum(q * k, axis=-1) / np.sqrt(d_k))
    assert score_variance(d_k, q_var, k_var, scaled=True) == pytest.approx(scaled_std**2, rel=0.03)
    assert abs(mean) < 4 * std / np.sqrt(n)


def test_score_variance_errors():
    with pytest.raises(ValueError, match="d_k"):
        score_variance(0)
    with pytest.raises(ValueError, match="q_var"):
        score_variance(4, q_var=-1.0)
    with pytest.raises(ValueError, match="k_var"):
        score_variance(4, k_var=float("nan"))


def test_score_statistics_errors(rng):
    with pytest.raises(ValueError, match="q and k must have the same shape"):
        score_statistics(randn(rng, 5, 4), randn(rng, 5, 3))
    with pytest.raises(ValueError, match="q must have shape"):
        score_statistics(randn(rng, 4), randn(rng, 5, 4))
    with pytest.raises(ValueError, match="k must have shape"):
        score_statistics(randn(rng, 5, 4), randn(rng, 2, 5, 4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_jacobian_matches_autograd(rng, dtype):
    s = randn(rng, 2, 3, 5, dtype=dtype, scale=2.0)
    jac = softmax_jacobian(s)
    assert jac.shape == (2, 3, 5, 5) and jac.dtype == dtype
    for idx in np.ndindex(2, 3):
        ref = torch.autograd.functional.jacobian(lambda z: torch.softmax(z, -1), t(s[idx]))
        np.testing.assert_allclose(jac[idx], ref.numpy(), **TOL[dtype])


def test_softmax_jacobian_error():
    with pytest.raises(ValueError, match="s must have at least 1 dimensions"):
        softmax_jacobian(3.0)


def test_softmax_jacobian_saturates():
    # One score far above the rest: a ~ one-hot and every derivative ~ 0 (vanishing gradient).
    jac = softmax_jacobian(np.array([30.0, 0.0, 0.0]))
    assert np.abs(jac).max() < 1e-12
    # Rows of the Jacobian sum to zero: the weights always sum to one.
    np.testing.assert_allclose(softmax_jacobian(np.arange(4.0)).sum(axis=-1), 0.0, atol=1e-15)


def test_permutation_check(rng):
    x = randn(rng, 6, 4)
    perm = rng.permutation(6)

    def self_attention(z):
        return scaled_dot_product_attention(z, z, z)[0]

    assert permutation_check(self_attention, x, perm) < 1e-12
    # Row-wise maps are equivariant; a causal mask or positional encoding breaks it.
    assert permutation_check(lambda z: np.tanh(z) @ np.ones((4, 2)), x, perm) == 0.0
    causal = permutation_check(
        lambda z: scaled_dot_product_attention(z, z, z, causal=True)[0], x, perm
    )
    assert causal > 1e-3
    pe = attnlab.sinusoidal_positional_encoding(6, 4)
    assert permutation_check(lambda z: self_attention(z + pe), x, perm) > 1e-3
    # The value is the max gap: check it on a map whose answer is known, the prefix sum.
    x1 = np.arange(3.0)[:, None]
    gap = permutation_check(lambda z: np.cumsum(z, axis=0), x1, [2, 1, 0])
    assert gap == np.max(np.abs(np.cumsum(x1[::-1], 0) - np.cumsum(x1, 0)[::-1]))


def test_permutation_check_errors(rng):
    x = randn(rng, 4, 3)
    with pytest.raises(ValueError, match=r"perm must be a permutation of range\(4\)"):
        permutation_check(np.tanh, x, [0, 1, 1, 2])
    with pytest.raises(ValueError, match="perm"):
        permutation_check(np.tanh, x, [0, 1, 2])
    with pytest.raises(TypeError, match="fn"):
        permutation_check("tanh", x, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="fn"):
        permutation_check(lambda z: z[:2], x, [1, 0, 2, 3])


# ---------------------------------------------------------------------------------------------
# GPT-2 block against Hugging Face
# ---------------------------------------------------------------------------------------------


def _hf_gpt2_block(n_embd, n_head, seed=0):
    transformers = pytest.importorskip("transformers", reason="Hugging Face GPT-2 reference")
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

    config = transformers.GPT2Config(
        n_embd=n_embd,
        n_head=n_head,
        n_layer=1,
        n_positions=32,
        resid_pdrop=0.0,
        attn_pdrop=0.0,
        embd_pdrop=0.0,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    block = GPT2Block(config, layer_idx=0).eval()
    with torch.no_grad():  # random weights everywhere, LayerNorm gains near 1
        for name, p in block.named_parameters():
            centre = 1.0 if name in ("ln_1.weight", "ln_2.weight") else 0.0
            p.copy_(centre + 0.3 * torch.randn_like(p))
    return block


def _hf_causal_forward(block, x):
    n = x.shape[-2]
    additive = torch.full((n, n), float("-inf"), dtype=x.dtype).triu(1)[None, None]
    with torch.no_grad():
        return block(x, attention_mask=additive).numpy()


@pytest.mark.parametrize("n_head", [3, 6])
def test_gpt2_block_matches_hugging_face(rng, n_head):
    block = _hf_gpt2_block(48, n_head).double()
    params = gpt2_block_params(block)
    assert all(p.dtype == np.float64 for p in params.values())
    x = randn(rng, 2, 7, 48)
    np.testing.assert_allclose(
        gpt2_block(x, params, n_head), _hf_causal_forward(block, t(x)), rtol=1e-6, atol=1e-6
    )
    # float32 end to end
    block32 = block.float()
    params32 = {key: value.astype(np.float32) for key, value in params.items()}
    x32 = x.astype(np.float32)
    y32 = gpt2_block(x32, params32, n_head)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, _hf_causal_forward(block32, t(x32)), rtol=1e-4, atol=1e-4)
    # no batch axis
    np.testing.assert_allclose(gpt2_block(x[0], params, n_head), gpt2_block(x, params, n_head)[0])


def test_gpt2_block_errors(rng):
    block = _hf_gpt2_block(12, 3)
    params = gpt2_block_params(block)
    x = randn(rng, 4, 12)
    with pytest.raises(ValueError, match=r"n_heads=5 must divide d_model=12"):
        gpt2_block(x, params, 5)
    with pytest.raises(ValueError, match=r"missing the keys \['mlp.c_fc.bias'\]"):
        gpt2_block(x, {k: v for k, v in params.items() if k != "mlp.c_fc.bias"}, 3)
    bad = dict(params)
    bad["attn.c_attn.weight"] = params["attn.c_attn.weight"].T
    with pytest.raises(
        ValueError, match=r"params\['attn.c_attn.weight'\] must have shape \(12, 36\)"
    ):
        gpt2_block(x, bad, 3)
    bad = dict(params)
    bad["ln_2.bias"] = params["ln_2.bias"][:5]
    with pytest.raises(ValueError, match=r"params\['ln_2.bias'\] must have shape \(12,\)"):
        gpt2_block(x, bad, 3)
    with pytest.raises(TypeError, match="params"):
        gpt2_block(x, list(params.values()), 3)
    with pytest.raises(ValueError, match="hf_block"):
        gpt2_block_params(torch.nn.Linear(2, 2))


# ---------------------------------------------------------------------------------------------
# KV cache, grouped-query attention, cache size
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_kv_cache_steps_equal_causal_attention(rng, dtype):
    b, h, n, d = 2, 3, 6, 4
    q, k, v = (randn(rng, b, h, n, d, dtype=dtype) for _ in range(3))
    k_cache = np.zeros((b, h, 0, d), dtype=dtype)
    v_cache = np.zeros((b, h, 0, d), dtype=dtype)
    outs = []
    for i in range(n):
        s = slice(i, i + 1)
        out, k_cache, v_cache = kv_cache_attention_step(
            q[..., s, :], k[..., s, :], v[..., s, :], k_cache, v_cache
        )
        assert out.shape == (b, h, 1, d) and k_cache.shape == (b, h, i + 1, d)
        outs.append(out)
    stepped = np.concatenate(outs, axis=-2)
    assert stepped.dtype == dtype
    ref = F.scaled_dot_product_attention(t(q), t(k), t(v), is_causal=True).numpy()
    np.testing.assert_allclose(stepped, ref, **TOL[dtype])
    np.testing.assert_array_equal(k_cache, k)
    np.testing.assert_array_equal(v_cache, v)


def test_kv_cache_errors(rng):
    q1 = randn(rng, 2, 1, 4)
    cache = randn(rng, 2, 3, 4)
    with pytest.raises(ValueError, match="q_new must hold one token"):
        kv_cache_attention_step(randn(rng, 2, 2, 4), q1, q1, cache, cache)
    with pytest.raises(ValueError, match="k_cache"):
        kv_cache_attention_step(q1, q1, q1, randn(rng, 2, 3, 5), cache)
    with pytest.raises(ValueError, match="v_cache"):
        kv_cache_attention_step(q1, q1, q1, cache, randn(rng, 3, 3, 4))
    with pytest.raises(ValueError, match="k_new"):
        kv_cache_attention_step(q1, randn(rng, 1, 4), q1, cache, cache)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n_heads", "n_kv_heads"), [(8, 2), (6, 1), (4, 4)])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_query_attention_matches_torch(rng, dtype, n_heads, n_kv_heads, causal):
    q = randn(rng, 2, n_heads, 5, 4, dtype=dtype)
    k, v = (randn(rng, 2, n_kv_heads, 5, 4, dtype=dtype) for _ in range(2))
    out = grouped_query_attention(q, k, v, causal=causal)
    group = n_heads // n_kv_heads
    ref = F.scaled_dot_product_attention(
        t(q),
        t(k).repeat_interleave(group, dim=1),
        t(v).repeat_interleave(group, dim=1),
        is_causal=causal,
    )
    assert out.dtype == dtype and out.shape == q.shape
    np.testing.assert_allclose(out, ref.numpy(), **TOL[dtype])
    if n_kv_heads == n_heads:
        mha, _ = scaled_dot_product_attention(q, k, v, causal=causal)
        np.testing.assert_allclose(out, mha, rtol=1e-6)


def test_grouped_query_attention_errors(rng):
    q = randn(rng, 8, 5, 4)
    with pytest.raises(ValueError, match=r"n_kv_heads=3 must divide n_heads=8"):
        grouped_query_attention(q, randn(rng, 3, 5, 4), randn(rng, 3, 5, 4))
    with pytest.raises(ValueError, match="k and v must have the same number of heads"):
        grouped_query_attention(q, randn(rng, 2, 5, 4), randn(rng, 4, 5, 4))
    with pytest.raises(ValueError, match="q"):
        grouped_query_attention(q[0], randn(rng, 2, 5, 4), randn(rng, 2, 5, 4))


def test_kv_cache_bytes_closed_forms():
    # Llama-2-7B (32 layers, 32 heads of 128, fp16): 0.5 MiB per token, 2 GiB at 4096 tokens.
    assert kv_cache_bytes(32, 32, 128, 1) == 512 * 1024
    size = kv_cache_bytes(32, 32, 128, 4096)
    assert size == 2 * 1024**3 and isinstance(size, int)
    # Grouped-query attention with 8 kv heads (Llama-2-70B style) and batch/bytes scale linearly.
    assert kv_cache_bytes(32, 8, 128, 4096) * 4 == size
    assert kv_cache_bytes(2, 4, 16, 10, batch=3, bytes_per_element=4) == 2 * 2 * 4 * 16 * 10 * 3 * 4
    # Equals the bytes of the cache arrays themselves.
    cache = np.zeros((2, 3, 4, 10, 16), dtype=np.float32)  # (K/V, batch, kv heads, tokens, dim)
    assert kv_cache_bytes(1, 4, 16, 10, batch=3, bytes_per_element=4) == cache.nbytes


@pytest.mark.parametrize(
    "name", ["n_layers", "n_kv_heads", "head_dim", "seq_len", "batch", "bytes_per_element"]
)
def test_kv_cache_bytes_errors(name):
    args = {"n_layers": 2, "n_kv_heads": 2, "head_dim": 8, "seq_len": 4}
    args.update(batch=1, bytes_per_element=2)
    args[name] = 0
    with pytest.raises(ValueError, match=name):
        kv_cache_bytes(**args)
    args[name] = 1.5
    with pytest.raises(ValueError, match=name):
        kv_cache_bytes(**args)


def test_causal_mask_is_used_by_gpt2_block(rng):
    """Changing a later token must not change earlier outputs of the block (causality)."""
    block = _hf_gpt2_block(12, 3)
    params = gpt2_block_params(block)
    x = randn(rng, 5, 12)
    x2 = x.copy()
    x2[-1] += 1.0
    y, y2 = gpt2_block(x, params, 3), gpt2_block(x2, params, 3)
    np.testing.assert_array_equal(y[:-1], y2[:-1])
    assert np.abs(y[-1] - y2[-1]).max() > 1e-3
    assert causal_mask(5).sum() == 15
