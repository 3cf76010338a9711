"""Positions (zone 3a): sinusoidal encodings, RoPE and ALiBi."""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

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
        zone="03_derivations",
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
        zone="03_derivations",
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
        zone="03_derivations",
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
