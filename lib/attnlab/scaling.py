"""Zone 5 experiments in formulas: scaling laws and in-context learning as gradient descent.

- fit_power_law, chinchilla_optimal: loss ~ a * N**(-alpha) and compute-optimal model size.
- gd_step_linear_attention, linear_attention_gd_weights, linear_self_attention, icl_tokens:
  one step of gradient descent on in-context linear regression, and a linear self-attention
  layer whose weights make it compute exactly that step (von Oswald et al. 2023).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ._validate import as_float_array, require_positive_int

__all__ = [
    "chinchilla_optimal",
    "fit_power_law",
    "gd_step_linear_attention",
    "icl_tokens",
    "linear_attention_gd_weights",
    "linear_self_attention",
]

CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022, "Training Compute-Optimal LLMs"
FLOPS_PER_PARAM_PER_TOKEN = 6.0  # C = 6 N D: forward (2) + backward (4) FLOPs per weight, per token


def _positive_scalar(name: str, value) -> float:
    """Return `value` as a float, raising ValueError unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def fit_power_law(n: ArrayLike, loss: ArrayLike) -> tuple[float, float]:
    """Fit loss ~ a * n**(-alpha) by least squares on log(loss) = log(a) - alpha * log(n).

    A power law is a straight line on log-log axes; its slope is -alpha. n, loss: (k,) with
    k >= 2 positive values (at least two distinct n). Returns (a, alpha).
    """
    n, loss = as_float_array("n", n), as_float_array("loss", loss)
    for name, arr in (("n", n), ("loss", loss)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
        if not (np.isfinite(arr).all() and (arr > 0).all()):
            raise ValueError(f"{name} must hold finite positive values, got {arr.tolist()}")
    if n.shape != loss.shape:
        raise ValueError(f"n and loss must have the same length, got {n.shape} and {loss.shape}")
    if len(n) < 2:
        raise ValueError(f"need at least 2 points to fit a power law, got {len(n)}")
    if np.all(n == n[0]):
        raise ValueError(f"n must hold at least two distinct values, got {n.tolist()}")
    slope, intercept = np.polyfit(np.log(n.astype(np.float64)), np.log(loss.astype(np.float64)), 1)
    return float(math.exp(intercept)), float(-slope)


def chinchilla_optimal(
    flops: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM
) -> tuple[float, float]:
    """Compute-optimal parameters N and training tokens D for a budget of `flops` FLOPs.

    Uses C = 6 N D (Kaplan et al. 2020) and D = tokens_per_param * N, the rule of thumb of
    Hoffmann et al. 2022 (Chinchilla: about 20 tokens per parameter). Solving gives
    N = sqrt(C / (6 * tokens_per_param)) and D = tokens_per_param * N. Returns (N, D) as floats.
    """
    flops = _positive_scalar("flops", flops)
    tokens_per_param = _positive_scalar("tokens_per_param", tokens_per_param)
    n_params = math.sqrt(flops / (FLOPS_PER_PARAM_PER_TOKEN * tokens_per_param))
    return n_params, tokens_per_param * n_params


def _regression_data(x, y, x_query):
    """Check the shapes of an in-context regression task: x (N, d), y (N,), x_query (M, d)."""
    x, y, x_query = (
        as_float_array("x", x),
        as_float_array("y", y),
        as_float_array("x_query", x_query),
    )
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (N, d) with N >= 1, got {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},) to match x {x.shape}, got {y.shape}")
    if x_query.ndim != 2 or x_query.shape[1] != x.shape[1]:
        raise ValueError(
            f"x_query must have shape (M, {x.shape[1]}) to match x {x.shape}, got {x_query.shape}"
        )
    return x, y, x_query


def gd_step_linear_attention(
    x: ArrayLike, y: ArrayLike, x_query: ArrayLike, lr: float
) -> np.ndarray:
    """Predictions at x_query after one gradient-descent step from w = 0 on least squares.

    L(w) = 1/(2N) sum_i (w . x_i - y_i)**2 has gradient -(1/N) sum_i y_i x_i at w = 0, so
    w_1 = (lr / N) sum_i y_i x_i and the prediction is x_query @ w_1. This is the quantity a
    linear self-attention layer can compute exactly (see linear_attention_gd_weights).
    x: (N, d), y: (N,), x_query: (M, d). Returns (M,).
    """
    x, y, x_query = _regression_data(x, y, x_query)
    if not math.isfinite(lr):
        raise ValueError(f"lr must be a finite number, got {lr}")
    w1 = (lr / x.shape[0]) * (x.T @ y)  # (d,)
    return x_query @ w1


def icl_tokens(x: ArrayLike, y: ArrayLike, x_query: ArrayLike) -> np.ndarray:
    """Tokens of an in-context regression prompt: rows [x_i, y_i], then queries [x_q, 0].

    x: (N, d), y: (N,), x_query: (M, d). Returns Z of shape (N + M, d + 1).
    """
    x, y, x_query = _regression_data(x, y, x_query)
    context = np.concatenate([x, y[:, None]], axis=1)
    queries = np.concatenate(
        [x_query, np.zeros((x_query.shape[0], 1), dtype=x_query.dtype)], axis=1
    )
    return np.concatenate([context, queries], axis=0)


def linear_self_attention(
    z: ArrayLike, w_q: ArrayLike, w_k: ArrayLike, w_v: ArrayLike, w_o: ArrayLike
) -> np.ndarray:
    """One residual linear self-attention layer (no softmax): Z + ((Z W_q)(Z W_k)^T)(Z W_v) W_o.

    Token j receives sum_i ((z_j W_q) . (z_i W_k)) (z_i W_v) W_o, summed over every token i.
    z: (..., T, e); w_q, w_k: (e, e_k); w_v: (e, e_v); w_o: (e_v, e). Returns (..., T, e).
    """
    z = as_float_array("z", z)
    if z.ndim < 2:
        raise ValueError(f"z must have shape (..., T, e), got {z.shape}")
    mats = {
        name: as_float_array(name, w)
        for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o))
    }
    e = z.shape[-1]
    for name in ("w_q", "w_k", "w_v"):
        if mats[name].ndim != 2 or mats[name].shape[0] != e:
            raise ValueError(
                f"{name} must have shape ({e}, width) to match z {z.shape}, got {mats[name].shape}"
            )
    if mats["w_q"].shape != mats["w_k"].shape:
        raise ValueError(
            f"w_q and w_k must have the same shape, got {mats['w_q'].shape} and {mats['w_k'].shape}"
        )
    if mats["w_o"].shape != (mats["w_v"].shape[1], e):
        raise ValueError(
            f"w_o must have shape ({mats['w_v'].shape[1]}, {e}), got {mats['w_o'].shape}"
        )
    q, k, v = z @ mats["w_q"], z @ mats["w_k"], z @ mats["w_v"]
    scores = q @ np.swapaxes(k, -1, -2)  # (..., T, T), no softmax and no 1/sqrt(d)
    return z + (scores @ v) @ mats["w_o"]


def linear_attention_gd_weights(d: int, lr: float, n_context: int) -> dict[str, np.ndarray]:
    """Weights for which linear_self_attention performs one gradient-descent step in context.

    The construction of von Oswald et al. 2023 ("Transformers learn in-context by gradient
    descent", Prop. 1), for tokens z = [x, y] of width d + 1 (see icl_tokens):
        W_q = W_k = [[I_d, 0], [0, 0]]   the score between tokens j and i is x_j . x_i
        W_v       = [[0, 0], [0, 1]]     the value of token i is y_i, in the last slot
        W_o       = (lr / n_context) I   the step size of gradient descent over N examples
    The query token [x_q, 0] then receives sum_i (x_q . x_i) y_i lr / N = x_q . w_1 in its
    last slot, exactly gd_step_linear_attention. (Query tokens have y = 0, so their own values
    are 0 and adding them to the sum changes nothing.) Von Oswald et al. store -y and read off
    -prediction; here the sign is +. Returns {"w_q", "w_k", "w_v", "w_o"}, each (d + 1, d + 1).
    """
    d = require_positive_int("d", d)
    n_context = require_positive_int("n_context", n_context)
    if not math.isfinite(lr):
        raise ValueError(f"lr must be a finite number, got {lr}")
    w_qk = np.zeros((d + 1, d + 1))
    w_qk[:d, :d] = np.eye(d)
    w_v = np.zeros((d + 1, d + 1))
    w_v[d, d] = 1.0
    w_o = (lr / n_context) * np.eye(d + 1)
    return {"w_q": w_qk, "w_k": w_qk.copy(), "w_v": w_v, "w_o": w_o}
