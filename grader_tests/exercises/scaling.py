"""Scaling laws (zone 5): a power-law fit and the Chinchilla-optimal model size."""

from __future__ import annotations

import math

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

# ---------------------------------------------------------------- fit_power_law


def _power_law_cases():
    rng = np.random.default_rng(5)
    n_exact = np.array([1e6, 1e7, 1e8, 1e9])
    n_tiny = np.array([2e3, 5e3, 1.2e4, 3e4, 8e4])
    noisy = 9.0 * n_tiny**-0.12 * np.exp(0.02 * rng.standard_normal(5))
    n_kaplan = np.logspace(5, 9, 6)
    shuffled = np.array([3e4, 1e3, 3e5, 1e4, 1e5])
    return [
        Case(
            "an exact power law: loss = 406.4 * n**-0.34 at n = 1e6, 1e7, 1e8, 1e9",
            (n_exact, 406.4 * n_exact**-0.34),
        ),
        Case(
            "five measured losses of tiny models (n = 2e3 .. 8e4, about 9 * n**-0.12 with noise)",
            (n_tiny, noisy),
        ),
        Case(
            "Python lists: n = [10, 100, 1000], loss = [5.0, 3.1, 2.0]",
            ([10, 100, 1000], [5.0, 3.1, 2.0]),
        ),
        Case(
            "only two points, n = [10, 1000], loss = [4.0, 2.0]",
            (np.array([10.0, 1000.0]), np.array([4.0, 2.0])),
            hidden=True,
        ),
        Case(
            "Kaplan's law loss = (8.8e13 / n)**0.076 at six sizes from 1e5 to 1e9",
            (n_kaplan, (8.8e13 / n_kaplan) ** 0.076),
            hidden=True,
        ),
        Case(
            "n not sorted, with noise: n = [3e4, 1e3, 3e5, 1e4, 1e5]",
            (shuffled, 5.0 * shuffled**-0.2 * np.exp(0.05 * rng.standard_normal(5))),
            hidden=True,
        ),
        Case(
            "Python lists: n = [1, 2, 4, 8], loss = [3.0, 2.4, 2.0, 1.7]",
            ([1, 2, 4, 8], [3.0, 2.4, 2.0, 1.7]),
            hidden=True,
        ),
        Case(
            "float32 arrays: n = 1e3 .. 1e6, loss = 7 * n**-0.1 with noise",
            (
                np.logspace(3, 6, 7).astype(np.float32),
                (7.0 * np.logspace(3, 6, 7) ** -0.1 * np.exp(0.03 * rng.standard_normal(7))).astype(
                    np.float32
                ),
            ),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _logs(n, loss, log=np.log):
    return log(np.asarray(n, dtype=float)), log(np.asarray(loss, dtype=float))


def _fit_linear_space(n, loss):
    slope, intercept = np.polyfit(np.asarray(n, dtype=float), np.asarray(loss, dtype=float), 1)
    return float(intercept), float(-slope)


def _fit_alpha_sign(n, loss):
    slope, intercept = np.polyfit(*_logs(n, loss), 1)
    return float(np.exp(intercept)), float(slope)


def _fit_log10_then_exp(n, loss):
    slope, intercept = np.polyfit(*_logs(n, loss, np.log10), 1)
    return float(np.exp(intercept)), float(-slope)


def _fit_ln_then_pow10(n, loss):
    slope, intercept = np.polyfit(*_logs(n, loss), 1)
    return float(10.0**intercept), float(-slope)


def _fit_order_swapped(n, loss):
    intercept, slope = np.polyfit(*_logs(n, loss), 1)  # wrong: polyfit returns [slope, intercept]
    return float(np.exp(intercept)), float(-slope)


def _fit_returns_log_a(n, loss):
    slope, intercept = np.polyfit(*_logs(n, loss), 1)
    return float(intercept), float(-slope)


def _fit_endpoints(n, loss):
    log_n, log_loss = _logs(n, loss)
    alpha = -(log_loss[-1] - log_loss[0]) / (log_n[-1] - log_n[0])
    return float(np.exp(log_loss[0] + alpha * log_n[0])), float(alpha)


def _fit_x_on_y(n, loss):
    log_n, log_loss = _logs(n, loss)
    slope, intercept = np.polyfit(log_loss, log_n, 1)  # log n = slope * log loss + intercept
    return float(np.exp(-intercept / slope)), float(-1.0 / slope)


register(
    Exercise(
        name="fit_power_law",
        zone="05_experiments",
        reference=attnlab.fit_power_law,
        points=2,
        cases=_power_law_cases,
        rtol=1e-6,
        atol=1e-9,
        description="fit_power_law(n, loss) -> (a, alpha), loss ~ a * n**(-alpha), least squares in log-log",
        mutants=[
            Mutant(
                "fitted in linear space",
                _fit_linear_space,
                "you fitted a straight line to loss against n. A power law is a straight line on "
                "log-log axes: fit np.log(loss) against np.log(n), then a = exp(intercept), "
                "alpha = -slope.",
            ),
            Mutant(
                "sign of alpha flipped",
                _fit_alpha_sign,
                "alpha has the wrong sign: loss = a * n**(-alpha) means the log-log slope is "
                "-alpha, so alpha = -slope (positive when the loss falls).",
            ),
            Mutant(
                "log10 fit, natural exp",
                _fit_log10_then_exp,
                "you mixed bases: with np.log10 the intercept is log10(a), so a = 10**intercept. "
                "Simplest: use np.log for the fit and np.exp for a.",
            ),
            Mutant(
                "natural-log fit, power of 10",
                _fit_ln_then_pow10,
                "you mixed bases: with np.log the intercept is ln(a), so a = np.exp(intercept), "
                "not 10**intercept.",
            ),
            Mutant(
                "polyfit coefficients swapped",
                _fit_order_swapped,
                "np.polyfit(x, y, 1) returns [slope, intercept] (highest power first), not "
                "[intercept, slope].",
            ),
            Mutant(
                "returned log(a)",
                _fit_returns_log_a,
                "you returned the intercept itself; it is log(a), so return a = np.exp(intercept).",
            ),
            Mutant(
                "used only the two end points",
                _fit_endpoints,
                "you drew the line through the first and last points only; fit all points by "
                "least squares (np.polyfit(np.log(n), np.log(loss), 1)), so noise averages out.",
            ),
            Mutant(
                "regressed log n on log loss",
                _fit_x_on_y,
                "you regressed log(n) on log(loss); with noisy losses that is a different line. "
                "Put log(n) on the x axis and log(loss) on the y axis: np.polyfit(np.log(n), "
                "np.log(loss), 1).",
            ),
        ],
    )
)

# ---------------------------------------------------------------- chinchilla_optimal


def _chinchilla_cases():
    return [
        Case("Gopher's and Chinchilla's budget, C = 5.76e23 FLOPs", (5.76e23,)),
        Case("C = 1e21 FLOPs", (1e21,)),
        Case("C = 1e20 FLOPs with tokens_per_param=10.0", (1e20,), {"tokens_per_param": 10.0}),
        Case("a tiny budget C = 1.2e4 FLOPs (N = 10, D = 200)", (1.2e4,), hidden=True),
        Case(
            "an integer budget C = 6 * 10**18 and tokens_per_param=1.0",
            (6 * 10**18,),
            {"tokens_per_param": 1.0},
            hidden=True,
        ),
        Case(
            "a NumPy scalar np.float64(3e22) and tokens_per_param=50.0 passed by position",
            (np.float64(3e22), 50.0),
            hidden=True,
        ),
        Case("C = 1e26 FLOPs (a frontier-scale budget)", (1e26,), hidden=True),
    ]


def _chinchilla(flops, r, *, flops_per=6.0, tokens_of=lambda n, r: r * n, solve=None):
    n = solve(flops, r) if solve else math.sqrt(flops / (flops_per * r))
    return n, tokens_of(n, r)


register(
    Exercise(
        name="chinchilla_optimal",
        zone="05_experiments",
        reference=attnlab.chinchilla_optimal,
        points=2,
        cases=_chinchilla_cases,
        rtol=1e-9,
        atol=0.0,
        description="chinchilla_optimal(flops, tokens_per_param=20) -> (N, D) with C = 6 N D, D = r N",
        mutants=[
            Mutant(
                "C = 2ND",
                lambda flops, tokens_per_param=20.0: _chinchilla(
                    flops, tokens_per_param, flops_per=2.0
                ),
                "training costs 6 FLOPs per parameter per token (2 forward + 4 backward), so "
                "C = 6 N D, not 2 N D (2 N D is the forward pass alone).",
            ),
            Mutant(
                "forgot the 6",
                lambda flops, tokens_per_param=20.0: _chinchilla(
                    flops, tokens_per_param, flops_per=1.0
                ),
                "you dropped the factor 6: C = 6 N D, so N = sqrt(C / (6 * tokens_per_param)).",
            ),
            Mutant(
                "D = N / 20",
                lambda flops, tokens_per_param=20.0: _chinchilla(
                    flops,
                    tokens_per_param,
                    tokens_of=lambda n, r: n / r,
                    solve=lambda c, r: math.sqrt(c * r / 6.0),
                ),
                "the ratio is the other way round: about 20 TOKENS per parameter, D = "
                "tokens_per_param * N (Chinchilla: 70e9 parameters, 1.4e12 tokens).",
            ),
            Mutant(
                "sqrt misplaced",
                lambda flops, tokens_per_param=20.0: _chinchilla(
                    flops, tokens_per_param, solve=lambda c, r: math.sqrt(c / 6.0) / r
                ),
                "solve C = 6 N (r N) = 6 r N**2 for N: the square root covers tokens_per_param "
                "too, N = sqrt(C / (6 * r)), not sqrt(C / 6) / r.",
            ),
            Mutant(
                "no square root",
                lambda flops, tokens_per_param=20.0: _chinchilla(
                    flops, tokens_per_param, solve=lambda c, r: c / (6.0 * r)
                ),
                "N appears twice in C = 6 N D = 6 r N**2, so N = sqrt(C / (6 r)): take the "
                "square root.",
            ),
            Mutant(
                "returned (D, N)",
                lambda flops, tokens_per_param=20.0: _chinchilla(flops, tokens_per_param)[::-1],
                "the order is (n_params, n_tokens): parameters first, then the (larger) number "
                "of training tokens.",
            ),
            Mutant(
                "ignored tokens_per_param",
                lambda flops, tokens_per_param=20.0: _chinchilla(flops, 20.0),
                "your function ignores its tokens_per_param argument (it always uses 20).",
            ),
        ],
    )
)
