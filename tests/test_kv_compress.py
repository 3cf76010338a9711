"""KV-cache compression (attnlab.kv_compress): MHA -> GQA head grouping and cache pruning.

Independent references: torch's scaled_dot_product_attention (with enable_gqa and boolean
masks), attnlab.grouped_query_attention, Monte Carlo for the Gaussian expectation, and a
trained tiny attnlab.GPT whose own attention weights check the extracted q, k, v.
"""

from __future__ import annotations

import attnlab
import numpy as np
import pytest
import torch
import torch.nn.functional as F

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------- grouping
def test_uniform_groups_and_errors():
    np.testing.assert_array_equal(attnlab.uniform_head_groups(8, 2), [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(attnlab.uniform_head_groups(6, 6), np.arange(6))
    with pytest.raises(ValueError, match="n_groups=4 must divide n_heads=6"):
        attnlab.uniform_head_groups(6, 4)


def test_uniform_grouping_is_gqa_like_torch():
    q = RNG.normal(size=(2, 8, 10, 4))
    k, v = RNG.normal(size=(2, 2, 8, 10, 4))
    labels = attnlab.uniform_head_groups(8, 4)
    k_g, v_g = attnlab.average_kv_heads(k, v, labels)
    np.testing.assert_allclose(k_g[:, 1], k[:, 2:4].mean(axis=1))
    out = attnlab.grouped_attention(q, k_g, v_g, labels, causal=True)
    expected = F.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q, k_g, v_g)), is_causal=True, enable_gqa=True
    )
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        out, attnlab.grouped_query_attention(q, k_g, v_g, causal=True), rtol=1e-12
    )


def test_one_group_per_head_is_exact():
    q, k, v = RNG.normal(size=(3, 4, 9, 5))
    result = attnlab.compare_head_grouping(q, k, v, n_groups=4)
    assert result["uniform"] < 1e-12 and result["similarity"] < 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_similarity_grouping_never_costs_more_than_uniform(seed):
    rng = np.random.default_rng(seed)
    k, v = rng.normal(size=(2, 12, 6, 3)) + rng.normal(size=(2, 12, 1, 1))
    for n_groups in (2, 3, 4, 6):
        sim = attnlab.similarity_head_groups(k, v, n_groups)
        assert sorted(set(sim.tolist())) == list(range(n_groups))  # every group is used
        uni = attnlab.uniform_head_groups(12, n_groups)
        assert attnlab.grouping_cost(k, v, sim) <= attnlab.grouping_cost(k, v, uni) + 1e-9


def test_similarity_grouping_finds_planted_pairs():
    # 8 heads made of 4 near-duplicate pairs in shuffled order: uniform consecutive groups mix
    # unrelated heads, similarity groups recover the pairs, at the same cache size (4 heads)
    rng = np.random.default_rng(0)
    base_k, base_v = rng.normal(size=(2, 4, 16, 8))
    order = np.array([0, 1, 2, 3, 0, 1, 2, 3])  # head h copies base head order[h]
    k = base_k[order] + 0.01 * rng.normal(size=(8, 16, 8))
    v = base_v[order] + 0.01 * rng.normal(size=(8, 16, 8))
    q = rng.normal(size=(8, 16, 8))
    result = attnlab.compare_head_grouping(q, k, v, n_groups=4, causal=True)
    labels = result["similarity_labels"]
    assert all(labels[h] == labels[h + 4] for h in range(4))
    assert result["similarity"] < 0.05
    assert result["uniform"] > 0.3


def test_grouping_errors():
    k = np.ones((4, 3, 2))
    with pytest.raises(ValueError, match="n_groups=5 must be at most n_heads=4"):
        attnlab.similarity_head_groups(k, k, 5)
    with pytest.raises(ValueError, match="labels must be 4 non-negative group ids"):
        attnlab.average_kv_heads(k, k, [0, 1])
    with pytest.raises(ValueError, match="labels must use every group id"):
        attnlab.average_kv_heads(k, k, [0, 0, 2, 2])
    with pytest.raises(ValueError, match=r"k must have shape \(..., n_heads, N, d_head\)"):
        attnlab.grouping_cost(np.ones((3, 2)), np.ones((3, 2)), [0, 1, 2])


# ----------------------------------------------------------------------------- pruning
def test_expected_attention_matches_monte_carlo():
    d = 4
    k = RNG.normal(size=(6, d))
    mean = RNG.normal(size=d) * 0.5
    a = RNG.normal(size=(d, d)) * 0.4
    cov = a @ a.T
    samples = RNG.multivariate_normal(mean, cov, size=400_000)
    mc = np.exp(samples @ k.T / np.sqrt(d)).mean(axis=0)
    np.testing.assert_allclose(
        attnlab.expected_attention_scores(k, mean, cov), mc / mc.sum(), rtol=0.02
    )
    v = RNG.normal(size=(6, 3))
    np.testing.assert_allclose(
        attnlab.expected_attention_scores(k, mean, cov, v=v),
        attnlab.expected_attention_scores(k, mean, cov) * np.linalg.norm(v, axis=1),
    )


def test_gaussian_estimate_matches_numpy():
    q = RNG.normal(size=(3, 20, 4))
    mean, cov = attnlab.gaussian_query_estimate(q, ridge=0.0)
    np.testing.assert_allclose(mean, q.mean(axis=1))
    np.testing.assert_allclose(cov[1], np.cov(q[1].T))


def test_select_kv_to_keep_methods():
    k = RNG.normal(size=(2, 10, 4))
    np.testing.assert_array_equal(attnlab.select_kv_to_keep(k, 3, "recency"), [[7, 8, 9]] * 2)
    rand = attnlab.select_kv_to_keep(k, 4, "random", seed=1)
    assert rand.shape == (2, 4) and all(len(set(row)) == 4 for row in rand.tolist())
    np.testing.assert_array_equal(rand, attnlab.select_kv_to_keep(k, 4, "random", seed=1))
    q_recent = RNG.normal(size=(2, 5, 4))
    ea = attnlab.select_kv_to_keep(k, 4, "expected_attention", q_recent=q_recent)
    scores = attnlab.expected_attention_scores(k, *attnlab.gaussian_query_estimate(q_recent))
    for h in range(2):
        assert set(ea[h]) == set(np.argsort(-scores[h])[:4])
    with pytest.raises(ValueError, match="needs q_recent"):
        attnlab.select_kv_to_keep(k, 4, "expected_attention")
    with pytest.raises(ValueError, match="n_keep=11 must be at most"):
        attnlab.select_kv_to_keep(k, 11, "recency")
    with pytest.raises(ValueError, match="method must be one of"):
        attnlab.select_kv_to_keep(k, 2, "h2o")


def test_pruning_error_against_torch_masking():
    q, k, v = RNG.normal(size=(3, 2, 30, 8))
    assert all(
        e < 1e-12 for e in attnlab.compare_kv_pruning(q, k, v, 16, prune_fraction=0.0).values()
    )
    errors = attnlab.compare_kv_pruning(q, k, v, n_cache=16, prune_fraction=0.5)
    # recency keeps cache positions 8..15; drop 0..7 through a boolean mask in torch instead
    mask = torch.from_numpy(attnlab.causal_mask(14, 30))
    full = F.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q[:, 16:], k, v)), attn_mask=mask
    )
    mask[:, :8] = False
    pruned = F.scaled_dot_product_attention(
        *(torch.from_numpy(a) for a in (q[:, 16:], k, v)), attn_mask=mask
    )
    expected = float(torch.linalg.norm(pruned - full) / torch.linalg.norm(full))
    assert errors["recency"] == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="n_cache=30 must be smaller than the sequence length 30"):
        attnlab.compare_kv_pruning(q, k, v, 30)


# ----------------------------------------------------------------------------- a trained tiny GPT
@pytest.fixture(scope="module")
def trained_gpt():
    """A 2-layer character GPT trained for a few seconds on the standard-library corpus."""
    torch.manual_seed(0)
    corpus = attnlab.stdlib_corpus(max_chars=200_000)
    config = attnlab.GPTConfig(
        vocab_size=corpus.vocab_size, context_length=64, d_model=64, n_layers=2, n_heads=4
    )
    model = attnlab.GPT(config)
    config = attnlab.TrainConfig(steps=200, lr=1e-2, warmup_steps=20, eval_every=0, progress=False)
    history = attnlab.Trainer(
        model, lambda g: corpus.batch(32, 64, g), config
    ).fit()  # 1 thread: conftest
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    x, _ = corpus.batch(8, 64, torch.Generator().manual_seed(1), split="val")
    return model.eval(), x


def test_gpt_attention_qkv_reproduces_the_models_weights(trained_gpt):
    model, x = trained_gpt
    with torch.no_grad():
        _, weights = model(x, return_weights=True)
    for (q, k, v), w in zip(attnlab.gpt_attention_qkv(model, x), weights):
        assert q.shape == (8, 4, 64, 16)
        _, ours = attnlab.scaled_dot_product_attention(q, k, v, causal=True)
        np.testing.assert_allclose(ours, w.numpy(), atol=1e-5)


def test_pruning_60_percent_on_a_trained_gpt(trained_gpt):
    model, x = trained_gpt
    errors = {m: [] for m in ("expected_attention", "recency", "random")}
    for q, k, v in attnlab.gpt_attention_qkv(model, x):
        for b in range(x.shape[0]):
            for method, err in attnlab.compare_kv_pruning(
                q[b], k[b], v[b], n_cache=32, prune_fraction=0.6
            ).items():
                errors[method].append(err)
    mean = {m: float(np.mean(e)) for m, e in errors.items()}
    assert mean["expected_attention"] < mean["random"]
    assert mean["expected_attention"] < mean["recency"]


def test_head_grouping_on_a_trained_gpt(trained_gpt):
    model, x = trained_gpt
    for q, k, v in attnlab.gpt_attention_qkv(model, x):
        result = attnlab.compare_head_grouping(
            q[4:], k[4:], v[4:], n_groups=2, calibration=(k[:4], v[:4])
        )
        assert 0 < result["similarity"] < 2 and 0 < result["uniform"] < 2
        cost = {
            name: attnlab.grouping_cost(k[:4], v[:4], result[f"{name}_labels"])
            for name in ("uniform", "similarity")
        }
        assert cost["similarity"] <= cost["uniform"] + 1e-9
