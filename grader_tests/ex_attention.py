"""Zone 0 exercises: softmax and scaled dot-product attention."""

from __future__ import annotations

import attnlab
import numpy as np

from .core import Case, Exercise, Mutant, register

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

# ---------------------------------------------------------------- scaled dot-product attention

QUICKSTART_X = np.array([[1.0, 0.5, 0.2, 0.1], [0.3, 1.0, 0.4, 0.2], [0.2, 0.3, 1.0, 0.5]])


def _sdpa_visible_causal_rect():
    rng = np.random.default_rng(11)  # its own generator: the hidden inputs stay as they were
    return rng.normal(size=(3, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 2))


def _sdpa_cases():
    rng = np.random.default_rng(1)
    x = QUICKSTART_X
    q2, k3, v3 = rng.normal(size=(2, 4)), rng.normal(size=(3, 4)), rng.normal(size=(3, 5))
    q4, k4, v4 = rng.normal(size=(3, 4, 8)), rng.normal(size=(3, 4, 8)), rng.normal(size=(3, 4, 8))
    hide_last = np.array([True, True, True, False])
    qb, kb, vb = (rng.normal(size=(2, 3, 5, 8)) for _ in range(3))
    qc, kc, vc = rng.normal(size=(2, 16)), rng.normal(size=(5, 16)), rng.normal(size=(5, 3))
    pad = np.array([[True, True, True, False, False]])
    return [
        Case("the quickstart: q = k = v = x, 3 tokens of width 4", (x, x, x)),
        Case(
            "q (2, 4), k (3, 4), v (3, 5): fewer queries than keys, d_v != d_k",
            (q2, k3, v3),
        ),
        Case("causal=True on a batch (3, 4, 8)", (q4, k4, v4), {"causal": True}),
        Case(
            "mask = [True, True, True, False] hides the last key", (q4, k4, v4), {"mask": hide_last}
        ),
        Case(
            "causal=True with 3 queries and 6 keys: query i sees keys j <= i + 3 (bottom-right aligned)",
            _sdpa_visible_causal_rect(),
            {"causal": True},
        ),
        Case("a (2, 3, 5, 8) batch of heads", (qb, kb, vb), hidden=True),
        Case(
            "causal=True with 2 queries and 5 keys (bottom-right aligned, as with a KV cache)",
            (qc, kc, vc),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "padding mask of shape (1, 5) with causal=False",
            (qc, kc, vc),
            {"mask": pad},
            hidden=True,
        ),
        Case("large scores (q and k times 30)", (30 * q4, 30 * k4, v4), hidden=True),
        Case(
            "float32 inputs",
            tuple(a.astype(np.float32) for a in (qb, kb, vb)),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _attend(q, k, v, scores, allowed):
    """Shared tail of the mutants: mask, softmax over keys, weight the values."""
    scores = np.where(allowed, scores, -np.inf)
    w = attnlab.softmax(scores, axis=-1)
    return w @ v, w


def _allowed(q, k, mask, causal, causal_fn=None):
    n_q, n_k = q.shape[-2], k.shape[-2]
    allowed = np.ones((n_q, n_k), dtype=bool)
    if mask is not None:
        allowed = allowed & np.asarray(mask)
    if causal:
        allowed = allowed & (causal_fn or attnlab.causal_mask)(n_q, n_k)
    return allowed


def _sdpa_no_scale(q, k, v, mask=None, causal=False):
    return _attend(q, k, v, q @ np.swapaxes(k, -1, -2), _allowed(q, k, mask, causal))


def _sdpa_scale_dk(q, k, v, mask=None, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / q.shape[-1]
    return _attend(q, k, v, s, _allowed(q, k, mask, causal))


def _sdpa_scale_dv(q, k, v, mask=None, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(v.shape[-1])
    return _attend(q, k, v, s, _allowed(q, k, mask, causal))


def _sdpa_softmax_queries(q, k, v, mask=None, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    s = np.where(_allowed(q, k, mask, causal), s, -np.inf)
    w = attnlab.softmax(s, axis=-2)
    return w @ v, w


def _top_left(n_q, n_k):
    return np.tril(np.ones((n_q, n_k), dtype=bool))


def _strict(n_q, n_k):
    return np.tril(np.ones((n_q, n_k), dtype=bool), k=n_k - n_q - 1)


def _upper(n_q, n_k):
    return np.triu(np.ones((n_q, n_k), dtype=bool), k=n_k - n_q)


def _sdpa_causal(causal_fn):
    def wrong(q, k, v, mask=None, causal=False):
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
        return _attend(q, k, v, s, _allowed(q, k, mask, causal, causal_fn))

    return wrong


def _sdpa_causal_ignored(q, k, v, mask=None, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    return _attend(q, k, v, s, _allowed(q, k, mask, False))


def _sdpa_k_dot_T(q, k, v, mask=None, causal=False):
    s = q @ k.T / np.sqrt(q.shape[-1])  # k.T reverses every axis: right only for 2-D k
    return _attend(q, k, v, s, _allowed(q, k, mask, causal))


def _sdpa_inverted_mask(q, k, v, mask=None, causal=False):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    inverted = None if mask is None else ~np.asarray(mask)
    return _attend(q, k, v, s, _allowed(q, k, inverted, causal))


def _sdpa_swapped_outputs(q, k, v, mask=None, causal=False):
    out, w = attnlab.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    return w, out


def _sdpa_k_not_transposed(q, k, v, mask=None, causal=False):
    s = k @ np.swapaxes(q, -1, -2) / np.sqrt(q.shape[-1])  # (Nk, Nq): keys on the rows
    return _attend(q, k, v, s, _allowed(q, k, mask, causal))


register(
    Exercise(
        name="scaled_dot_product_attention",
        reference=attnlab.scaled_dot_product_attention,
        points=3,
        cases=_sdpa_cases,
        description="softmax(q k^T / sqrt(d_k)) v with an optional boolean mask and causal masking",
        mutants=[
            Mutant(
                "missing 1/sqrt(d_k)",
                _sdpa_no_scale,
                "the scores are not scaled: divide q @ k^T by sqrt(d_k), where d_k = q.shape[-1].",
            ),
            Mutant(
                "scaled by d_k",
                _sdpa_scale_dk,
                "the scores are divided by d_k; the scale is 1/sqrt(d_k) (np.sqrt(q.shape[-1])).",
            ),
            Mutant(
                "scaled by sqrt(d_v)",
                _sdpa_scale_dv,
                "the scale uses the width of v; it must use d_k, the width of q and k.",
            ),
            Mutant(
                "softmax over the queries",
                _sdpa_softmax_queries,
                "softmax over the wrong axis: each query's weights over the keys (the last "
                "axis) must sum to 1.",
            ),
            Mutant(
                "causal ignored",
                _sdpa_causal_ignored,
                "causal=True was ignored: every query sees every key. With causal=True, also set "
                "the scores where attnlab.causal_mask(n_q, n_k) is False to -inf.",
            ),
            Mutant(
                "k.T on batched input",
                _sdpa_k_dot_T,
                "k.T reverses ALL the axes of a batched k (..., N_k, d_k), not just the last two: "
                "use np.swapaxes(k, -1, -2) so that q @ k^T works with leading batch axes.",
            ),
            Mutant(
                "causal mask top-left aligned",
                _sdpa_causal(_top_left),
                "causal mask aligned top-left: with Nq != Nk, query i may see keys "
                "j <= i + (Nk - Nq) (bottom-right alignment; use attnlab.causal_mask or "
                "np.tril(..., k=Nk - Nq)).",
            ),
            Mutant(
                "causal mask off by one",
                _sdpa_causal(_strict),
                "causal mask off by one: a query must also see its own position (j <= i, "
                "not j < i).",
            ),
            Mutant(
                "causal mask transposed",
                _sdpa_causal(_upper),
                "causal mask transposed: queries see future keys. Keep the lower triangle "
                "(np.tril), not the upper one.",
            ),
            Mutant(
                "mask inverted",
                _sdpa_inverted_mask,
                "mask inverted: True means the query MAY attend that key; set the scores "
                "where the mask is False to -inf.",
            ),
            Mutant(
                "outputs swapped",
                _sdpa_swapped_outputs,
                "the two results are swapped: return (out, weights), in that order.",
            ),
            Mutant(
                "scores transposed",
                _sdpa_k_not_transposed,
                "the score matrix is transposed: scores[i, j] = q_i . k_j, i.e. q @ k^T with "
                "queries on the rows.",
            ),
        ],
    )
)
