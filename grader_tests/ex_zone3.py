"""Zone 3a exercises (derivations): score_variance, softmax_jacobian, multi_head_attention,
sinusoidal_positional_encoding, apply_rope, alibi_bias, layer_norm, causal_mask, gpt2_block.

Each mutant is a typical wrong answer; its hint names the mistake and the fix.
"""

from __future__ import annotations

import math

import attnlab
import numpy as np

from .core import Case, Exercise, Mutant, register

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


def _split(t, h):
    *lead, n, d = t.shape
    return np.swapaxes(t.reshape(*lead, n, h, d // h), -3, -2)


def _merge(t):
    t = np.swapaxes(t, -3, -2)
    *lead, n, h, dh = t.shape
    return t.reshape(*lead, n, h * dh)


def _merge_no_transpose(t):
    *lead, h, n, dh = t.shape
    return t.reshape(*lead, n, h * dh)


def _mha_variant(split=_split, merge=_merge, scale="head", use_w_o=True, use_causal=True):
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

# ============================================================================ sinusoidal PE


def _pe_cases():
    return [
        Case("4 positions, d_model = 6", (4, 6)),
        Case("50 positions, d_model = 16", (50, 16)),
        Case("5 positions, odd d_model = 5 (last column is a sine)", (5, 5)),
        Case("one position, d_model = 2", (1, 2), hidden=True),
        Case("128 positions, d_model = 64", (128, 64), hidden=True),
        Case("10 positions, odd d_model = 7 (last column is a sine)", (10, 7), hidden=True),
    ]


def _pe_variant(swap=False, start=0, exponent="2i", halves=False, sign=-1):
    def pe(n_positions, d_model):
        p = np.arange(start, start + n_positions)[:, None]
        i = np.arange((d_model + 1) // 2)[None, :]
        power = {"2i": 2 * i / d_model, "i": i / d_model}[exponent]
        angles = p * 10000.0 ** (sign * power)
        first, second = (np.cos, np.sin) if swap else (np.sin, np.cos)
        out = np.zeros((n_positions, d_model))
        if halves:
            half = (d_model + 1) // 2
            out[:, :half] = first(angles)
            out[:, half:] = second(angles[:, : d_model - half])
        else:
            out[:, 0::2] = first(angles)
            out[:, 1::2] = second(angles[:, : d_model // 2])
        return out

    return pe


register(
    Exercise(
        name="sinusoidal_positional_encoding",
        reference=attnlab.sinusoidal_positional_encoding,
        points=2,
        cases=_pe_cases,
        description="PE[p, 2i] = sin(p / 10000**(2i/d)), PE[p, 2i+1] = cos(...)",
        mutants=[
            Mutant(
                "sin and cos swapped",
                _pe_variant(swap=True),
                "sin and cos are swapped: even columns 2i hold the sine, odd columns 2i+1 "
                "the cosine.",
            ),
            Mutant(
                "positions start at 1",
                _pe_variant(start=1),
                "positions start at 1: they run p = 0, 1, ..., n_positions - 1 (the first "
                "row is [0, 1, 0, 1, ...]).",
            ),
            Mutant(
                "10000**(i/d) instead of 10000**(2i/d)",
                _pe_variant(exponent="i"),
                "the frequency of pair i is 1 / 10000**(2i / d_model): the exponent uses the "
                "even column index 2i, not the pair index i.",
            ),
            Mutant(
                "sines and cosines in two halves",
                _pe_variant(halves=True),
                "the sines fill the first half and the cosines the second; they interleave: "
                "PE[:, 0::2] = sin, PE[:, 1::2] = cos.",
            ),
            Mutant(
                "positive exponent",
                _pe_variant(sign=+1),
                "the angle is p / 10000**(2i/d) = p * 10000**(-2i/d): the higher the pair, "
                "the slower it turns (your exponent has the wrong sign).",
            ),
        ],
    )
)

# ============================================================================ apply_rope


def _rope_cases():
    rng = np.random.default_rng(32)
    return [
        Case("x (4, 8), default positions 0..3", (rng.normal(size=(4, 8)),)),
        Case("a batch x (2, 3, 6), default positions", (rng.normal(size=(2, 3, 6)),)),
        Case(
            "x (3, 4) at positions [5, 7, 11]",
            (rng.normal(size=(3, 4)),),
            {"positions": np.array([5, 7, 11])},
        ),
        Case("x (5, 8) with base = 100", (rng.normal(size=(5, 8)),), {"base": 100.0}),
        Case(
            "one token x (1, 2) at position 3",
            (rng.normal(size=(1, 2)),),
            {"positions": np.array([3])},
            hidden=True,
        ),
        Case(
            "x (6, 16) at positions 1000 .. 1005",
            (rng.normal(size=(6, 16)),),
            {"positions": np.arange(1000, 1006)},
            hidden=True,
        ),
        Case(
            "heads x (2, 4, 5, 8), base = 500",
            (rng.normal(size=(2, 4, 5, 8)),),
            {"base": 500.0},
            hidden=True,
        ),
        Case(
            "float32 x (4, 8)",
            (rng.normal(size=(4, 8)).astype(np.float32),),
            hidden=True,
            rtol=1e-4,
            atol=1e-5,
        ),
    ]


def _rope_variant(
    pairing="interleaved", sign=1, exponent="2i", use_positions=True, use_base=True, start=0
):
    def rope(x, positions=None, base=10000.0):
        x = np.asarray(x, dtype=float)
        n, d = x.shape[-2], x.shape[-1]
        if positions is None or not use_positions:
            positions = np.arange(n)
        positions = np.asarray(positions, dtype=float) + start
        b = base if use_base else 10000.0
        i = np.arange(d // 2)
        power = {"2i": 2 * i / d, "i": i / d}[exponent]
        angles = sign * positions[..., None] * b ** (-power)
        cos, sin = np.cos(angles), np.sin(angles)
        if pairing == "interleaved":
            a, c = x[..., 0::2], x[..., 1::2]
        else:
            a, c = x[..., : d // 2], x[..., d // 2 :]
        ra, rc = a * cos - c * sin, a * sin + c * cos
        out = np.empty_like(x)
        if pairing == "interleaved":
            out[..., 0::2], out[..., 1::2] = ra, rc
        else:
            out[..., : d // 2], out[..., d // 2 :] = ra, rc
        return out

    return rope


register(
    Exercise(
        name="apply_rope",
        reference=attnlab.apply_rope,
        points=3,
        cases=_rope_cases,
        description="rotate pairs (x[2i], x[2i+1]) by the angle p * base**(-2i/d)",
        mutants=[
            Mutant(
                "pairs taken as halves",
                _rope_variant(pairing="halves"),
                "the pairs are (x[i], x[i + d/2]) (the 'rotate_half' layout); this exercise "
                "rotates interleaved pairs (x[2i], x[2i+1]): use x[..., 0::2] and x[..., 1::2].",
            ),
            Mutant(
                "rotation in the wrong direction",
                _rope_variant(sign=-1),
                "the rotation goes the wrong way: (a, b) -> (a cos t - b sin t, "
                "a sin t + b cos t) with t = p * base**(-2i/d) > 0.",
            ),
            Mutant(
                "base**(-i/d) instead of base**(-2i/d)",
                _rope_variant(exponent="i"),
                "pair i turns at the frequency base**(-2i/d) (the even index 2i in the "
                "exponent), not base**(-i/d).",
            ),
            Mutant(
                "ignores positions",
                _rope_variant(use_positions=False),
                "the `positions` argument is ignored: use it when given, and "
                "np.arange(N) only when it is None.",
            ),
            Mutant(
                "ignores base",
                _rope_variant(use_base=False),
                "the `base` argument is ignored (10000 is only its default).",
            ),
            Mutant(
                "positions shifted by one",
                _rope_variant(start=1),
                "positions start at 0: the first token (p = 0) is not rotated at all.",
            ),
        ],
    )
)

# ============================================================================ alibi_bias


def _alibi_cases():
    return [
        Case("4 heads, 5 queries and 5 keys", (4, 5)),
        Case("8 heads, 3 queries and 3 keys", (8, 3)),
        Case("2 heads, 2 queries and 5 keys (bottom-right aligned)", (2, 2, 5)),
        Case("12 heads (not a power of two), 4 queries", (12, 4), hidden=True),
        Case("1 head, 1 query, 1 key", (1, 1), hidden=True),
        Case("3 heads, 4 queries, 7 keys", (3, 4, 7), hidden=True),
        Case("16 heads, 6 queries", (16, 6), hidden=True),
        Case("2 heads, 1 query and 6 keys (decoding with a KV cache)", (2, 1, 6), hidden=True),
    ]


def _alibi_variant(reverse=False, top_left=False, sign=-1, absolute=True, one_slope=False):
    def alibi(n_heads, n_q, n_k=None):
        n_k = n_q if n_k is None else n_k
        slopes = attnlab.alibi_slopes(n_heads)
        if reverse:
            slopes = slopes[::-1]
        if one_slope:
            slopes = np.full(n_heads, slopes[0])
        i = np.arange(n_q)[:, None] + (0 if top_left else n_k - n_q)
        j = np.arange(n_k)[None, :]
        dist = np.abs(i - j) if absolute else (i - j)
        return sign * slopes[:, None, None] * dist[None].astype(float)

    return alibi


register(
    Exercise(
        name="alibi_bias",
        reference=attnlab.alibi_bias,
        points=2,
        cases=_alibi_cases,
        description="bias[h, i, j] = -slope_h * |i + (n_k - n_q) - j|",
        mutants=[
            Mutant(
                "slopes in reverse order",
                _alibi_variant(reverse=True),
                "the slopes are reversed: head 0 gets the largest slope 2**(-8/n_heads) "
                "(the order of attnlab.alibi_slopes).",
            ),
            Mutant(
                "top-left aligned",
                _alibi_variant(top_left=True),
                "with n_q != n_k the last query sits at position n_k - 1: query i is at "
                "i + (n_k - n_q) (bottom-right alignment, like causal_mask).",
            ),
            Mutant(
                "missing minus sign",
                _alibi_variant(sign=1),
                "the bias must be negative, -slope * distance: far keys are penalised, not "
                "rewarded.",
            ),
            Mutant(
                "signed distance",
                _alibi_variant(absolute=False),
                "use the absolute distance |i - j|: a key after the query is as far away as "
                "one before it.",
            ),
            Mutant(
                "one slope for every head",
                _alibi_variant(one_slope=True),
                "every head uses the same slope; head h has its own slope "
                "attnlab.alibi_slopes(n_heads)[h].",
            ),
        ],
    )
)

# ============================================================================ layer_norm


def _ln_cases():
    rng = np.random.default_rng(33)
    d6 = rng.normal(size=6)
    return [
        Case("x (2, 4), gamma = 1, beta = 0", (rng.normal(size=(2, 4)), np.ones(4), np.zeros(4))),
        Case("x (3, 6) with random gamma and beta", (rng.normal(size=(3, 6)), 1 + 0.5 * d6, d6)),
        Case(
            "x (2, 5), eps = 0.1", (rng.normal(size=(2, 5)), np.ones(5), np.zeros(5)), {"eps": 0.1}
        ),
        Case(
            "a (2, 3, 4) batch: statistics over the last axis only",
            (np.random.default_rng(133).normal(size=(2, 3, 4)), np.ones(4), np.zeros(4)),
        ),
        Case(
            "a (2, 3, 8) batch, mean 5 and std 3",
            (5 + 3 * rng.normal(size=(2, 3, 8)), rng.normal(size=8), rng.normal(size=8)),
            hidden=True,
        ),
        Case(
            "a constant row (variance 0)",
            (np.full((1, 4), 2.0), np.ones(4), np.arange(4.0)),
            hidden=True,
        ),
        Case("one token x (8,)", (rng.normal(size=8), np.ones(8), np.zeros(8)), hidden=True),
        Case(
            "x (4, 3) with eps = 1.0",
            (rng.normal(size=(4, 3)), np.ones(3), np.zeros(3)),
            {"eps": 1.0},
            hidden=True,
        ),
        Case(
            "float32 x (3, 16)",
            (
                rng.normal(size=(3, 16)).astype(np.float32),
                np.ones(16, np.float32),
                np.zeros(16, np.float32),
            ),
            hidden=True,
            rtol=1e-4,
            atol=1e-5,
        ),
    ]


def _ln_variant(ddof=0, eps_outside=False, axis=-1, affine=True, centre=True, beta_inside=False):
    def ln(x, gamma, beta, eps=1e-5):
        x = np.asarray(x, dtype=float)
        ax = axis if x.ndim > 1 else -1
        mean = x.mean(axis=ax, keepdims=True) if centre else 0.0
        n = x.shape[ax]
        var = np.sum((x - mean) ** 2, axis=ax, keepdims=True) / max(n - ddof, 1)
        std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        x_hat = (x - mean) / std
        if not affine:
            return x_hat
        return (x_hat + beta) * gamma if beta_inside else x_hat * gamma + beta

    return ln


register(
    Exercise(
        name="layer_norm",
        reference=attnlab.layer_norm,
        points=2,
        cases=_ln_cases,
        description="(x - mean) / sqrt(var + eps) * gamma + beta over the last axis",
        mutants=[
            Mutant(
                "unbiased variance",
                _ln_variant(ddof=1),
                "the variance is divided by d - 1: LayerNorm uses the biased variance, "
                "np.mean((x - mean)**2, axis=-1) (np.var with the default ddof=0).",
            ),
            Mutant(
                "eps outside the square root",
                _ln_variant(eps_outside=True),
                "eps goes inside the square root: (x - mean) / np.sqrt(var + eps).",
            ),
            Mutant(
                "normalised over the wrong axis",
                _ln_variant(axis=0),
                "normalised over the wrong axis: each token (the last axis, "
                "axis=-1 with keepdims=True) gets its own mean and variance.",
            ),
            Mutant(
                "forgot gamma and beta",
                _ln_variant(affine=False),
                "gamma and beta are not applied: return x_hat * gamma + beta.",
            ),
            Mutant(
                "mean not subtracted",
                _ln_variant(centre=False),
                "the mean is not subtracted (that is RMSNorm): LayerNorm centres x first.",
            ),
            Mutant(
                "beta added before gamma",
                _ln_variant(beta_inside=True),
                "the order is x_hat * gamma + beta: scale first, then shift.",
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
    def mask(n_q, n_k=None):
        n_k = n_q if n_k is None else n_k
        i = np.arange(n_q)[:, None]
        j = np.arange(n_k)[None, :]
        offset = n_k - n_q
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

# ============================================================================ gpt2_block


def _block_cases():
    rng = np.random.default_rng(34)
    p16 = attnlab.random_gpt2_block_params(16, seed=1)
    p24 = attnlab.random_gpt2_block_params(24, d_ff=48, seed=2)
    p16_32 = attnlab.random_gpt2_block_params(16, seed=3, dtype=np.float32)
    return [
        Case("x (5, 16), random weights, 4 heads", (rng.normal(size=(5, 16)), p16, 4)),
        Case("a batch x (2, 6, 16), 2 heads", (rng.normal(size=(2, 6, 16)), p16, 2)),
        Case("one token x (1, 16), 4 heads", (rng.normal(size=(1, 16)), p16, 4), hidden=True),
        Case("x (4, 16), one head", (rng.normal(size=(4, 16)), p16, 1), hidden=True),
        Case("x (7, 24), 3 heads, d_ff = 48", (rng.normal(size=(7, 24)), p24, 3), hidden=True),
        Case(
            "a (2, 2, 5, 24) batch, 6 heads", (rng.normal(size=(2, 2, 5, 24)), p24, 6), hidden=True
        ),
        Case(
            "float32 x and weights (6, 16), 4 heads",
            (rng.normal(size=(6, 16)).astype(np.float32), p16_32, 4),
            hidden=True,
            rtol=1e-3,
            atol=1e-4,
        ),
    ]


def _block_variant(
    post_ln=False,
    act="tanh",
    causal=True,
    attn_residual=True,
    mlp_residual=True,
    qkv_order=(0, 1, 2),
    scale="head",
    split="ok",
):
    ln = attnlab.layer_norm

    def attention(z, p, n_heads):
        qkv = z @ p["attn.c_attn.weight"] + p["attn.c_attn.bias"]
        parts = np.split(qkv, 3, axis=-1)
        q, k, v = (parts[i] for i in qkv_order)
        split_fn = _split if split == "ok" else _split_no_transpose
        q, k, v = (split_fn(t, n_heads) for t in (q, k, v))
        d = {"head": q.shape[-1], "model": z.shape[-1]}[scale]
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
        if causal:
            s = np.where(attnlab.causal_mask(s.shape[-2], s.shape[-1]), s, -np.inf)
        heads = attnlab.softmax(s, axis=-1) @ v
        return _merge(heads) @ p["attn.c_proj.weight"] + p["attn.c_proj.bias"]

    def mlp(z, p):
        pre = z @ p["mlp.c_fc.weight"] + p["mlp.c_fc.bias"]
        hidden = {
            "tanh": lambda t: attnlab.gelu(t, approximate="tanh"),
            "exact": attnlab.gelu,
            "relu": lambda t: np.maximum(t, 0.0),
        }[act](pre)
        return hidden @ p["mlp.c_proj.weight"] + p["mlp.c_proj.bias"]

    def block(x, params, n_heads):
        x = np.asarray(x, dtype=float)
        p = {key: np.asarray(value, dtype=float) for key, value in params.items()}
        ln1 = (p["ln_1.weight"], p["ln_1.bias"])
        ln2 = (p["ln_2.weight"], p["ln_2.bias"])
        if post_ln:
            h = ln(x + attention(x, p, n_heads), *ln1)
            return ln(h + mlp(h, p), *ln2)
        a = attention(ln(x, *ln1), p, n_heads)
        h = x + a if attn_residual else a
        m = mlp(ln(h, *ln2), p)
        return h + m if mlp_residual else m

    return block


register(
    Exercise(
        name="gpt2_block",
        reference=attnlab.gpt2_block,
        points=4,
        cases=_block_cases,
        description="h = x + Attn(LN_1(x)); y = h + MLP(LN_2(h)), causal, tanh-GELU",
        mutants=[
            Mutant(
                "Post-LN",
                _block_variant(post_ln=True),
                "that is Post-LN, LN(x + Attn(x)). GPT-2 normalises the input of each "
                "sub-layer and adds the result to the unnormalised stream: "
                "h = x + Attn(LN_1(x)), y = h + MLP(LN_2(h)).",
            ),
            Mutant(
                "exact GELU instead of tanh",
                _block_variant(act="exact"),
                "GPT-2 uses the tanh approximation of GELU: 0.5 u (1 + tanh(sqrt(2/pi) "
                "(u + 0.044715 u^3))) (attnlab.gelu(u, approximate='tanh')).",
            ),
            Mutant(
                "ReLU instead of GELU",
                _block_variant(act="relu"),
                "the MLP's activation is GELU (tanh form), not ReLU.",
            ),
            Mutant(
                "missing causal mask",
                _block_variant(causal=False),
                "the causal mask is missing: a GPT-2 token may only attend to itself and "
                "earlier tokens (attnlab.causal_mask, or your own causal_mask).",
            ),
            Mutant(
                "missing the attention residual",
                _block_variant(attn_residual=False),
                "the residual around attention is missing: h = x + Attn(LN_1(x)).",
            ),
            Mutant(
                "missing the MLP residual",
                _block_variant(mlp_residual=False),
                "the residual around the MLP is missing: y = h + MLP(LN_2(h)).",
            ),
            Mutant(
                "q, k, v in the wrong order",
                _block_variant(qkv_order=(1, 0, 2)),
                "c_attn's output holds [q | k | v] in that order along the last axis: "
                "q, k, v = np.split(qkv, 3, axis=-1).",
            ),
            Mutant(
                "scores scaled by sqrt(d_model)",
                _block_variant(scale="model"),
                "each head's scores are divided by sqrt(d_head) = sqrt(d_model // n_heads), "
                "not sqrt(d_model).",
            ),
            Mutant(
                "heads split by reshape without transpose",
                _block_variant(split="bad"),
                "the heads are split with a plain reshape to (..., n_heads, N, d_head): "
                "reshape to (..., N, n_heads, d_head), then swap axes -3 and -2.",
            ),
        ],
    )
)
