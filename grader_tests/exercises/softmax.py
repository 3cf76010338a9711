"""The softmax (zone 0) and its Jacobian (zone 3a).

Each mutant is a typical wrong answer; its hint names the mistake and the fix.
"""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

# ---------------------------------------------------------------- softmax


def _softmax_cases():
    rng = np.random.default_rng(0)
    return [
        Case("x = [1.0, 2.0, 3.0]", (np.array([1.0, 2.0, 3.0]),)),
        Case("a (2, 3) batch of score rows", (np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]]),)),
        Case("huge scores x = [1000.0, 1001.0, 1002.0]", (np.array([1000.0, 1001.0, 1002.0]),)),
        Case("a masked score: x = [1.0, 2.0, -inf, 3.0]", (np.array([1.0, 2.0, -np.inf, 3.0]),)),
        Case(
            "axis=0 on a (3, 2) matrix: each column sums to 1",
            (np.array([[1.0, -1.0], [2.0, 0.0], [0.5, 3.0]]),),
            {"axis": 0},
        ),
        Case(
            "a (2, 4) batch whose second row is entirely -inf (that query may see nothing: all zeros)",
            (np.array([[0.5, -np.inf, 1.5, 0.0], [-np.inf, -np.inf, -np.inf, -np.inf]]),),
        ),
        Case("axis=0 on a (4, 5) matrix", (rng.normal(size=(4, 5)),), {"axis": 0}, hidden=True),
        Case(
            "a row that is entirely -inf (a query that may see nothing)",
            (np.array([[0.0, 1.0, 2.0], [-np.inf, -np.inf, -np.inf]]),),
            hidden=True,
        ),
        Case(
            "very negative scores x = [-1000.0, -1001.0]",
            (np.array([-1000.0, -1001.0]),),
            hidden=True,
        ),
        Case("a (2, 3, 7) batch with scale 10", (10 * rng.normal(size=(2, 3, 7)),), hidden=True),
        Case(
            "float32 scores of shape (3, 6)",
            (rng.normal(size=(3, 6)).astype(np.float32),),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _softmax_no_max(x, axis=-1):
    e = np.exp(np.asarray(x, dtype=float))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_wrong_axis(x, axis=-1):
    x = np.asarray(x, dtype=float)
    other = 0 if (axis % x.ndim) != 0 else -1
    e = np.exp(x - x.max(axis=other, keepdims=True))
    return e / e.sum(axis=other, keepdims=True)


def _softmax_global_sum(x, axis=-1):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max())
    return e / e.sum()


def _softmax_ignores_axis(x, axis=-1):
    return attnlab.softmax(x, axis=-1)


def _softmax_nan_rows(x, axis=-1):
    x = np.asarray(x, dtype=float)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_no_exp(x, axis=-1):
    x = np.asarray(x, dtype=float)
    return x / x.sum(axis=axis, keepdims=True)


register(
    Exercise(
        name="softmax",
        zone="00_quickstart",
        reference=attnlab.softmax,
        points=2,
        cases=_softmax_cases,
        description="softmax(x, axis=-1): exp(x - max) / sum exp(x - max) along axis",
        mutants=[
            Mutant(
                "no max subtraction",
                _softmax_no_max,
                "overflow or underflow: exp(1000) is inf and exp(-1000) is 0. Subtract the "
                "maximum along `axis` before exp; softmax(x) = softmax(x - max(x)).",
            ),
            Mutant(
                "softmax over the wrong axis",
                _softmax_wrong_axis,
                "normalised along the wrong axis: the values along `axis` (by default each "
                "row, the last axis) must sum to 1. Use keepdims=True with axis=axis.",
            ),
            Mutant(
                "divided by the sum of the whole array",
                _softmax_global_sum,
                "divided by the sum of the whole array: normalise each row separately with "
                "np.sum(..., axis=axis, keepdims=True).",
            ),
            Mutant(
                "ignores the axis argument",
                _softmax_ignores_axis,
                "your function ignores its `axis` argument (it always uses the last axis).",
            ),
            Mutant(
                "NaN for a fully masked row",
                _softmax_nan_rows,
                "a row that is entirely -inf gives NaN (-inf - (-inf)). When the row maximum "
                "is -inf, subtract 0 instead, and divide only where the sum is > 0, so the row "
                "becomes all zeros.",
            ),
            Mutant(
                "forgot the exponential",
                _softmax_no_exp,
                "no exponential: softmax divides exp(x_i) by sum_j exp(x_j), not x_i by sum x_j.",
            ),
        ],
    )
)


# ============================================================================ softmax_jacobian


def _jacobian_cases():
    rng = np.random.default_rng(30)
    return [
        Case("s = [1.0, 2.0, 3.0]", (np.array([1.0, 2.0, 3.0]),)),
        Case("two equal scores s = [0.0, 0.0]", (np.array([0.0, 0.0]),)),
        Case("a (2, 4) batch of score rows", (rng.normal(size=(2, 4)),)),
        Case("a saturated row s = [0.0, 12.0, 1.0]", (np.array([0.0, 12.0, 1.0]),)),
        Case("huge scores s = [800.0, 802.0, 801.0]", (np.array([800.0, 802.0, 801.0]),)),
        Case(
            "a masked score s = [0.0, 2.0, -inf] (its weight is 0)",
            (np.array([0.0, 2.0, -np.inf]),),
        ),
        Case("a (2, 3, 5) batch", (rng.normal(size=(2, 3, 5)),), hidden=True),
        Case(
            "huge scores s = [1000.0, 1001.0, 1002.0]",
            (np.array([1000.0, 1001.0, 1002.0]),),
            hidden=True,
        ),
        Case("a masked score s = [1.0, -inf, 2.0]", (np.array([1.0, -np.inf, 2.0]),), hidden=True),
        Case("a single score s = [3.0]", (np.array([3.0]),), hidden=True),
        Case(
            "float32 scores of shape (3, 6)",
            (rng.normal(size=(3, 6)).astype(np.float32),),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _probs(s):
    return attnlab.softmax(np.asarray(s, dtype=float), axis=-1)


def _jac_no_diag(s):
    a = _probs(s)
    return -a[..., :, None] * a[..., None, :]


def _jac_only_diag(s):
    a = _probs(s)
    return (a * (1 - a))[..., :, None] * np.eye(a.shape[-1])


def _jac_everywhere(s):
    a = _probs(s)
    return a[..., :, None] * (1 - a[..., None, :])


def _jac_sign(s):
    a = _probs(s)
    return a[..., :, None] * a[..., None, :] - a[..., :, None] * np.eye(a.shape[-1])


def _jac_no_max(s):
    s = np.asarray(s, dtype=float)
    with np.errstate(all="ignore"):  # the point of this mistake: exp(1000) overflows
        e = np.exp(s)
        a = e / e.sum(axis=-1, keepdims=True)
    return a[..., :, None] * np.eye(a.shape[-1]) - a[..., :, None] * a[..., None, :]


def _jac_scores(s):
    s = np.asarray(s, dtype=float)
    return s[..., :, None] * np.eye(s.shape[-1]) - s[..., :, None] * s[..., None, :]


def _jac_wrong_axis(s):
    s = np.asarray(s, dtype=float)
    a = attnlab.softmax(s, axis=0)
    return a[..., :, None] * np.eye(a.shape[-1]) - a[..., :, None] * a[..., None, :]


register(
    Exercise(
        name="softmax_jacobian",
        zone="03_derivations",
        reference=attnlab.softmax_jacobian,
        points=2,
        cases=_jacobian_cases,
        description="J[..., i, j] = a_i (delta_ij - a_j) = diag(a) - a a^T, a = softmax(s)",
        mutants=[
            Mutant(
                "missing the diagonal term",
                _jac_no_diag,
                "the diag(a) term is missing: J = diag(a) - a a^T, so the diagonal is "
                "a_i - a_i^2 = a_i (1 - a_i).",
            ),
            Mutant(
                "only the diagonal",
                _jac_only_diag,
                "only the diagonal a_i (1 - a_i) is filled: off the diagonal "
                "da_i/ds_j = -a_i a_j (changing one score moves every weight).",
            ),
            Mutant(
                "a_i (1 - a_j) everywhere",
                _jac_everywhere,
                "a_i (1 - a_j) is right only on the diagonal; in general "
                "da_i/ds_j = a_i (delta_ij - a_j): use np.eye(n) for delta_ij.",
            ),
            Mutant(
                "sign flipped",
                _jac_sign,
                "the sign is flipped: J = diag(a) - a a^T (raising s_i raises a_i, so the "
                "diagonal is positive).",
            ),
            Mutant(
                "no max subtraction",
                _jac_no_max,
                "exp(1000) overflows: compute a = softmax(s) stably (subtract the maximum, "
                "or use attnlab.softmax) before building the Jacobian.",
            ),
            Mutant(
                "built from the scores instead of the weights",
                _jac_scores,
                "the Jacobian is built from the scores s; it uses the softmax weights "
                "a = softmax(s): J = diag(a) - a a^T.",
            ),
            Mutant(
                "softmax over the wrong axis",
                _jac_wrong_axis,
                "softmax over the wrong axis: for a batch (..., n) the weights are "
                "normalised over the last axis.",
            ),
        ],
    )
)
