"""NumPy FlashAttention: forward, log-sum-exp and backward against torch, online softmax merge."""

import tracemalloc

import attnlab
import numpy as np
import pytest
import torch
from attnlab import (
    flash_attention_numpy,
    flash_attention_numpy_backward,
    flash_attention_numpy_forward,
    online_softmax_merge,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def _bottom_right_mask(n_q, n_k):
    """Bottom-right aligned causal mask built in torch, independently of attnlab."""
    return torch.ones(n_q, n_k).tril(diagonal=n_k - n_q).bool()


def _torch_reference(q, k, v, causal):
    """(out, logsumexp) from torch SDPA and torch.logsumexp, float64, requiring grad."""
    tq, tk, tv = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, k, v))
    mask = _bottom_right_mask(q.shape[-2], k.shape[-2]) if causal else None
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=mask)
    scores = tq @ tk.transpose(-1, -2) / np.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(~mask, float("-inf"))
    return (tq, tk, tv), out, torch.logsumexp(scores, dim=-1)


# (n_q, n_k, causal, block_size): odd lengths, Nq != Nk, blocks that do not divide N,
# block 1, a block larger than N, and causal with Nq > Nk (rows that see no key).
CASES = [
    (7, 7, False, 3),
    (7, 7, True, 3),
    (13, 11, False, 64),
    (5, 9, True, 4),
    (9, 5, True, 2),
    (10, 3, True, 4),
    (6, 6, True, 1),
    (1, 8, True, 3),
]


@pytest.mark.parametrize("n_q,n_k,causal,block", CASES)
def test_forward_and_backward_match_torch(n_q, n_k, causal, block):
    rng = np.random.default_rng(n_q * 100 + n_k)
    q = rng.standard_normal((2, 3, n_q, 6))
    k = rng.standard_normal((2, 3, n_k, 6))
    v = rng.standard_normal((2, 3, n_k, 5))
    (tq, tk, tv), ref_out, ref_lse = _torch_reference(q, k, v, causal)

    out, lse = flash_attention_numpy_forward(q, k, v, causal=causal, block_size=block)
    np.testing.assert_allclose(out, ref_out.detach().numpy(), atol=1e-12)
    ref_lse = ref_lse.detach().numpy()
    assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse))
    finite = np.isfinite(ref_lse)
    np.testing.assert_allclose(lse[finite], ref_lse[finite], atol=1e-12)
    np.testing.assert_array_equal(
        flash_attention_numpy(q, k, v, causal=causal, block_size=block), out
    )

    dout = rng.standard_normal(out.shape)
    ref_out.backward(torch.tensor(dout))
    grads = flash_attention_numpy_backward(q, k, v, out, lse, dout, causal=causal, block_size=block)
    for name, got, t in zip("qkv", grads, (tq, tk, tv)):
        assert np.isfinite(got).all(), f"d{name} has NaN/inf"
        np.testing.assert_allclose(got, t.grad.numpy(), atol=1e-6, err_msg=f"d{name}")


def test_rows_without_visible_key_are_zero():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((6, 4)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    out, lse = flash_attention_numpy_forward(q, k, v, causal=True, block_size=4)
    # Bottom-right alignment: query i sees key j iff j <= i - 4, so rows 0..3 see nothing.
    np.testing.assert_array_equal(out[:4], 0.0)
    assert np.isneginf(lse[:4]).all() and np.isfinite(lse[4:]).all()
    grads = flash_attention_numpy_backward(
        q, k, v, out, lse, np.ones_like(out), causal=True, block_size=4
    )
    np.testing.assert_array_equal(grads[0][:4], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtype_and_matches_library_reference(dtype):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2, 19, 8)).astype(dtype) for _ in range(3))
    out, lse = flash_attention_numpy_forward(q, k, v, causal=True, block_size=5)
    assert out.dtype == dtype and lse.dtype == dtype
    ref, _ = attnlab.scaled_dot_product_attention(q, k, v, causal=True)
    np.testing.assert_allclose(out, ref, atol=1e-5 if dtype == np.float32 else 1e-12)
    grads = flash_attention_numpy_backward(q, k, v, out, lse, out, causal=True, block_size=5)
    assert all(g.dtype == dtype for g in grads)


@settings(max_examples=25, deadline=None)
@given(
    n_q=st.integers(1, 12),
    n_k=st.integers(1, 12),
    block=st.integers(1, 7),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_forward_property_any_shape(n_q, n_k, block, causal, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (
        rng.standard_normal((n_q, 3)),
        rng.standard_normal((n_k, 3)),
        rng.standard_normal((n_k, 2)),
    )
    _, ref_out, _ = _torch_reference(q, k, v, causal)
    out = flash_attention_numpy(q, k, v, causal=causal, block_size=block)
    np.testing.assert_allclose(out, ref_out.detach().numpy(), atol=1e-12)


def test_never_materialises_the_score_matrix():
    """Peak extra memory stays far below one (Nq, Nk) float64 array."""
    rng = np.random.default_rng(2)
    n, d = 512, 8
    q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
    tracemalloc.start()
    flash_attention_numpy(q, k, v, causal=True, block_size=32)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < n * n * 8 / 8, f"peak {peak} bytes vs one score matrix {n * n * 8}"


def _state(scores, values):
    """Partial softmax state of a block, computed directly in torch (float64)."""
    m = scores.max(dim=-1).values
    e = torch.exp(scores - m[..., None])
    return m.numpy(), e.sum(-1).numpy(), (e @ values).numpy()


def test_online_softmax_merge_equals_full_softmax():
    torch.manual_seed(0)
    scores = torch.randn(3, 4, 10, dtype=torch.float64) * 5
    values = torch.randn(3, 10, 6, dtype=torch.float64)
    first = _state(scores[..., :4], values[..., :4, :])
    second = _state(scores[..., 4:], values[..., 4:, :])
    m, l, acc = online_softmax_merge(*first, *second)
    expected = torch.softmax(scores, -1) @ values
    np.testing.assert_allclose(acc / l[..., None], expected.numpy(), atol=1e-12)
    np.testing.assert_allclose(m, scores.max(-1).values.numpy())
    _, l2, acc2 = online_softmax_merge(*second, *first)  # order does not matter
    np.testing.assert_allclose(acc2 / l2[..., None], expected.numpy(), atol=1e-12)


def test_online_softmax_merge_with_empty_states():
    torch.manual_seed(1)
    scores, values = torch.randn(5, 3, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    full = _state(scores, values)
    empty = (np.full(5, -np.inf), np.zeros(5), np.zeros((5, 2)))
    for merged in (online_softmax_merge(*empty, *full), online_softmax_merge(*full, *empty)):
        for got, want in zip(merged, full):
            np.testing.assert_allclose(got, want)
    m, l, acc = online_softmax_merge(*empty, *empty)
    assert np.isneginf(m).all() and not np.isnan(l).any() and not np.isnan(acc).any()
    np.testing.assert_array_equal(l, 0.0)
    np.testing.assert_array_equal(acc, 0.0)


def test_errors_name_the_argument():
    q = np.zeros((4, 8))
    with pytest.raises(ValueError, match="d_k"):
        flash_attention_numpy(q, np.zeros((4, 6)), np.zeros((4, 6)))
    with pytest.raises(ValueError, match="block_size"):
        flash_attention_numpy(q, q, q, block_size=0)
    with pytest.raises(ValueError, match="leading"):
        flash_attention_numpy(np.zeros((2, 4, 8)), np.zeros((3, 4, 8)), np.zeros((3, 4, 8)))
    with pytest.raises(ValueError, match="dout"):
        flash_attention_numpy_backward(q, q, q, q, np.zeros(4), np.zeros((3, 8)))
    with pytest.raises(ValueError, match="acc2"):
        online_softmax_merge(
            np.zeros(3), np.zeros(3), np.zeros((3, 2)), np.zeros(3), np.zeros(3), np.zeros((4, 2))
        )
