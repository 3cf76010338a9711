"""What the 1/sqrt(d_k) scale does: the variance of q.k grows with d_k and saturates the softmax
(Zones 1 and 3)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .._validate import require_positive_int
from ..functional import score_variance, softmax, softmax_jacobian

__all__ = ["D_K_STEPS", "scaling_statistics", "scaling_sweep", "score_variance_monte_carlo"]


# d_k values for the scaling explorer: 1 .. 1024 in roughly logarithmic steps.
D_K_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def scaling_statistics(
    d_k: int, scaled: bool = True, n_queries: int = 256, n_keys: int = 64, seed: int = 0
) -> dict:
    """What the softmax sees for random unit-variance q, k of width d_k, scaled or not.

    Draws q (n_queries, d_k) and k (n_keys, d_k) with N(0, 1) entries (fixed seed), computes
    the scores q k^T (divided by sqrt(d_k) if scaled) and softmax over the keys. Returns a dict:
      "scores": all scores, flattened; "score_std": their standard deviation;
      "max_weight": the largest weight of a row (1 / n_keys is uniform, 1 is one-hot);
      "entropy": the entropy of a row in nats (log n_keys is uniform, 0 one-hot);
      "max_entropy": log(n_keys);
      "grad_norm": the Frobenius norm of the softmax Jacobian d a / d s of a row (it goes to
                   0 as the softmax saturates: no gradient flows back to the scores).
    The three row statistics are medians over the queries, the typical query: a few rows
    whose top two scores happen to tie would otherwise dominate a mean.
    """
    d_k = require_positive_int("d_k", d_k)
    n_queries = require_positive_int("n_queries", n_queries)
    n_keys = require_positive_int("n_keys", n_keys)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_queries, d_k))
    k = rng.standard_normal((n_keys, d_k))
    scores = q @ k.T
    if scaled:
        scores = scores / math.sqrt(d_k)
    weights = softmax(scores, axis=-1)
    plogp = np.where(weights > 0, weights * np.log(np.where(weights > 0, weights, 1.0)), 0.0)
    jacobians = softmax_jacobian(scores)  # (n_queries, n_keys, n_keys)
    return {
        "scores": scores.ravel(),
        "score_std": float(scores.std()),
        "max_weight": float(np.median(weights.max(axis=-1))),
        "entropy": float(np.median(-plogp.sum(axis=-1))),
        "max_entropy": math.log(n_keys),
        "grad_norm": float(np.median(np.linalg.norm(jacobians, axis=(-2, -1)))),
    }


def scaling_sweep(
    d_values: Sequence[int] = D_K_STEPS,
    scaled: bool = True,
    n_queries: int = 256,
    n_keys: int = 64,
    seed: int = 0,
) -> dict:
    """scaling_statistics for each d_k in d_values: a dict of arrays (d_k, score_std, max_weight,
    entropy, grad_norm), one entry per d_k, for the curves of the scaling explorer."""
    rows = [scaling_statistics(d, scaled, n_queries, n_keys, seed) for d in d_values]
    names = ("score_std", "max_weight", "entropy", "grad_norm")
    sweep = {name: np.array([row[name] for row in rows]) for name in names}
    sweep["d_k"] = np.array(d_values)
    sweep["max_entropy"] = math.log(n_keys)
    return sweep


# ============================================================================ Var(q . k)
def score_variance_monte_carlo(
    d_k: int,
    n_samples: int = 10_000,
    q_var: float = 1.0,
    k_var: float = 1.0,
    scaled: bool = False,
    distribution: str = "normal",
    seed: int = 0,
) -> dict:
    """Sample n_samples pairs (q, k) with i.i.d. zero-mean entries and measure Var(q . k).

    distribution: "normal" or "uniform" (uniform on [-a, a] with a = sqrt(3 var), which has
    the same variance): the derivation assumes independence and zero mean only, not a shape.
    scaled=True measures q . k / sqrt(d_k). Returns a dict with the empirical variance, the
    predicted one (attnlab.score_variance), the standard error of the empirical variance,
    sqrt((m4 - s^4) / n) with m4 the fourth central moment, and z = (empirical - predicted) / se.
    """
    d_k = require_positive_int("d_k", d_k)
    n_samples = require_positive_int("n_samples", n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 to estimate a variance, got {n_samples}")
    if distribution not in ("normal", "uniform"):
        raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")
    predicted = score_variance(d_k, q_var, k_var, scaled=scaled)
    rng = np.random.default_rng(seed)

    def draw(var, shape):
        if distribution == "normal":
            return rng.normal(0.0, math.sqrt(var), size=shape)
        half_width = math.sqrt(3.0 * var)
        return rng.uniform(-half_width, half_width, size=shape)

    scores = np.empty(n_samples)
    chunk = max(1, 2_000_000 // d_k)  # keep each (chunk, d_k) draw around 16 MB
    for start in range(0, n_samples, chunk):
        stop = min(n_samples, start + chunk)
        q = draw(q_var, (stop - start, d_k))
        k = draw(k_var, (stop - start, d_k))
        scores[start:stop] = np.sum(q * k, axis=-1)
    if scaled:
        scores /= math.sqrt(d_k)
    centred = scores - scores.mean()
    empirical = float(np.mean(centred**2))
    m4 = float(np.mean(centred**4))
    std_error = math.sqrt(max(m4 - empirical**2, 0.0) / n_samples)
    z = (empirical - predicted) / std_error if std_error > 0 else 0.0
    return {
        "d_k": d_k,
        "distribution": distribution,
        "scaled": scaled,
        "empirical": empirical,
        "predicted": predicted,
        "std_error": std_error,
        "z": z,
    }
