"""The statistics of the scores q . k: measured (zone 1) and derived, Var(q . k) = d_k (zone 3a)."""

from __future__ import annotations

import math

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

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
        zone="01_experience",
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


# ============================================================================ score_variance


def _score_variance_cases():
    return [
        Case("d_k = 64, unit-variance entries", (64,)),
        Case("d_k = 64, scaled=True (the score divided by sqrt(d_k))", (64,), {"scaled": True}),
        Case("d_k = 16 with q_var = 2.0 and k_var = 0.5", (16,), {"q_var": 2.0, "k_var": 0.5}),
        Case("d_k = 16 with q_var = 2.0 and k_var = 1.5", (16,), {"q_var": 2.0, "k_var": 1.5}),
        Case(
            "d_k = 8, q_var = 0.5, k_var = 4.0, scaled=True",
            (8,),
            {"q_var": 0.5, "k_var": 4.0, "scaled": True},
        ),
        Case("d_k = 1", (1,), hidden=True),
        Case(
            "d_k = 512 with q_var = 3.0, k_var = 1.0",
            (512,),
            {"q_var": 3.0, "k_var": 1.0},
            hidden=True,
        ),
        Case(
            "d_k = 32, q_var = 2.0, k_var = 3.0, scaled=True",
            (32,),
            {"q_var": 2.0, "k_var": 3.0, "scaled": True},
            hidden=True,
        ),
        Case(
            "d_k = 1024, q_var = 0.25, k_var = 4.0, scaled=True",
            (1024,),
            {"q_var": 0.25, "k_var": 4.0, "scaled": True},
            hidden=True,
        ),
        Case("d_k = 7, q_var = 0.0 (q is always zero)", (7,), {"q_var": 0.0}, hidden=True),
    ]


def _sv_std(d_k, q_var=1.0, k_var=1.0, scaled=False):
    var = attnlab.score_variance(d_k, q_var, k_var, scaled)
    return math.sqrt(var)


def _sv_scaled_by_sqrt(d_k, q_var=1.0, k_var=1.0, scaled=False):
    var = d_k * q_var * k_var
    return var / math.sqrt(d_k) if scaled else var


def _sv_ignores_vars(d_k, q_var=1.0, k_var=1.0, scaled=False):
    return 1.0 if scaled else float(d_k)


def _sv_adds_vars(d_k, q_var=1.0, k_var=1.0, scaled=False):
    var = d_k * (q_var + k_var)
    return var / d_k if scaled else var


def _sv_ignores_scaled(d_k, q_var=1.0, k_var=1.0, scaled=False):
    return d_k * q_var * k_var


def _sv_scaled_is_one(d_k, q_var=1.0, k_var=1.0, scaled=False):
    return 1.0 if scaled else d_k * q_var * k_var


def _sv_d_squared(d_k, q_var=1.0, k_var=1.0, scaled=False):
    var = d_k**2 * q_var * k_var
    return var / d_k if scaled else var


register(
    Exercise(
        name="score_variance",
        zone="03_derivations",
        reference=attnlab.score_variance,
        points=2,
        cases=_score_variance_cases,
        description="Var(q . k) = d_k q_var k_var; divided by d_k when scaled",
        mutants=[
            Mutant(
                "standard deviation instead of variance",
                _sv_std,
                "you returned the standard deviation: the variance of q . k is "
                "d_k * q_var * k_var itself, with no square root.",
            ),
            Mutant(
                "scaled by sqrt(d_k) instead of d_k",
                _sv_scaled_by_sqrt,
                "dividing the score by sqrt(d_k) divides its variance by (sqrt(d_k))^2 = d_k, "
                "not by sqrt(d_k): Var(cY) = c^2 Var(Y).",
            ),
            Mutant(
                "ignores q_var and k_var",
                _sv_ignores_vars,
                "q_var and k_var are ignored: each product q_i k_i has variance "
                "q_var * k_var, so multiply by both.",
            ),
            Mutant(
                "adds the variances",
                _sv_adds_vars,
                "the variances are added; for independent zero-mean q_i and k_i, "
                "Var(q_i k_i) = E[q_i^2] E[k_i^2] = q_var * k_var (a product).",
            ),
            Mutant(
                "ignores scaled",
                _sv_ignores_scaled,
                "the `scaled` argument is ignored: with scaled=True the score is "
                "q . k / sqrt(d_k), so divide the variance by d_k.",
            ),
            Mutant(
                "scaled variance always 1",
                _sv_scaled_is_one,
                "with scaled=True the variance is q_var * k_var, which is 1 only for "
                "unit-variance entries.",
            ),
            Mutant(
                "d_k squared",
                _sv_d_squared,
                "the d_k terms q_i k_i are uncorrelated, so their variances add: d_k times "
                "one term's variance, not d_k^2 times.",
            ),
        ],
    )
)
