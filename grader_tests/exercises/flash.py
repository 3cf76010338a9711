"""FlashAttention in NumPy: the online softmax merge (zone 3b) and the tiled forward (zone 4).

`memory_limited(fn)` is how the notebook's test cell hands a learner's flash_attention_numpy
to the grader: it measures (tracemalloc) what the function allocates on a long sequence and
fails if it builds anything near a full (Nq, Nk) score matrix. It pickles with the learner's
function, so the hidden checks can run in the clean grading process (see sandbox.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attnlab
import numpy as np
from attnlab.flash import numpy_tiled as tiled

from ..registry import Case, Exercise, Mutant, register
from .wrapping import _Wrapped

__all__ = ["NotTiledError", "memory_limited"]

# ================================================================ online_softmax_merge


def _partial_state(q, k, v):
    """(m, l, acc) of the keys k, values v for queries q (scores q k^T / sqrt(d))."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    m = s.max(axis=-1)
    p = np.exp(s - m[..., None])
    return m, p.sum(axis=-1), p @ v


def _empty_state(n_q, d_v, batch=()):
    return (
        np.full(batch + (n_q,), -np.inf),
        np.zeros(batch + (n_q,)),
        np.zeros(batch + (n_q, d_v)),
    )


def _with_empty_rows(state, rows):
    """A copy of `state` in which the given query rows have seen no key yet."""
    m, l, acc = (np.array(a, dtype=float) for a in state)
    m[..., rows] = -np.inf
    l[..., rows] = 0.0
    acc[..., rows, :] = 0.0
    return m, l, acc


def _merge_cases():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(3, 8))
    k1, k2 = rng.normal(size=(4, 8)), rng.normal(size=(4, 8))
    v1, v2 = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    qb = rng.normal(size=(2, 3, 8))
    kb1, kb2, vb1, vb2 = (rng.normal(size=(2, 6, 8)) for _ in range(4))
    big_q = 30 * rng.normal(size=(4, 8))
    big1, big2 = 30 * rng.normal(size=(5, 8)), 30 * rng.normal(size=(7, 8))
    vbig1, vbig2 = rng.normal(size=(5, 3)), rng.normal(size=(7, 3))
    q32 = rng.normal(size=(3, 8)).astype(np.float32)
    s1 = tuple(
        a.astype(np.float32)
        for a in _partial_state(q32, k1.astype(np.float32), v1.astype(np.float32))
    )
    s2 = tuple(
        a.astype(np.float32)
        for a in _partial_state(q32, k2.astype(np.float32), v2.astype(np.float32))
    )
    return [
        Case(
            "two blocks of 4 keys each, 3 queries, d_v = 5",
            _partial_state(q, k1, v1) + _partial_state(q, k2, v2),
        ),
        Case(
            "the second block's scores are much larger (its keys times 4)",
            _partial_state(q, k1, v1) + _partial_state(q, 4 * k2, v2),
        ),
        Case(
            "a batch of 2 heads, 3 queries, blocks of 6 keys",
            _partial_state(qb, kb1, vb1) + _partial_state(qb, kb2, vb2),
        ),
        Case(
            "empty states: query 0 has seen no key in either block (its result stays empty, "
            "no NaN), query 1 none in the first block",
            _with_empty_rows(_partial_state(q, k1, v1), [0, 1])
            + _with_empty_rows(_partial_state(q, k2, v2), [0]),
        ),
        Case(
            "the first state is empty (m = -inf, l = 0, acc = 0): no key seen yet",
            _empty_state(3, 5) + _partial_state(q, k2, v2),
            hidden=True,
        ),
        Case(
            "both states are empty (a query that sees no key at all)",
            _empty_state(3, 5) + _empty_state(3, 5),
            hidden=True,
        ),
        Case(
            "huge scores (q and k times 30), blocks of 5 and 7 keys",
            _partial_state(big_q, big1, vbig1) + _partial_state(big_q, big2, vbig2),
            hidden=True,
        ),
        Case(
            "the second state is empty",
            _partial_state(qb, kb1, vb1) + _empty_state(3, 8, (2,)),
            hidden=True,
        ),
        Case("float32 states", s1 + s2, hidden=True, rtol=1e-4, atol=1e-6),
    ]


def _merge_no_rescale(m1, l1, acc1, m2, l2, acc2):
    return np.maximum(m1, m2), l1 + l2, acc1 + acc2


def _merge_scales(m1, m2):
    m = np.maximum(m1, m2)
    shift = np.where(np.isneginf(m), 0.0, m)
    return m, np.exp(m1 - shift), np.exp(m2 - shift)


def _merge_inverted_scale(m1, l1, acc1, m2, l2, acc2):
    m = np.maximum(m1, m2)
    shift = np.where(np.isneginf(m), 0.0, m)
    a1, a2 = np.exp(shift - m1), np.exp(shift - m2)
    return m, a1 * l1 + a2 * l2, a1[..., None] * acc1 + a2[..., None] * acc2


def _merge_min(m1, l1, acc1, m2, l2, acc2):
    m = np.minimum(m1, m2)
    a1, a2 = np.exp(m1 - m), np.exp(m2 - m)
    return m, a1 * l1 + a2 * l2, a1[..., None] * acc1 + a2[..., None] * acc2


def _merge_l_not_rescaled(m1, l1, acc1, m2, l2, acc2):
    m, a1, a2 = _merge_scales(m1, m2)
    return m, l1 + l2, a1[..., None] * acc1 + a2[..., None] * acc2


def _merge_l_first_only(m1, l1, acc1, m2, l2, acc2):
    m, a1, a2 = _merge_scales(m1, m2)
    return m, a1 * l1, a1[..., None] * acc1 + a2[..., None] * acc2


def _merge_normalised(m1, l1, acc1, m2, l2, acc2):
    m, l_, acc = attnlab.online_softmax_merge(m1, l1, acc1, m2, l2, acc2)
    return m, l_, acc / l_[..., None]


def _merge_variant(*, rescale_acc=True, rescale_l=True, guard_empty=True):
    """online_softmax_merge with mistakes switched on by keywords (none: the correct merge)."""

    def merge(m1, l1, acc1, m2, l2, acc2):
        m = np.maximum(m1, m2)
        shift = np.where(np.isneginf(m), 0.0, m) if guard_empty else m
        a1, a2 = np.exp(m1 - shift), np.exp(m2 - shift)
        l = (a1 * l1 if rescale_l else l1) + a2 * l2
        acc = (a1[..., None] * acc1 if rescale_acc else acc1) + a2[..., None] * acc2
        return m, l, acc

    return merge


register(
    Exercise(
        name="online_softmax_merge",
        zone="03_efficiency",
        reference=attnlab.online_softmax_merge,
        points=3,
        cases=_merge_cases,
        rtol=1e-7,
        atol=1e-10,
        description="merge two partial softmax states (m, l, acc) over disjoint key blocks",
        mutants=[
            Mutant(
                "no rescale",
                _merge_no_rescale,
                "the states are added without rescaling: each was computed with its own max, so "
                "multiply l_i and acc_i by exp(m_i - m) with m = max(m1, m2) before adding.",
            ),
            Mutant(
                "inverted rescale factor",
                _merge_inverted_scale,
                "the rescale factor is upside down: state i is multiplied by exp(m_i - m), "
                "which is <= 1, not by exp(m - m_i).",
            ),
            Mutant(
                "rescaled to the minimum",
                _merge_min,
                "rescale to the larger maximum m = np.maximum(m1, m2), not the smaller one (the "
                "new m must be the running maximum, and exp(m_i - m) must stay <= 1).",
            ),
            Mutant(
                "l not rescaled",
                _merge_l_not_rescaled,
                "l is added without rescaling: l = exp(m1 - m) * l1 + exp(m2 - m) * l2, with the "
                "same factors as acc.",
            ),
            Mutant(
                "forgot l2",
                _merge_l_first_only,
                "l must include both states: l = exp(m1 - m) * l1 + exp(m2 - m) * l2.",
            ),
            Mutant(
                "normalised acc",
                _merge_normalised,
                "return acc unnormalised (the sum of exp(s - m) v); the output acc / l is taken "
                "only at the very end.",
            ),
            Mutant(
                "NaN for two empty states",
                _merge_variant(guard_empty=False),
                "two empty states (m1 = m2 = -inf) give NaN from exp(-inf - (-inf)). When the new "
                "max is -inf, subtract 0 instead (np.where(np.isneginf(m), 0.0, m)).",
            ),
        ],
    )
)


# ================================================================ flash_attention_numpy

MEMORY_CHECK_MIN_ENTRIES = 1 << 20  # the memory budget applies to Nq * Nk >= this


class NotTiledError(Exception):
    """flash_attention_numpy allocated about as much as a full (Nq, Nk) score matrix."""


class _MemoryLimited(_Wrapped):
    """flash_attention_numpy under a memory budget of Nq * Nk bytes on long sequences."""

    exercise = "flash_attention_numpy"

    def __call__(self, q, k, v, *args, **kwargs):
        self._refuse_the_library()
        n_q, n_k = np.shape(q)[-2], np.shape(k)[-2]
        batch = math.prod(np.shape(q)[:-2])
        if n_q * n_k < MEMORY_CHECK_MIN_ENTRIES:
            return self.fn(q, k, v, *args, **kwargs)
        budget = batch * n_q * n_k  # bytes: an eighth of one float64 (Nq, Nk) matrix
        out, peak = attnlab.peak_memory(self.fn, q, k, v, *args, **kwargs)
        if peak > budget:
            raise NotTiledError(
                f"on {n_q} queries and {n_k} keys your function allocated more than "
                f"{budget / 2**20:g} MiB at once, an eighth of one float64 ({n_q}, {n_k}) score "
                "matrix: it is not tiled. Keep only (block_size, block_size) score tiles and "
                "the running m, l and acc of each query block; never build q @ k.T in full."
            )
        return out


def memory_limited(fn: Callable) -> _MemoryLimited:
    """fn (a flash_attention_numpy) that fails with NotTiledError if, on a long sequence, it
    allocates more than Nq * Nk bytes at once (tracemalloc sees NumPy's buffers)."""
    return _MemoryLimited(fn)


def _flash_cases():
    rng = np.random.default_rng(42)
    extra = np.random.default_rng(
        142
    )  # the visible cases added later: the hidden inputs stay as they were

    def qkv(lead, n_q, n_k, d, d_v=None, scale=1.0, gen=None):
        gen = gen or rng
        return (
            scale * gen.normal(size=lead + (n_q, d)),
            scale * gen.normal(size=lead + (n_k, d)),
            gen.normal(size=lead + (n_k, d_v or d)),
        )

    big = 2048
    return [
        Case(
            "10 queries and keys, d=4, block_size=4 (the last block is partial)",
            qkv((), 10, 10, 4),
            {"block_size": 4},
        ),
        Case(
            "causal=True, 13 tokens, block_size=4",
            qkv((), 13, 13, 4),
            {"causal": True, "block_size": 4},
        ),
        Case(
            "a batch (2, 3 heads) of 9 tokens, d=8, block_size=3",
            qkv((2, 3), 9, 9, 8),
            {"block_size": 3},
        ),
        Case(
            "causal, 6 queries and 11 keys, block_size=4 (bottom-right aligned: query i sees keys "
            "j <= i + 5)",
            qkv((), 6, 11, 4, gen=extra),
            {"causal": True, "block_size": 4},
        ),
        Case(
            "causal, 10 queries and 4 keys: the first 6 queries see no key (their output is 0)",
            qkv((), 10, 4, 4, gen=extra),
            {"causal": True, "block_size": 3},
        ),
        Case(
            "huge scores (q and k scaled by 40)",
            qkv((), 9, 9, 4, scale=40.0, gen=extra),
            {"block_size": 4},
        ),
        Case(
            f"causal, {big} queries and keys, d=4, block_size=32, with memory measured: a full "
            f"({big}, {big}) score matrix (32 MiB) must never be built",
            qkv((), big, big, 4),
            {"causal": True, "block_size": 32},
        ),
        Case(
            "causal, 12 queries and 13 keys, block_size=4 (bottom-right aligned: query i sees "
            "keys j <= i + 1)",
            qkv((), 12, 13, 4),
            {"causal": True, "block_size": 4},
            hidden=True,
        ),
        Case(
            "causal, 12 queries and 5 keys: the first 7 queries see no key (their output is 0)",
            qkv((), 12, 5, 4),
            {"causal": True, "block_size": 4},
            hidden=True,
        ),
        Case(
            "causal, 5 queries and 12 keys, block_size=4",
            qkv((2,), 5, 12, 4),
            {"causal": True, "block_size": 4},
            hidden=True,
        ),
        Case(
            "huge scores (q and k scaled by 30)",
            qkv((), 11, 11, 4, scale=30.0),
            {"block_size": 4},
            hidden=True,
        ),
        Case("block_size=1 (one key at a time)", qkv((), 6, 7, 3), {"block_size": 1}, hidden=True),
        Case(
            "block_size=100, larger than the sequence (one tile)",
            qkv((), 9, 9, 4),
            {"block_size": 100},
            hidden=True,
        ),
        Case(
            "d_v = 3 differs from d_k = 8, causal",
            qkv((), 9, 9, 8, d_v=3),
            {"causal": True, "block_size": 4},
            hidden=True,
        ),
        Case(
            "float32 inputs, causal, block_size=8",
            tuple(a.astype(np.float32) for a in qkv((2,), 20, 20, 8)),
            {"causal": True, "block_size": 8},
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


# Steps of attnlab's tiled forward (numpy_tiled._tiled_forward), each with one typical mistake.


def _scores_unscaled(q_tile, k_tile, rows, cols, n_q, n_k, causal):
    return tiled._tile_scores(q_tile, k_tile, rows, cols, n_q, n_k, causal) * math.sqrt(
        q_tile.shape[-1]
    )


def _scores_top_left(q_tile, k_tile, rows, cols, n_q, n_k, causal):
    return tiled._tile_scores(q_tile, k_tile, rows, cols, n_k, n_k, causal)  # offset 0


def _key_end_top_left(rows, n_q, n_k, causal):
    return tiled._last_visible_block_end(rows, n_k, n_k, causal)


def _key_end_first_row(rows, n_q, n_k, causal):
    return tiled._last_visible_block_end(rows[:1], n_q, n_k, causal)


def _key_end_one_short(rows, n_q, n_k, causal):
    return tiled._last_visible_block_end(rows - 1, n_q, n_k, causal)


def _state_no_max(s, v_tile):
    p = np.exp(s)  # no maximum subtracted: overflows for large scores
    return np.zeros(s.shape[:-1]), p.sum(axis=-1), p @ v_tile


def _finish_undivided(m, l, acc):
    return acc, m


def _finish_unguarded(m, l, acc):
    return acc / l[..., None], m + np.log(l)


def _flash_variant(**steps):
    """attnlab's own tiled forward (attnlab.flash.numpy_tiled) with some of its steps swapped
    for wrong ones; with none swapped, it is flash_attention_numpy itself."""

    def flash(q, k, v, causal=False, block_size=64):
        q, k, v, block, dtype = tiled._check_qkv(q, k, v, block_size)
        return tiled._tiled_forward(q, k, v, causal, block, dtype, **steps)[0]

    return flash


def _flash_full_matrix(q, k, v, causal=False, block_size=64):
    return attnlab.scaled_dot_product_attention(q, k, v, causal=causal)[0]


register(
    Exercise(
        name="flash_attention_numpy",
        zone="04_implementation",
        reference=attnlab.flash_attention_numpy,
        points=4,
        cases=_flash_cases,
        description="attention tile by tile with an online softmax, never building (Nq, Nk)",
        mutants=[
            Mutant(
                "tile merge without rescale",
                _flash_variant(merge=_merge_variant(rescale_acc=False)),
                "acc is not rescaled when the running maximum grows: before adding p @ v_tile, "
                "multiply the old acc by alpha = exp(m_old - m_new), like l.",
            ),
            Mutant(
                "l not rescaled",
                _flash_variant(merge=_merge_variant(rescale_l=False)),
                "the running sum l is not rescaled when the maximum grows: "
                "l = l * exp(m_old - m_new) + p.sum(-1).",
            ),
            Mutant(
                "missing final division by l",
                _flash_variant(finish=_finish_undivided),
                "the output is acc, the unnormalised sum: divide by l at the end of each query "
                "block (out = acc / l[..., None]).",
            ),
            Mutant(
                "no maximum subtracted",
                _flash_variant(tile_state=_state_no_max),
                "exp of raw scores overflows for large scores: keep the running maximum m and "
                "compute exp(s - m_new), rescaling the old state by exp(m_old - m_new).",
            ),
            Mutant(
                "missing 1/sqrt(d)",
                _flash_variant(tile_scores=_scores_unscaled),
                "the scores are not scaled: divide each q_tile @ k_tile^T by sqrt(d_k).",
            ),
            Mutant(
                "causal block skipping uses the first row",
                _flash_variant(key_end=_key_end_first_row),
                "causal block skipping stops too early: a query block must visit every key "
                "block its LAST row can see, keys j <= (r1 - 1) + (Nk - Nq).",
            ),
            Mutant(
                "causal block skipping off by one",
                _flash_variant(key_end=_key_end_one_short),
                "causal block skipping is off by one: the last visible key of a query block is "
                "j = (r1 - 1) + (Nk - Nq), so loop over key blocks starting below r1 + (Nk - Nq).",
            ),
            Mutant(
                "causal mask top-left aligned",
                _flash_variant(tile_scores=_scores_top_left, key_end=_key_end_top_left),
                "causal mask aligned top-left: with Nq != Nk, query i sees keys "
                "j <= i + (Nk - Nq) (bottom-right, as attnlab.causal_mask).",
            ),
            Mutant(
                "NaN for queries that see no key",
                _flash_variant(merge=_merge_variant(guard_empty=False), finish=_finish_unguarded),
                "a query that sees no key (causal, Nq > Nk) gives NaN: exp(-inf - (-inf)). Shift "
                "by 0 while m is still -inf, and output 0 where l == 0.",
            ),
            Mutant(
                "builds the full score matrix",
                memory_limited(_flash_full_matrix),
                "this builds the whole (Nq, Nk) score matrix, which FlashAttention exists to "
                "avoid: loop over key blocks and merge each tile into the running (m, l, acc).",
            ),
        ],
    )
)
