"""Efficient attention (zone 3b): sparse masks and linear attention."""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

# ================================================================ sparse_mask


def _sparse_cases():
    return [
        Case("local, n=8, window=1", (8, "local"), {"window": 1}),
        Case("strided, n=10, stride=3", (10, "strided"), {"stride": 3}),
        Case("fixed, n=8, n_global=2", (8, "fixed"), {"n_global": 2}),
        Case("random, n=10, n_random=3, seed=5", (10, "random"), {"n_random": 3, "seed": 5}),
        Case("bigbird, n=12, window=1, n_global=1, n_random=2", (12, "bigbird"), {"window": 1}),
        Case(
            "local, n=7, window=2, causal=True (only keys j <= i)",
            (7, "local"),
            {"window": 2, "causal": True},
        ),
        Case(
            "random, n=7, n_random=2, seed=3, causal=True (row 0 can only pick key 0)",
            (7, "random"),
            {"n_random": 2, "seed": 3, "causal": True},
        ),
        Case("random with n_random larger than n: n=4, n_random=6", (4, "random"), {"n_random": 6}),
        Case(
            "local, n=9, window=2, causal=True",
            (9, "local"),
            {"window": 2, "causal": True},
            hidden=True,
        ),
        Case(
            "random, n=8, n_random=3, causal=True (early rows have fewer than 3 keys to pick)",
            (8, "random"),
            {"n_random": 3, "causal": True, "seed": 1},
            hidden=True,
        ),
        Case(
            "bigbird, n=16, window=2, n_global=2, n_random=3, seed=7, causal=True",
            (16, "bigbird"),
            {"window": 2, "n_global": 2, "n_random": 3, "seed": 7, "causal": True},
            hidden=True,
        ),
        Case(
            "strided, n=11, stride=4, causal=True", (11, "strided"), {"causal": True}, hidden=True
        ),
        Case(
            "fixed, n=7, n_global=3, causal=True",
            (7, "fixed"),
            {"n_global": 3, "causal": True},
            hidden=True,
        ),
        Case("local, n=6, window=0 (only the diagonal)", (6, "local"), {"window": 0}, hidden=True),
        Case("a single token: n=1, bigbird", (1, "bigbird"), hidden=True),
        Case(
            "random with n_random larger than n: n=5, n_random=8",
            (5, "random"),
            {"n_random": 8},
            hidden=True,
        ),
    ]


def _rule_local(i, j, window, stride, n_global):
    return np.abs(i - j) <= window


def _rule_strided(i, j, window, stride, n_global):
    return (i - j) % stride == 0


def _rule_fixed(i, j, window, stride, n_global):
    return (i < n_global) | (j < n_global)


def _library_random(n, n_random, seed, causal):
    return attnlab.sparse_mask(n, "random", n_random=n_random, seed=seed, causal=causal)


def _sparse_variant(
    local=_rule_local,
    strided=_rule_strided,
    fixed=_rule_fixed,
    random=_library_random,
    causal_fn=None,
    bigbird_parts=("local", "fixed", "random"),
    apply_causal=True,
):
    """A sparse_mask with some rule replaced by a wrong one (the others as in the reference)."""

    def wrong(n, pattern, window=3, stride=4, n_global=1, n_random=2, seed=0, causal=False):
        i = np.arange(n)[:, None]
        j = np.arange(n)[None, :]
        causal = causal and apply_causal
        allowed = (causal_fn or attnlab.causal_mask)(n, n) if causal else np.ones((n, n), bool)
        rules = {"local": local, "strided": strided, "fixed": fixed}

        def part(name):
            if name == "random":
                return random(n, n_random, seed, causal)
            return np.broadcast_to(rules[name](i, j, window, stride, n_global), (n, n))

        if pattern == "bigbird":
            mask = np.zeros((n, n), bool)
            for name in bigbird_parts:
                mask = mask | part(name)
        else:
            mask = part(pattern)
        return mask & allowed

    return wrong


def _random_then_causal(n, n_random, seed, causal):
    return attnlab.sparse_mask(n, "random", n_random=n_random, seed=seed, causal=False)


def _random_row_seeded(n, n_random, seed, causal):
    allowed = attnlab.causal_mask(n) if causal else np.ones((n, n), bool)
    mask = np.zeros((n, n), bool)
    for i in range(n):
        rng = np.random.default_rng(seed)
        keys = np.flatnonzero(allowed[i])
        mask[i, rng.choice(keys, size=min(n_random, keys.size), replace=False)] = True
    return mask


register(
    Exercise(
        name="sparse_mask",
        zone="03_efficiency",
        reference=attnlab.sparse_mask,
        points=3,
        cases=_sparse_cases,
        description="boolean sparse attention masks: local, strided, fixed, random, BigBird",
        mutants=[
            Mutant(
                "local window off by one",
                _sparse_variant(local=lambda i, j, w, s, g: np.abs(i - j) < w),
                "local window off by one: query i sees the keys with |i - j| <= window (window "
                "neighbours on each side, and itself): use <=, not <.",
            ),
            Mutant(
                "local window one-sided",
                _sparse_variant(local=lambda i, j, w, s, g: (i - j <= w) & (i - j >= 0)),
                "the local window is two-sided: |i - j| <= window, keys on both sides of the "
                "query (causal=True removes the future side separately).",
            ),
            Mutant(
                "strided on the key index",
                _sparse_variant(strided=lambda i, j, w, s, g: j % s == 0),
                "strided means the DISTANCE i - j is a multiple of stride: (i - j) % stride == 0, "
                "not j % stride == 0.",
            ),
            Mutant(
                "global tokens only send",
                _sparse_variant(fixed=lambda i, j, w, s, g: j < g),
                "global tokens work both ways: every token attends to them (j < n_global) AND "
                "they attend to every token (i < n_global).",
            ),
            Mutant(
                "global tokens only receive",
                _sparse_variant(fixed=lambda i, j, w, s, g: i < g),
                "global tokens work both ways: every token attends to them (j < n_global) AND "
                "they attend to every token (i < n_global).",
            ),
            Mutant(
                "bigbird without random keys",
                _sparse_variant(bigbird_parts=("local", "fixed")),
                "BigBird is the union of local, fixed (global) AND random keys.",
            ),
            Mutant(
                "bigbird without global tokens",
                _sparse_variant(bigbird_parts=("local", "random")),
                "BigBird is the union of local, fixed (global) AND random keys.",
            ),
            Mutant(
                "causal ignored",
                _sparse_variant(apply_causal=False),
                "causal=True is ignored: intersect the pattern with the causal mask (j <= i), "
                "e.g. mask & attnlab.causal_mask(n), and draw random keys among j <= i.",
            ),
            Mutant(
                "causal mask transposed",
                _sparse_variant(causal_fn=lambda n, m: np.triu(np.ones((n, m), bool))),
                "causal mask transposed: a query may see keys j <= i (the lower triangle, "
                "np.tril), not the future.",
            ),
            Mutant(
                "random keys drawn before the causal cut",
                _sparse_variant(random=_random_then_causal),
                "with causal=True, draw the random keys among the allowed ones (set the priority "
                "of future keys to inf before the argsort), so row i gets min(n_random, i + 1) keys.",
            ),
            Mutant(
                "a new generator for every row",
                _sparse_variant(random=_random_row_seeded),
                "random keys: create ONE generator rng = np.random.default_rng(seed), draw the "
                "whole (n, n) priority matrix with rng.random((n, n)) and keep, in each row, the "
                "n_random keys of lowest priority (np.argsort(priority, axis=1)).",
            ),
        ],
    )
)

# ================================================================ linear_attention


def _linear_cases():
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    q3, k5, v5 = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    qb, kb, vb = (
        rng.normal(size=(2, 3, 7, 4)),
        rng.normal(size=(2, 3, 7, 4)),
        rng.normal(size=(2, 3, 7, 5)),
    )
    return [
        Case("q, k, v of shape (6, 4)", (q, k, v)),
        Case("q, k, v of shape (6, 4), causal=True", (q, k, v), {"causal": True}),
        Case("3 queries, 5 keys, d_v = 2", (q3, k5, v5)),
        Case(
            "a (2, 5, 3) batch with d_v = 2, causal=True",
            tuple(
                np.random.default_rng(105).normal(size=s) for s in ((2, 5, 3), (2, 5, 3), (2, 5, 2))
            ),
            {"causal": True},
        ),
        Case(
            "a (2, 3, 7, 4) batch of heads with d_v = 5, causal=True",
            (qb, kb, vb),
            {"causal": True},
            hidden=True,
        ),
        Case("strongly negative inputs (the exp branch of elu)", (q - 6, k - 6, v), hidden=True),
        Case("a (2, 3, 7, 4) batch, not causal", (qb, kb, vb), hidden=True),
        Case(
            "float32 inputs, causal=True",
            tuple(a.astype(np.float32) for a in (qb, kb, vb)),
            {"causal": True},
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _phi(x):
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def _linear_generic(q, k, v, causal, phi=_phi, normalise=True, prefix="inclusive"):
    phi_q, phi_k = phi(q), phi(k)
    sim = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        n = q.shape[-2]
        keep = np.tril(np.ones((n, n), bool), k=0 if prefix == "inclusive" else -1)
        sim = np.where(keep, sim, 0.0)
    if normalise:
        sim = sim / sim.sum(axis=-1, keepdims=True)
    return sim @ v


def _linear_no_normaliser(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, normalise=False)


def _linear_causal_full_sum(q, k, v, causal=False):
    return _linear_generic(q, k, v, False)


def _linear_exclusive_prefix(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, prefix="exclusive")


def _linear_no_plus_one(q, k, v, causal=False):
    return _linear_generic(
        q, k, v, causal, phi=lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    )


def _linear_relu(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, phi=lambda x: np.maximum(x, 0.0))


def _linear_exp(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, phi=np.exp)


def _linear_softmax(q, k, v, causal=False):
    return attnlab.scaled_dot_product_attention(q, k, v, causal=causal)[0]


def _linear_numerator_sum_only(q, k, v, causal=False):
    """Normalised by the sum over keys of phi(k) alone (the denominator without phi(q))."""
    phi_q, phi_k = _phi(q), _phi(k)
    sim = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        sim = np.where(np.tril(np.ones(sim.shape[-2:], bool)), sim, 0.0)
    z = phi_k.sum(axis=-2)  # (..., d)
    return (sim @ v) / z.sum(axis=-1)[..., None, None]


register(
    Exercise(
        name="linear_attention",
        zone="03_efficiency",
        reference=attnlab.linear_attention,
        points=2,
        cases=_linear_cases,
        rtol=1e-6,
        atol=1e-9,
        description="linear attention with phi = elu + 1, by associativity (Katharopoulos et al. 2020)",
        mutants=[
            Mutant(
                "no normaliser",
                _linear_no_normaliser,
                "the normaliser is missing: divide phi(q_i) S by phi(q_i) . z with "
                "z = sum_j phi(k_j), so that each query's weights sum to 1.",
            ),
            Mutant(
                "causal uses the full sum",
                _linear_causal_full_sum,
                "with causal=True, S and z must be PREFIX sums over keys j <= i (np.cumsum along "
                "the token axis), not sums over all keys.",
            ),
            Mutant(
                "causal prefix excludes the query",
                _linear_exclusive_prefix,
                "the causal prefix must include the query's own key: sum over j <= i, not j < i.",
            ),
            Mutant(
                "elu without +1",
                _linear_no_plus_one,
                "the feature map is elu(x) + 1 (x + 1 for x > 0, exp(x) for x <= 0), which is "
                "always positive; you used elu(x) alone.",
            ),
            Mutant(
                "relu feature map",
                _linear_relu,
                "the feature map is elu(x) + 1 (x + 1 for x > 0, exp(x) for x <= 0), not relu.",
            ),
            Mutant(
                "exp feature map",
                _linear_exp,
                "the feature map is elu(x) + 1 (x + 1 for x > 0, exp(x) for x <= 0), not exp(x) "
                "everywhere.",
            ),
            Mutant(
                "softmax attention",
                _linear_softmax,
                "this is softmax attention: linear attention replaces exp(q.k / sqrt(d)) by "
                "phi(q) . phi(k) with phi = elu + 1 (and no 1/sqrt(d)).",
            ),
            Mutant(
                "denominator without phi(q)",
                _linear_numerator_sum_only,
                "the denominator of query i is phi(q_i) . z with z = sum_j phi(k_j): it depends on "
                "the query.",
            ),
        ],
    )
)
