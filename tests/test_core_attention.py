"""softmax, scaled_dot_product_attention and causal_mask against torch and closed forms."""

from __future__ import annotations

import math

import attnlab
import numpy as np
import pytest
import torch
import torch.nn.functional as F

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_matches_torch(rng, dtype, axis):
    x = (5 * rng.standard_normal((3, 4, 6))).astype(dtype)
    got = attnlab.softmax(x, axis=axis)
    want = torch.softmax(torch.from_numpy(x), dim=axis).numpy()
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_is_stable_for_huge_and_tiny_scores(dtype):
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]], dtype=dtype)
    got = attnlab.softmax(x)
    # closed form: softmax is shift invariant, so both rows equal softmax([0, 1, 2]) (reversed)
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(got[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(got[1], (e / e.sum())[::-1], rtol=1e-6)


def test_softmax_masked_entries_and_fully_masked_rows():
    x = np.array([[1.0, 2.0, -np.inf, 3.0], [-np.inf] * 4])
    got = attnlab.softmax(x)
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(got[0], [e[0] / e.sum(), e[1] / e.sum(), 0.0, e[2] / e.sum()])
    assert np.array_equal(got[1], np.zeros(4)), "an all -inf row gives zeros, never NaN"


def test_softmax_rejects_nan_and_plus_inf():
    with pytest.raises(ValueError, match="NaN"):
        attnlab.softmax(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"\+inf"):
        attnlab.softmax(np.array([1.0, np.inf]))


@pytest.mark.parametrize("n_q, n_k", [(1, 1), (3, 3), (2, 5), (5, 2), (1, 7)])
def test_causal_mask_is_bottom_right_aligned(n_q, n_k):
    mask = attnlab.causal_mask(n_q, n_k)
    assert mask.shape == (n_q, n_k) and mask.dtype == bool
    for i in range(n_q):
        for j in range(n_k):
            assert mask[i, j] == (j <= i + (n_k - n_q))
    if n_q <= n_k:  # the newest query (last row) sees every key, as in KV-cache decoding
        assert mask[-1].all()


def test_causal_mask_errors_name_the_argument():
    with pytest.raises(ValueError, match="n_q"):
        attnlab.causal_mask(0)
    with pytest.raises(ValueError, match="n_k"):
        attnlab.causal_mask(3, -1)


def _torch_sdpa(q, k, v, mask=None):
    t = [torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v)]
    m = None if mask is None else torch.from_numpy(np.ascontiguousarray(mask))
    return F.scaled_dot_product_attention(*t, attn_mask=m).numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_q, n_k", [(4, 4), (2, 6), (6, 3)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch_sdpa(rng, dtype, n_q, n_k, causal):
    q = rng.standard_normal((2, 3, n_q, 8)).astype(dtype)
    k = rng.standard_normal((2, 3, n_k, 8)).astype(dtype)
    v = rng.standard_normal((2, 3, n_k, 5)).astype(dtype)
    out, w = attnlab.scaled_dot_product_attention(q, k, v, causal=causal)
    mask = attnlab.causal_mask(n_q, n_k) if causal else None
    visible = mask.any(axis=-1) if causal else np.ones(n_q, bool)
    want = _torch_sdpa(q, k, v, mask)
    assert out.dtype == dtype and w.dtype == dtype
    assert out.shape == (2, 3, n_q, 5) and w.shape == (2, 3, n_q, n_k)
    np.testing.assert_allclose(out[..., visible, :], want[..., visible, :], **TOL[dtype])
    np.testing.assert_allclose(w.sum(-1)[..., visible], 1.0, **TOL[dtype])
    # a query with no visible key (Nq > Nk, causal) outputs zeros; torch gives NaN there
    assert np.array_equal(out[..., ~visible, :], np.zeros_like(out[..., ~visible, :]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_with_a_broadcast_padding_mask(rng, dtype):
    q, k = (
        rng.standard_normal((2, 4, 8)).astype(dtype),
        rng.standard_normal((2, 6, 8)).astype(dtype),
    )
    v = rng.standard_normal((2, 6, 3)).astype(dtype)
    lengths = np.array([6, 3])
    mask = (np.arange(6)[None, :] < lengths[:, None])[:, None, :]  # (batch, 1, Nk)
    out, w = attnlab.scaled_dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(
        out, _torch_sdpa(q, k, v, np.broadcast_to(mask, (2, 4, 6))), **TOL[dtype]
    )
    assert np.all(w[1, :, 3:] == 0)


def test_attention_with_huge_scores_is_a_hard_max(rng):
    q = k = 1e3 * np.eye(4)
    v = rng.standard_normal((4, 3))
    out, w = attnlab.scaled_dot_product_attention(q, k, v)
    np.testing.assert_allclose(w, np.eye(4), atol=1e-12)  # each query picks its own key
    np.testing.assert_allclose(out, v, atol=1e-12)


def test_attention_closed_form_on_the_quickstart_tokens():
    x = np.array([[1.0, 0.5, 0.2, 0.1], [0.3, 1.0, 0.4, 0.2], [0.2, 0.3, 1.0, 0.5]])
    out, w = attnlab.scaled_dot_product_attention(x, x, x)
    scores = [[sum(a * b for a, b in zip(qi, kj)) / 2.0 for kj in x] for qi in x]
    for i, row in enumerate(scores):
        total = sum(math.exp(s) for s in row)
        np.testing.assert_allclose(w[i], [math.exp(s) / total for s in row], rtol=1e-14)
    np.testing.assert_allclose(out, w @ x, rtol=1e-14)


def test_attention_shape_errors_name_the_arguments(rng):
    q, k, v = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match=r"q and k .*d_k"):
        attnlab.scaled_dot_product_attention(q, rng.standard_normal((5, 3)), v)
    with pytest.raises(ValueError, match=r"k and v"):
        attnlab.scaled_dot_product_attention(q, k, rng.standard_normal((4, 2)))
    with pytest.raises(ValueError, match="mask"):
        attnlab.scaled_dot_product_attention(q, k, v, mask=np.ones((2, 2), bool))
    with pytest.raises(TypeError, match="mask must be boolean"):
        attnlab.scaled_dot_product_attention(q, k, v, mask=np.ones((3, 5)))
    with pytest.raises(ValueError, match="q must have at least 2 dimensions"):
        attnlab.scaled_dot_product_attention(np.ones(4), k, v)
