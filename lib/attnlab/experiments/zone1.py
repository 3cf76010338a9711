"""Zone 1 measurements: the fossils in numbers, and what 1/sqrt(d_k) does to the softmax.

`fossil_table` puts numbers on Table 1 of Vaswani et al. 2017 ("Attention Is All You Need"):
work per layer, sequential operations and maximum path length of a recurrent layer, a
convolution and self-attention. `scaling_statistics` draws random queries and keys and
measures how the scores, the attention weights and the softmax gradient change with d_k,
with and without the 1/sqrt(d_k) scale.
"""

from __future__ import annotations

import math

import numpy as np

from .._validate import require_positive_int
from ..functional import softmax, softmax_jacobian

__all__ = ["D_K_STEPS", "fossil_table", "scaling_statistics", "scaling_sweep"]

# d_k values for the scaling explorer: 1 .. 1024 in roughly logarithmic steps.
D_K_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def _cnn_path_length(n: int, k: int, dilated: bool) -> int:
    """Layers a causal convolution stack needs before the last output sees the first input.

    Contiguous kernels reach k - 1 positions further back per layer: ceil((n - 1) / (k - 1)).
    Dilated kernels (dilation 1, k, k^2, ...) multiply the reach by k per layer: ceil(log_k n).
    Integer arithmetic, so no floating-point log rounds the wrong way.
    """
    if not dilated:
        return -(-(n - 1) // (k - 1))
    layers, receptive_field = 0, 1
    while receptive_field < n:
        receptive_field *= k
        layers += 1
    return layers


def fossil_table(n: int, d: int = 512, k: int = 3) -> list[dict]:
    """Table 1 of Vaswani et al. 2017, evaluated for n tokens of width d (convolution width k).

    One row per layer type, each a dict with
      "layer": name, "complexity": the paper's O(.) per layer,
      "ops": multiply-adds of one layer on the whole sequence,
      "ops_with_projections": the same, counting everything the layer computes: for
              self-attention 2 n^2 d plus the 4 n d^2 of the projections W_Q, W_K, W_V, W_O
              (equal to "ops" for the other layers, whose counts already hold all their work),
      "sequential": operations that must run one after another,
      "path": maximum path length, the number of layers (or recurrent steps) a signal
              crosses to connect the first and the last token.
    Counts: RNN h_t = tanh(x_t W_x + h_{t-1} W_h) is 2 d^2 per token; a causal convolution
    is k d^2 per token; self-attention is Q K^T plus A V, 2 n^2 d (the projections W_Q, W_K,
    W_V, W_O, 4 n d^2 more, are left out of "ops" as in the paper's table, and counted in
    "ops_with_projections"). So attention / RNN is n / d in "ops" and n / d + 2 with the
    projections. n >= 2, k >= 2.
    """
    n = require_positive_int("n", n)
    d = require_positive_int("d", d)
    k = require_positive_int("k", k)
    if n < 2:
        raise ValueError(f"n must be >= 2 (a path joins two different tokens), got n={n}")
    if k < 2:
        raise ValueError(f"k must be >= 2 (a width-1 convolution never mixes tokens), got k={k}")
    rows = [
        {
            "layer": "RNN",
            "complexity": "O(n·d²)",
            "ops": 2 * n * d * d,
            "sequential": n,
            "path": n - 1,
        },
        {
            "layer": f"CNN (k={k})",
            "complexity": "O(k·n·d²)",
            "ops": k * n * d * d,
            "sequential": 1,
            "path": _cnn_path_length(n, k, dilated=False),
        },
        {
            "layer": f"CNN (k={k}, dilated)",
            "complexity": "O(k·n·d²)",
            "ops": k * n * d * d,
            "sequential": 1,
            "path": _cnn_path_length(n, k, dilated=True),
        },
        {
            "layer": "self-attention",
            "complexity": "O(n²·d)",
            "ops": 2 * n * n * d,
            "sequential": 1,
            "path": 1,
        },
    ]
    for row in rows:
        row["ops_with_projections"] = row["ops"]
    rows[-1]["ops_with_projections"] += 4 * n * d * d  # W_Q, W_K, W_V, W_O on n tokens
    return rows


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
    d_values=D_K_STEPS, scaled: bool = True, n_queries: int = 256, n_keys: int = 64, seed: int = 0
) -> dict:
    """scaling_statistics for each d_k in d_values: a dict of arrays (d_k, score_std, max_weight,
    entropy, grad_norm), one entry per d_k, for the curves of the scaling explorer."""
    rows = [scaling_statistics(d, scaled, n_queries, n_keys, seed) for d in d_values]
    names = ("score_std", "max_weight", "entropy", "grad_norm")
    sweep = {name: np.array([row[name] for row in rows]) for name in names}
    sweep["d_k"] = np.array(d_values)
    sweep["max_entropy"] = math.log(n_keys)
    return sweep
