"""Attention itself: scaled dot-product attention (zone 0), attention with learned q, k, v
projections (zone 1), and the causal mask (zone 3a).
"""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

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
        zone="00_quickstart",
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
        zone="01_experience",
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


# ============================================================================ causal_mask


def _causal_cases():
    return [
        Case("n_q = 4 (a square mask)", (4,)),
        Case("n_q = 3, n_k = 3", (3, 3)),
        Case("n_q = 2, n_k = 5 (two new queries, five keys)", (2, 5)),
        Case("n_q = 1", (1,), hidden=True),
        Case("n_q = 1, n_k = 6 (one new token with a KV cache)", (1, 6), hidden=True),
        Case("n_q = 7", (7,), hidden=True),
        Case("n_q = 4, n_k = 9", (4, 9), hidden=True),
    ]


def _cm_variant(kind):
    """causal_mask with the mistake `kind` ("correct": none)."""

    def mask(n_q, n_k=None):
        n_k = n_q if n_k is None else n_k
        i = np.arange(n_q)[:, None]
        j = np.arange(n_k)[None, :]
        offset = n_k - n_q
        if kind == "correct":  # bottom-right aligned, as attnlab.causal_mask
            return j <= i + offset
        if kind == "strict":
            return j < i + offset
        if kind == "transposed":
            return j >= i + offset
        if kind == "top_left":
            return j <= i
        if kind == "square":
            return np.arange(n_q)[None, :] <= np.arange(n_q)[:, None]
        if kind == "float":
            return (j <= i + offset).astype(float)
        if kind == "additive":
            return np.where(j <= i + offset, 0.0, -np.inf)
        raise AssertionError(kind)

    return mask


register(
    Exercise(
        name="causal_mask",
        zone="03_derivations",
        reference=attnlab.causal_mask,
        points=2,
        cases=_causal_cases,
        description="boolean (n_q, n_k), True where j <= i + (n_k - n_q)",
        mutants=[
            Mutant(
                "off by one",
                _cm_variant("strict"),
                "off by one: a query also sees its own position, j <= i + (n_k - n_q) (not <).",
            ),
            Mutant(
                "transposed",
                _cm_variant("transposed"),
                "transposed: queries see the future. Keep the lower triangle (keys j up to "
                "the query's own position).",
            ),
            Mutant(
                "top-left aligned",
                _cm_variant("top_left"),
                "with n_q != n_k the mask is aligned bottom-right: query i may see keys "
                "j <= i + (n_k - n_q), so the last query sees every key.",
            ),
            Mutant(
                "ignores n_k",
                _cm_variant("square"),
                "n_k is ignored: the mask has shape (n_q, n_k).",
            ),
            Mutant(
                "numbers instead of booleans",
                _cm_variant("float"),
                "return booleans (True = may attend), not 0.0 / 1.0: e.g. compare "
                "j <= i + (n_k - n_q) with broadcasting, or np.tril(np.ones(..., dtype=bool), "
                "k=n_k - n_q).",
            ),
            Mutant(
                "additive mask",
                _cm_variant("additive"),
                "that is the additive form (0 / -inf); this function returns the boolean "
                "form, True where the query may attend.",
            ),
        ],
    )
)
