"""Sparse masks, block-sparse attention, linear attention and Performer (attnlab.efficient).

Independent references: torch's scaled_dot_product_attention, torch.nn.functional.elu,
per-entry definitions of each pattern, the closed-form counts, and Monte Carlo.
"""

from __future__ import annotations

import attnlab
import numpy as np
import pytest
import torch
import torch.nn.functional as F

RNG = np.random.default_rng(99)
PARAMS = [
    {"window": 0, "stride": 1, "n_global": 0, "n_random": 0},
    {"window": 1, "stride": 3, "n_global": 1, "n_random": 2},
    {"window": 3, "stride": 4, "n_global": 2, "n_random": 3},
    {"window": 7, "stride": 5, "n_global": 4, "n_random": 9},
]


# ----------------------------------------------------------------------------- sparse masks
def _by_definition(n, pattern, window, stride, n_global):
    """Entry-by-entry definition of the deterministic patterns (non-causal)."""
    rule = {
        "local": lambda i, j: abs(i - j) <= window,
        "strided": lambda i, j: (i - j) % stride == 0,
        "fixed": lambda i, j: i < n_global or j < n_global,
    }[pattern]
    return np.array([[rule(i, j) for j in range(n)] for i in range(n)])


@pytest.mark.parametrize("pattern", ["local", "strided", "fixed"])
@pytest.mark.parametrize("params", PARAMS)
def test_deterministic_patterns_match_their_definition(pattern, params):
    n = 13
    mask = attnlab.sparse_mask(n, pattern, **params)
    expected = _by_definition(n, pattern, params["window"], params["stride"], params["n_global"])
    np.testing.assert_array_equal(mask, expected)
    causal = attnlab.sparse_mask(n, pattern, causal=True, **params)
    np.testing.assert_array_equal(causal, expected & np.tril(np.ones((n, n), bool)))


@pytest.mark.parametrize("causal", [False, True])
def test_random_pattern_rows_and_seed(causal):
    n, r = 17, 4
    mask = attnlab.sparse_mask(n, "random", n_random=r, seed=3, causal=causal)
    per_row = mask.sum(axis=1)
    expected = np.minimum(r, np.arange(1, n + 1)) if causal else np.full(n, r)
    np.testing.assert_array_equal(per_row, expected)
    if causal:
        assert not np.triu(mask, k=1).any()
    np.testing.assert_array_equal(
        mask, attnlab.sparse_mask(n, "random", n_random=r, seed=3, causal=causal)
    )
    assert not np.array_equal(
        mask, attnlab.sparse_mask(n, "random", n_random=r, seed=4, causal=causal)
    )


@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_is_the_union(causal):
    kw = {"window": 2, "n_global": 2, "n_random": 3, "seed": 5, "causal": causal}
    parts = [attnlab.sparse_mask(20, p, **kw) for p in ("local", "fixed", "random")]
    np.testing.assert_array_equal(
        attnlab.sparse_mask(20, "bigbird", **kw), parts[0] | parts[1] | parts[2]
    )


@pytest.mark.parametrize("pattern", attnlab.SPARSE_PATTERNS)
@pytest.mark.parametrize("causal", [False, True])
def test_closed_form_counts(pattern, causal):
    for n in (1, 2, 5, 16, 33):
        for params in PARAMS:
            mask = attnlab.sparse_mask(n, pattern, causal=causal, seed=2, **params)
            nnz = attnlab.sparse_mask_nnz(n, pattern, causal=causal, seed=2, **params)
            assert nnz == mask.sum(), (n, params)


def test_sparse_counts_grow_linearly():
    for pattern in ("local", "fixed", "random"):
        counts = [attnlab.sparse_mask_nnz(n, pattern) for n in (1000, 2000)]
        assert counts[1] < 2.01 * counts[0]  # O(n), while dense attention would be 4x


@pytest.mark.parametrize("pattern", attnlab.SPARSE_PATTERNS)
def test_masks_work_in_attention_like_torch(pattern):
    n, d = 12, 8
    q, k, v = RNG.normal(size=(3, 2, n, d))
    mask = attnlab.sparse_mask(n, pattern, window=1, n_global=1, n_random=2, causal=True)
    mask |= np.eye(n, dtype=bool)  # every query sees at least itself (torch gives NaN otherwise)
    out, weights = attnlab.scaled_dot_product_attention(q, k, v, mask=mask)
    expected = F.scaled_dot_product_attention(
        *(torch.from_numpy(x) for x in (q, k, v)), attn_mask=torch.from_numpy(mask)
    )
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-10, atol=1e-12)
    assert np.all(weights[..., ~mask] == 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0, "pattern": "local"}, "n must be a positive integer"),
        ({"n": 4, "pattern": "dilated"}, "pattern must be one of"),
        ({"n": 4, "pattern": "local", "window": -1}, "window must be a non-negative integer"),
        ({"n": 4, "pattern": "strided", "stride": 0}, "stride must be a positive integer"),
        ({"n": 4, "pattern": "fixed", "n_global": 1.5}, "n_global must be a non-negative integer"),
        ({"n": 4, "pattern": "random", "n_random": -2}, "n_random must be a non-negative integer"),
    ],
)
def test_sparse_mask_errors(kwargs, match):
    for fn in (attnlab.sparse_mask, attnlab.sparse_mask_nnz):
        with pytest.raises(ValueError, match=match):
            fn(**kwargs)


# ----------------------------------------------------------------------------- block sparse
@pytest.mark.parametrize("block_size", [1, 5, 16])
@pytest.mark.parametrize("n_q, n_k", [(32, 32), (20, 29)])
def test_block_sparse_matches_dense_masked_attention(block_size, n_q, n_k):
    torch.manual_seed(0)
    q = torch.randn(2, 3, n_q, 8, dtype=torch.float64)
    k = torch.randn(2, 3, n_k, 8, dtype=torch.float64)
    v = torch.randn(2, 3, n_k, 5, dtype=torch.float64)
    mask = attnlab.sparse_mask(max(n_q, n_k), "bigbird", window=2, n_global=1, n_random=1)[
        :n_q, :n_k
    ]
    mask[3] = False  # a query that sees nothing: zero output, as attnlab's reference gives
    out = attnlab.block_sparse_attention(q, k, v, mask, block_size=block_size)
    expected, _ = attnlab.scaled_dot_product_attention(q.numpy(), k.numpy(), v.numpy(), mask=mask)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    rows = mask.any(axis=1)
    torch_out = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(mask))
    np.testing.assert_allclose(
        out[..., rows, :].numpy(), torch_out[..., rows, :].numpy(), rtol=1e-10
    )


def test_block_sparse_skips_empty_blocks_and_keeps_gradients():
    n, bs = 64, 8
    mask = attnlab.sparse_mask(n, "local", window=2, causal=True)
    layout = attnlab.block_layout(mask, bs)
    assert layout.shape == (8, 8)
    np.testing.assert_array_equal(layout, np.eye(8, dtype=bool) | np.eye(8, k=-1, dtype=bool))
    q, k, v = (torch.randn(1, n, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    attnlab.block_sparse_attention(q, k, v, mask, block_size=bs).sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v, attn_mask=torch.from_numpy(mask)).sum().backward()
    for g, t in zip(grads, (q, k, v)):
        torch.testing.assert_close(g, t.grad)


def test_block_sparse_errors():
    q = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"mask must have shape \(Nq, Nk\)"):
        attnlab.block_sparse_attention(q, q, q, np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="q and k must share the last dimension"):
        attnlab.block_sparse_attention(q, torch.randn(4, 3), q, np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        attnlab.block_layout(np.ones((4, 4), bool), 0)


# ----------------------------------------------------------------------------- linear attention
def test_elu_feature_map_matches_torch():
    x = RNG.normal(size=(5, 7)) * 3
    np.testing.assert_allclose(
        attnlab.elu_feature_map(x), (F.elu(torch.from_numpy(x)) + 1).numpy(), rtol=1e-12
    )


def _explicit_loop(q, k, v, causal):
    """out_i = sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j), one query at a time."""
    phi = lambda x: (F.elu(torch.from_numpy(x)) + 1).numpy()
    out = np.empty(q.shape[:-1] + (v.shape[-1],))
    for i in range(q.shape[-2]):
        keys = slice(0, i + 1) if causal else slice(None)
        w = np.einsum("...d,...jd->...j", phi(q[..., i, :]), phi(k[..., keys, :]))
        out[..., i, :] = np.einsum("...j,...jv->...v", w, v[..., keys, :]) / w.sum(-1)[..., None]
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_forms_agree(causal):
    q, k = RNG.normal(size=(2, 2, 3, 11, 6))
    v = RNG.normal(size=(2, 3, 11, 4))
    expected = _explicit_loop(q, k, v, causal)
    np.testing.assert_allclose(
        attnlab.linear_attention(q, k, v, causal=causal), expected, rtol=1e-10
    )
    np.testing.assert_allclose(
        attnlab.linear_attention_quadratic(q, k, v, causal=causal), expected, rtol=1e-10
    )
    if causal:
        np.testing.assert_allclose(
            attnlab.linear_attention_recurrent(q, k, v), expected, rtol=1e-10
        )


def test_linear_attention_cross_lengths_and_float32():
    q = RNG.normal(size=(3, 4)).astype(np.float32)
    k, v = RNG.normal(size=(2, 5, 4)).astype(np.float32)
    out = attnlab.linear_attention(q, k, v)
    assert out.dtype == np.float32
    np.testing.assert_allclose(
        out, _explicit_loop(q.astype(float), k.astype(float), v.astype(float), False), rtol=1e-5
    )


def test_linear_attention_errors():
    q = np.ones((3, 4))
    with pytest.raises(ValueError, match="q and k must have the same last dimension"):
        attnlab.linear_attention(q, np.ones((3, 5)), q)
    with pytest.raises(ValueError, match="k and v must have the same number of keys"):
        attnlab.linear_attention(q, q, np.ones((2, 4)))
    with pytest.raises(ValueError, match="causal linear attention needs as many queries as keys"):
        attnlab.linear_attention(q, np.ones((5, 4)), np.ones((5, 4)), causal=True)


# ----------------------------------------------------------------------------- Performer
def test_positive_random_features_are_unbiased_for_the_softmax_kernel():
    x, y = RNG.normal(size=(2, 4)) * 0.5
    omega = attnlab.random_feature_matrix(4, 200_000, seed=1)
    estimate = float(attnlab.performer_features(x, omega) @ attnlab.performer_features(y, omega))
    assert abs(estimate - np.exp(x @ y)) < 0.02 * np.exp(x @ y)
    assert np.all(attnlab.performer_features(x, omega) > 0)


def test_orthogonal_features_are_orthogonal_within_blocks():
    omega = attnlab.random_feature_matrix(8, 20, orthogonal=True, seed=0)
    assert omega.shape == (20, 8)
    block = omega[:8] / np.linalg.norm(omega[:8], axis=1, keepdims=True)
    np.testing.assert_allclose(block @ block.T, np.eye(8), atol=1e-12)
    # row lengths follow the chi distribution of a Gaussian vector: mean ~ sqrt(d)
    lengths = np.linalg.norm(attnlab.random_feature_matrix(8, 4000, orthogonal=True), axis=1)
    assert abs(lengths.mean() - np.sqrt(8 - 0.5)) < 0.1


@pytest.mark.parametrize("orthogonal", [False, True])
def test_performer_error_falls_with_more_features(orthogonal):
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 4, 24, 8)) * np.array([0.6, 0.6, 1.0])[:, None, None, None]
    exact, _ = attnlab.scaled_dot_product_attention(q, k, v)

    def mean_error(m):
        return np.mean(
            [
                np.abs(
                    attnlab.performer_attention(q, k, v, m=m, orthogonal=orthogonal, seed=s) - exact
                ).mean()
                for s in range(6)
            ]
        )

    assert mean_error(256) < 0.5 * mean_error(8)


def test_performer_causal_matches_its_quadratic_form():
    q, k, v = RNG.normal(size=(3, 10, 4)) * 0.5
    out = attnlab.performer_attention(q, k, v, m=16, seed=2, causal=True)
    omega = attnlab.random_feature_matrix(4, 16, orthogonal=True, seed=2)
    phi_q = attnlab.performer_features(q / 4**0.25, omega)
    phi_k = attnlab.performer_features(k / 4**0.25, omega)
    w = np.tril(phi_q @ phi_k.T)
    np.testing.assert_allclose(out, (w / w.sum(1, keepdims=True)) @ v, rtol=1e-10)


def test_performer_errors():
    with pytest.raises(ValueError, match="m must be a positive integer"):
        attnlab.performer_attention(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), m=0)
    with pytest.raises(ValueError, match=r"omega must have shape \(m, d=3\)"):
        attnlab.performer_features(np.ones((2, 3)), np.ones((5, 4)))
