"""Multi-head attention (zone 3a): split into heads, attend per head, merge, project."""

from __future__ import annotations

import math

import attnlab
import numpy as np
from attnlab.functional import _merge_heads, _split_heads

from ..registry import Case, Exercise, Mutant, register

# ============================================================================ multi_head_attention


def _mha_weights(rng, d, scale=1.0):
    return tuple(scale * rng.normal(size=(d, d)) / math.sqrt(d) for _ in range(4))


def _mha_cases():
    rng = np.random.default_rng(31)
    x1 = rng.normal(size=(5, 8))
    w1 = _mha_weights(rng, 8)
    x2 = rng.normal(size=(2, 6, 12))
    w2 = _mha_weights(rng, 12)
    x3 = rng.normal(size=(2, 2, 4, 8))
    w3 = _mha_weights(rng, 8, scale=3.0)
    x4 = rng.normal(size=(7, 6))
    w4 = _mha_weights(rng, 6)
    return [
        Case("x (5, 8), 2 heads of width 4", (x1, *w1, 2)),
        Case("x (5, 8), 2 heads, causal=True", (x1, *w1, 2), {"causal": True}),
        Case("a batch x (2, 6, 12), 3 heads", (x2, *w2, 3)),
        Case("one head (n_heads = 1)", (x1, *w1, 1), hidden=True),
        Case(
            "x (5, 8), 4 heads of width 2, causal=True", (x1, *w1, 4), {"causal": True}, hidden=True
        ),
        Case("x (7, 6), 6 heads of width 1", (x4, *w4, 6), hidden=True),
        Case(
            "a (2, 2, 4, 8) batch, 4 heads, large weights, causal=True",
            (x3, *w3, 4),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "float32 inputs, 3 heads",
            tuple(np.asarray(a, np.float32) for a in (x2, *w2)) + (3,),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _split_no_transpose(t, h):
    *lead, n, d = t.shape
    return t.reshape(*lead, h, n, d // h)


def _split_interleaved(t, h):
    *lead, n, d = t.shape
    return np.swapaxes(t.reshape(*lead, n, d // h, h), -1, -2).swapaxes(-3, -2)


def _merge_no_transpose(t):
    *lead, h, n, dh = t.shape
    return t.reshape(*lead, n, h * dh)


def _mha_variant(
    split=_split_heads, merge=_merge_heads, scale="head", use_w_o=True, use_causal=True
):
    def mha(x, w_q, w_k, w_v, w_o, n_heads, causal=False):
        x = np.asarray(x, dtype=float)
        q, k, v = (split(x @ w, n_heads) for w in (w_q, w_k, w_v))
        d = {"head": q.shape[-1], "model": x.shape[-1]}[scale]
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
        if causal and use_causal:
            s = np.where(attnlab.causal_mask(s.shape[-2], s.shape[-1]), s, -np.inf)
        a = attnlab.softmax(s, axis=-1)
        out = merge(a @ v)
        return (out @ w_o if use_w_o else out), a

    return mha


def _mha_averaged_weights(x, w_q, w_k, w_v, w_o, n_heads, causal=False):
    out, a = attnlab.multi_head_attention(x, w_q, w_k, w_v, w_o, n_heads, causal=causal)
    return out, a.mean(axis=-3)


register(
    Exercise(
        name="multi_head_attention",
        zone="03_derivations",
        reference=attnlab.multi_head_attention,
        points=3,
        cases=_mha_cases,
        description="project, split into heads, attend per head, merge, project with w_o",
        mutants=[
            Mutant(
                "heads split by reshape without transpose",
                _mha_variant(split=_split_no_transpose),
                "the heads are split with a plain reshape to (..., n_heads, N, d_head), which "
                "mixes tokens: reshape to (..., N, n_heads, d_head) first, then swap the "
                "token and head axes (np.swapaxes(t, -3, -2)).",
            ),
            Mutant(
                "heads take interleaved columns",
                _mha_variant(split=_split_interleaved),
                "head h must use the contiguous columns h*d_head ... (h+1)*d_head - 1 of "
                "x @ w_q, i.e. reshape(..., N, n_heads, d_head), not reshape(..., N, d_head, "
                "n_heads).",
            ),
            Mutant(
                "heads merged without transpose",
                _mha_variant(merge=_merge_no_transpose),
                "the heads are merged with a plain reshape of (..., n_heads, N, d_head): swap "
                "the head and token axes back first, then reshape to (..., N, d_model).",
            ),
            Mutant(
                "missing w_o",
                _mha_variant(use_w_o=False),
                "the output projection is missing: multiply the merged heads by w_o.",
            ),
            Mutant(
                "scaled by sqrt(d_model)",
                _mha_variant(scale="model"),
                "the scores are divided by sqrt(d_model); each head's scores use its own "
                "width: divide by sqrt(d_head) = sqrt(d_model // n_heads).",
            ),
            Mutant(
                "causal ignored",
                _mha_variant(use_causal=False),
                "causal=True is ignored: mask the scores with attnlab.causal_mask (or pass "
                "causal=causal to the per-head attention).",
            ),
            Mutant(
                "weights averaged over heads",
                _mha_averaged_weights,
                "return every head's weights, shape (..., n_heads, N, N), not their average.",
            ),
        ],
    )
)
