"""Zone 1 exercises: attention with learned projections, and the statistics of q . k."""

from __future__ import annotations

import attnlab
import numpy as np

from .core import Case, Exercise, Mutant, register

# ---------------------------------------------------------------- qkv_attention


def _qkv_cases():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(5, 8))
    w_q, w_k, w_v = rng.normal(size=(8, 4)), rng.normal(size=(8, 4)), rng.normal(size=(8, 6))
    xb = rng.normal(size=(2, 5, 8))
    square = tuple(rng.normal(size=(8, 8)) / np.sqrt(8) for _ in range(3))
    hide_last_two = np.array([True, True, True, False, False])
    x4 = rng.normal(size=(2, 3, 6, 8))
    pad = np.array([True] * 4 + [False] * 2)[None, None, None, :].repeat(2, axis=0)
    return [
        Case("5 tokens of width 8; w_q, w_k (8, 4), w_v (8, 6)", (x, w_q, w_k, w_v)),
        Case("causal=True on a batch x (2, 5, 8)", (xb, w_q, w_k, w_v), {"causal": True}),
        Case(
            "mask = [True, True, True, False, False] hides the last two keys",
            (x, w_q, w_k, w_v),
            {"mask": hide_last_two},
        ),
        Case("square projections (8, 8): d_k = d_model", (x, *square), hidden=True),
        Case("a (2, 3, 6, 8) batch", (x4, w_q, w_k, w_v), hidden=True),
        Case(
            "a padding mask of shape (2, 1, 1, 6) with causal=True",
            (x4, w_q, w_k, w_v),
            {"mask": pad, "causal": True},
            hidden=True,
        ),
        Case(
            "large tokens (x times 20): a saturated softmax", (20 * x, w_q, w_k, w_v), hidden=True
        ),
        Case(
            "float32 inputs",
            tuple(a.astype(np.float32) for a in (xb, w_q, w_k, w_v)),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _qkv_variant(
    project=None,
    scale=None,
    softmax_axis=-1,
    use_mask=True,
    use_causal=True,
    causal_fn=None,
    swap_qk=False,
):
    """Build one wrong qkv_attention from the reference recipe, with one step changed."""

    def wrong(x, w_q, w_k, w_v, mask=None, causal=False):
        proj = project or (lambda x, w: x @ w)
        q, k, v = proj(x, w_q), proj(x, w_k), proj(x, w_v)
        if swap_qk:
            q, k = k, q
        d = scale(x, q) if scale else np.sqrt(q.shape[-1])
        scores = q @ np.swapaxes(k, -1, -2) / d
        n = x.shape[-2]
        allowed = np.ones((n, n), dtype=bool)
        if mask is not None and use_mask:
            allowed = allowed & np.asarray(mask)
        if causal and use_causal:
            allowed = allowed & (causal_fn or attnlab.causal_mask)(n, n)
        weights = attnlab.softmax(np.where(allowed, scores, -np.inf), axis=softmax_axis)
        return weights @ v, weights

    return wrong


def _qkv_no_value_projection(x, w_q, w_k, w_v, mask=None, causal=False):
    _, weights = attnlab.qkv_attention(x, w_q, w_k, w_v, mask=mask, causal=causal)
    return weights @ x, weights


def _qkv_swapped_outputs(x, w_q, w_k, w_v, mask=None, causal=False):
    out, weights = attnlab.qkv_attention(x, w_q, w_k, w_v, mask=mask, causal=causal)
    return weights, out


register(
    Exercise(
        name="qkv_attention",
        reference=attnlab.qkv_attention,
        points=3,
        cases=_qkv_cases,
        description="q, k, v = x @ w_q, x @ w_k, x @ w_v, then softmax(q k^T / sqrt(d_k)) v",
        mutants=[
            Mutant(
                "missing 1/sqrt(d_k)",
                _qkv_variant(scale=lambda x, q: 1.0),
                "the scores are not scaled: divide q @ k^T by sqrt(d_k), where d_k = w_q.shape[1] "
                "(the width of q), not the width of x.",
            ),
            Mutant(
                "scaled by sqrt(d_model)",
                _qkv_variant(scale=lambda x, q: np.sqrt(x.shape[-1])),
                "the scale uses the width of the tokens x (d_model); it must use d_k, the width of "
                "q = x @ w_q.",
            ),
            Mutant(
                "scaled by d_k",
                _qkv_variant(scale=lambda x, q: q.shape[-1]),
                "the scores are divided by d_k; the scale is 1/sqrt(d_k).",
            ),
            Mutant(
                "projections transposed",
                _qkv_variant(project=lambda x, w: x @ w.T),
                "the projections use w.T: with the row-vector convention q = x @ w_q, each token "
                "(a row of x) is multiplied by w_q of shape (d_model, d_k), without transposing.",
            ),
            Mutant(
                "queries and keys swapped",
                _qkv_variant(swap_qk=True),
                "queries and keys are swapped: q = x @ w_q and k = x @ w_k, scores = q @ k^T "
                "(row i: how well query i matches each key).",
            ),
            Mutant(
                "no value projection",
                _qkv_no_value_projection,
                "the weights multiply x instead of v: the output is weights @ v with v = x @ w_v.",
            ),
            Mutant(
                "softmax over the queries",
                _qkv_variant(softmax_axis=-2),
                "softmax over the wrong axis: each query's weights over the keys (the last axis) "
                "must sum to 1.",
            ),
            Mutant(
                "mask ignored",
                _qkv_variant(use_mask=False),
                "the `mask` argument is ignored: where mask is False, set the score to -inf before "
                "the softmax.",
            ),
            Mutant(
                "causal ignored",
                _qkv_variant(use_causal=False),
                "causal=True is ignored: token i may only attend tokens j <= i "
                "(use attnlab.causal_mask(N)).",
            ),
            Mutant(
                "causal mask transposed",
                _qkv_variant(causal_fn=lambda n_q, n_k: np.triu(np.ones((n_q, n_k), dtype=bool))),
                "causal mask transposed: tokens see the future. Keep the lower triangle (np.tril), "
                "True where j <= i.",
            ),
            Mutant(
                "outputs swapped",
                _qkv_swapped_outputs,
                "the two results are swapped: return (out, weights), in that order.",
            ),
        ],
    )
)

# ---------------------------------------------------------------- score_statistics


def _stats_cases():
    rng = np.random.default_rng(12)
    q16, k16 = rng.standard_normal((2000, 16)), rng.standard_normal((2000, 16))
    return [
        Case("2000 pairs of unit-variance vectors of width d = 16", (q16, k16)),
        Case(
            "3 hand-written pairs of width 2: q = [[1, 2], [0, 1], [3, -1]], k = [[1, 0], [2, 2], [1, 1]]",
            (
                np.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]]),
                np.array([[1.0, 0.0], [2.0, 2.0], [1.0, 1.0]]),
            ),
        ),
        Case(
            "width d = 1 (scalars)",
            (rng.standard_normal((50, 1)), rng.standard_normal((50, 1))),
            hidden=True,
        ),
        Case(
            "entries with mean 1 (the mean of q . k is not 0)",
            (1 + rng.standard_normal((300, 8)), 1 + rng.standard_normal((300, 8))),
            hidden=True,
        ),
        Case(
            "only two pairs",
            (rng.standard_normal((2, 5)), rng.standard_normal((2, 5))),
            hidden=True,
        ),
        Case(
            "d = 256",
            (rng.standard_normal((400, 256)), rng.standard_normal((400, 256))),
            hidden=True,
        ),
        Case(
            "float32 inputs",
            (
                rng.standard_normal((500, 32)).astype(np.float32),
                rng.standard_normal((500, 32)).astype(np.float32),
            ),
            hidden=True,
            rtol=1e-4,
            atol=1e-5,
        ),
    ]


def _row_scores(q, k):
    return np.sum(np.asarray(q, dtype=float) * np.asarray(k, dtype=float), axis=-1)


def _stats_variance(q, k):
    s = _row_scores(q, k)
    return float(s.mean()), float(s.var())


def _stats_ddof1(q, k):
    s = _row_scores(q, k)
    return float(s.mean()), float(s.std(ddof=1))


def _stats_full_matrix(q, k):
    s = np.asarray(q, dtype=float) @ np.asarray(k, dtype=float).T
    return float(s.mean()), float(s.std())


def _stats_scaled(q, k):
    s = _row_scores(q, k) / np.sqrt(np.shape(q)[-1])
    return float(s.mean()), float(s.std())


def _stats_not_summed(q, k):
    s = np.asarray(q, dtype=float) * np.asarray(k, dtype=float)
    return float(s.mean()), float(s.std())


def _stats_wrong_axis(q, k):
    s = np.sum(np.asarray(q, dtype=float) * np.asarray(k, dtype=float), axis=0)
    return float(s.mean()), float(s.std())


def _stats_swapped(q, k):
    s = _row_scores(q, k)
    return float(s.std()), float(s.mean())


register(
    Exercise(
        name="score_statistics",
        reference=attnlab.score_statistics,
        points=2,
        cases=_stats_cases,
        description="empirical mean and population std of the row-wise dot products q[i] . k[i]",
        mutants=[
            Mutant(
                "variance instead of std",
                _stats_variance,
                "the second value is the variance; return the standard deviation, np.std (the "
                "square root of the variance).",
            ),
            Mutant(
                "std with ddof=1",
                _stats_ddof1,
                "the std divides by n - 1 (ddof=1); use the population std, np.std(scores) with "
                "the default ddof=0.",
            ),
            Mutant(
                "statistics of the full q @ k.T matrix",
                _stats_full_matrix,
                "you used every pair q[i] . k[j] (the matrix q @ k.T); score only the matching "
                "rows: scores[i] = q[i] . k[i] = np.sum(q * k, axis=-1).",
            ),
            Mutant(
                "scores scaled by 1/sqrt(d)",
                _stats_scaled,
                "the dot products are divided by sqrt(d); this exercise measures the raw q . k "
                "(whose std grows like sqrt(d)).",
            ),
            Mutant(
                "products not summed over the features",
                _stats_not_summed,
                "the products q[i, j] * k[i, j] are not summed over the features: a dot product is "
                "np.sum(q * k, axis=-1), one number per row.",
            ),
            Mutant(
                "summed over the wrong axis",
                _stats_wrong_axis,
                "summed over the rows (axis 0) instead of the features: use np.sum(q * k, axis=-1).",
            ),
            Mutant(
                "mean and std swapped",
                _stats_swapped,
                "the two values are swapped: return (mean, std), in that order.",
            ),
        ],
    )
)
