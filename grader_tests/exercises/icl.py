"""In-context learning (zone 5): one gradient-descent step as linear attention."""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

# ---------------------------------------------------------------- gd_step_linear_attention


def _gd_cases():
    rng = np.random.default_rng(7)
    x16, w4 = rng.standard_normal((16, 4)), rng.standard_normal(4)
    q3 = rng.standard_normal((3, 4))
    x200 = rng.standard_normal((200, 6))
    y200 = x200 @ rng.standard_normal(6) + 0.1 * rng.standard_normal(200)
    x2 = rng.standard_normal((2, 5))
    x32 = rng.standard_normal((12, 3)).astype(np.float32)
    return [
        Case(
            "x = [[1, 0], [0, 1], [1, 1]], y = [1, 2, 3], x_query = [[1, 1]], lr = 1.0",
            (
                np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
                np.array([1.0, 2.0, 3.0]),
                np.array([[1.0, 1.0]]),
                1.0,
            ),
        ),
        Case("16 examples in d = 4 (y = w . x), 3 queries, lr = 0.5", (x16, x16 @ w4, q3, 0.5)),
        Case(
            "the same task with lr = 16/21, the best single step for N = 16, d = 4",
            (x16, x16 @ w4, q3, 16 / 21),
        ),
        Case(
            "a single example: x = [[2.0]], y = [3.0], x_query = [[1.0], [-1.0]], lr = 0.1",
            (np.array([[2.0]]), np.array([3.0]), np.array([[1.0], [-1.0]]), 0.1),
            hidden=True,
        ),
        Case(
            "200 noisy examples in d = 6, 5 queries, lr = 0.9",
            (x200, y200, rng.standard_normal((5, 6)), 0.9),
            hidden=True,
        ),
        Case(
            "fewer examples than dimensions: N = 2, d = 5, lr = 2.0",
            (x2, rng.standard_normal(2), rng.standard_normal((4, 5)), 2.0),
            hidden=True,
        ),
        Case(
            "float32 inputs: N = 12, d = 3, 3 queries, lr = 0.3",
            (
                x32,
                rng.standard_normal(12).astype(np.float32),
                rng.standard_normal((3, 3)).astype(np.float32),
                0.3,
            ),
            hidden=True,
            rtol=1e-4,
            atol=1e-5,
        ),
    ]


def _gd(x, y, x_query, lr, scale=None, w0=None):
    x, y, x_query = (np.asarray(a, dtype=float) for a in (x, y, x_query))
    n = x.shape[0]
    w = np.zeros(x.shape[1]) if w0 is None else w0
    grad = x.T @ (x @ w - y) / n
    step = lr * grad if scale is None else scale(lr, n, x) * (n * grad)
    return x_query @ (w - step)


register(
    Exercise(
        name="gd_step_linear_attention",
        zone="05_experiments",
        reference=attnlab.gd_step_linear_attention,
        points=3,
        cases=_gd_cases,
        rtol=1e-7,
        atol=1e-10,
        description="predictions x_query @ w_1 after one GD step from w = 0 on 1/(2N) sum (w.x_i - y_i)^2",
        mutants=[
            Mutant(
                "missing 1/N",
                lambda x, y, x_query, lr: _gd(x, y, x_query, lr, scale=lambda lr, n, x: lr),
                "the loss averages over the N examples, L = 1/(2N) sum_i (...)**2, so the "
                "gradient carries a 1/N: w_1 = (lr / N) * x.T @ y.",
            ),
            Mutant(
                "gradient sign flipped",
                lambda x, y, x_query, lr: -_gd(x, y, x_query, lr),
                "gradient DEscent moves against the gradient: w_1 = w_0 - lr * grad, and at "
                "w_0 = 0 the gradient is -(1/N) x.T @ y, so w_1 = +(lr / N) x.T @ y.",
            ),
            Mutant(
                "started from least squares",
                lambda x, y, x_query, lr: _gd(
                    x,
                    y,
                    x_query,
                    lr,
                    w0=np.linalg.lstsq(np.asarray(x, float), np.asarray(y, float), rcond=None)[0],
                ),
                "the step starts from w = 0, not from the least-squares solution (whose gradient "
                "is zero, so you returned the least-squares predictions).",
            ),
            Mutant(
                "factor 2 in the gradient",
                lambda x, y, x_query, lr: _gd(x, y, x_query, lr, scale=lambda lr, n, x: 2 * lr / n),
                "the 1/2 in L = 1/(2N) sum (...)**2 cancels the 2 of the derivative: the "
                "gradient is (1/N) x.T @ (x w - y), without a factor 2.",
            ),
            Mutant(
                "divided by d instead of N",
                lambda x, y, x_query, lr: _gd(
                    x, y, x_query, lr, scale=lambda lr, n, x: lr / x.shape[1]
                ),
                "divide by the number of examples N = x.shape[0], not by the dimension "
                "d = x.shape[1].",
            ),
            Mutant(
                "returned w instead of predictions",
                lambda x, y, x_query, lr: (
                    (lr / len(x)) * np.asarray(x, float).T @ np.asarray(y, float)
                ),
                "return the predictions at the queries, x_query @ w_1 (shape (M,)), not the "
                "weights w_1 themselves.",
            ),
        ],
    )
)
