"""Zone 3b exercises (efficiency): HBM traffic, online softmax merge, sparse masks, linear
attention, SSM discretisation, SSM kernel, Mamba's selective scan and KV cache sizes."""

from __future__ import annotations

import math

import attnlab
import numpy as np

from .core import Case, Exercise, Mutant, register

# ================================================================ hbm_traffic
A100_SRAM = 100 * 1024  # about the shared memory of one A100 streaming multiprocessor


def _hbm_cases():
    return [
        Case("n=2048, d=64, 100 KiB of SRAM, fp16 (2 bytes)", (2048, 64, A100_SRAM)),
        Case("n=8192, d=64, 100 KiB of SRAM, fp16", (8192, 64, A100_SRAM)),
        Case(
            "n=1000, d=128, 192 KiB of SRAM, fp16 (the last K/V block is partial)",
            (1000, 128, 192 * 1024),
        ),
        Case(
            "fp32: n=512, d=32, 64 KiB, bytes_per_element=4",
            (512, 32, 64 * 1024),
            {"bytes_per_element": 4},
        ),
        Case(
            "fp32: n=4096, d=64, 100 KiB, bytes_per_element=4",
            (4096, 64, A100_SRAM),
            {"bytes_per_element": 4},
            hidden=True,
        ),
        Case(
            "SRAM holds the whole K and V: n=128, d=32, 1 MiB (one block, Tc = 1)",
            (128, 32, 1 << 20),
            hidden=True,
        ),
        Case("tiny SRAM of 2 bytes (blocks of one key): n=10, d=4", (10, 4, 2), hidden=True),
        Case("one token: n=1, d=16, 100 KiB", (1, 16, A100_SRAM), hidden=True),
        Case("n=3000, d=80, 48 KiB, fp16", (3000, 80, 48 * 1024), hidden=True),
    ]


def _hbm_parts(n, d, sram_bytes, bytes_per_element, m_elements=None, ceil=math.ceil):
    """Element counts (standard, flash) of Dao et al. 2022's Algorithms 0 and 1."""
    m = sram_bytes // bytes_per_element if m_elements is None else m_elements
    block_c = math.ceil(m / (4 * d))
    t_c = ceil(n / block_c)
    standard = 4 * n * d + 4 * n * n
    flash = n * d + 2 * n + 2 * n * d + t_c * (3 * n * d + 4 * n)
    return standard, flash, t_c


def _hbm_no_n2(n, d, sram_bytes, bytes_per_element=2):
    _, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return 4 * n * d * bytes_per_element, flash * bytes_per_element


def _hbm_s_once(n, d, sram_bytes, bytes_per_element=2):
    _, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return (4 * n * d + 2 * n * n) * bytes_per_element, flash * bytes_per_element


def _hbm_bits(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return 8 * standard * bytes_per_element, 8 * flash * bytes_per_element


def _hbm_elements(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    return standard, flash


def _hbm_sram_as_elements(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(n, d, sram_bytes, bytes_per_element, m_elements=sram_bytes)
    return standard * bytes_per_element, flash * bytes_per_element


def _hbm_floor_blocks(n, d, sram_bytes, bytes_per_element=2):
    standard, flash, _ = _hbm_parts(
        n, d, sram_bytes, bytes_per_element, ceil=lambda x: max(1, math.floor(x))
    )
    return standard * bytes_per_element, flash * bytes_per_element


def _hbm_no_statistics(n, d, sram_bytes, bytes_per_element=2):
    standard, _, t_c = _hbm_parts(n, d, sram_bytes, bytes_per_element)
    flash = n * d + 2 * n * d + t_c * 3 * n * d
    return standard * bytes_per_element, flash * bytes_per_element


def _hbm_swapped(n, d, sram_bytes, bytes_per_element=2):
    standard, flash = attnlab.hbm_traffic(n, d, sram_bytes, bytes_per_element)
    return flash, standard


register(
    Exercise(
        name="hbm_traffic",
        reference=attnlab.hbm_traffic,
        points=3,
        cases=_hbm_cases,
        rtol=0.0,
        atol=0.0,
        description="HBM bytes moved by standard attention and FlashAttention (Dao et al. 2022)",
        mutants=[
            Mutant(
                "standard without the N^2 terms",
                _hbm_no_n2,
                "standard attention is missing its N^2 terms: S = QK^T and P = softmax(S) are "
                "(N, N) matrices, each written to HBM and read back: 4N^2 elements on top of 4Nd.",
            ),
            Mutant(
                "S and P counted once",
                _hbm_s_once,
                "the (N, N) matrices make a round trip each: S is written then read, P is written "
                "then read, so 4 N^2 elements, not 2 N^2.",
            ),
            Mutant(
                "counted bits",
                _hbm_bits,
                "you counted bits: multiply elements by bytes_per_element (2 for fp16), not by "
                "8 * bytes_per_element.",
            ),
            Mutant(
                "counted elements",
                _hbm_elements,
                "you returned elements, not bytes: multiply both totals by bytes_per_element.",
            ),
            Mutant(
                "SRAM size used as elements",
                _hbm_sram_as_elements,
                "the SRAM holds M = sram_bytes // bytes_per_element elements; use M (not "
                "sram_bytes) in Bc = ceil(M / (4d)).",
            ),
            Mutant(
                "floor instead of ceil",
                _hbm_floor_blocks,
                "the number of K/V blocks is Tc = ceil(N / Bc): a partial last block is still "
                "loaded. Use math.ceil (or -(-N // Bc)).",
            ),
            Mutant(
                "forgot the softmax statistics",
                _hbm_no_statistics,
                "FlashAttention also stores and reloads the row statistics m and l: 2N at "
                "initialisation, and Tc * (2N read + 2N written) in the loops.",
            ),
            Mutant(
                "outputs swapped",
                _hbm_swapped,
                "the two results are swapped: return (standard_bytes, flash_bytes).",
            ),
        ],
    )
)

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


def _merge_nan_when_empty(m1, l1, acc1, m2, l2, acc2):
    m = np.maximum(m1, m2)
    a1, a2 = np.exp(m1 - m), np.exp(m2 - m)
    return m, a1 * l1 + a2 * l2, a1[..., None] * acc1 + a2[..., None] * acc2


register(
    Exercise(
        name="online_softmax_merge",
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
                _merge_nan_when_empty,
                "two empty states (m1 = m2 = -inf) give NaN from exp(-inf - (-inf)). When the new "
                "max is -inf, subtract 0 instead (np.where(np.isneginf(m), 0.0, m)).",
            ),
        ],
    )
)

# ================================================================ sparse_mask


def _sparse_cases():
    return [
        Case("local, n=8, window=1", (8, "local"), {"window": 1}),
        Case("strided, n=10, stride=3", (10, "strided"), {"stride": 3}),
        Case("fixed, n=8, n_global=2", (8, "fixed"), {"n_global": 2}),
        Case("random, n=10, n_random=3, seed=5", (10, "random"), {"n_random": 3, "seed": 5}),
        Case("bigbird, n=12, window=1, n_global=1, n_random=2", (12, "bigbird"), {"window": 1}),
        Case(
            "local, n=7, window=2, causal=True (only keys j <= i)",
            (7, "local"),
            {"window": 2, "causal": True},
        ),
        Case(
            "random, n=7, n_random=2, seed=3, causal=True (row 0 can only pick key 0)",
            (7, "random"),
            {"n_random": 2, "seed": 3, "causal": True},
        ),
        Case("random with n_random larger than n: n=4, n_random=6", (4, "random"), {"n_random": 6}),
        Case(
            "local, n=9, window=2, causal=True",
            (9, "local"),
            {"window": 2, "causal": True},
            hidden=True,
        ),
        Case(
            "random, n=8, n_random=3, causal=True (early rows have fewer than 3 keys to pick)",
            (8, "random"),
            {"n_random": 3, "causal": True, "seed": 1},
            hidden=True,
        ),
        Case(
            "bigbird, n=16, window=2, n_global=2, n_random=3, seed=7, causal=True",
            (16, "bigbird"),
            {"window": 2, "n_global": 2, "n_random": 3, "seed": 7, "causal": True},
            hidden=True,
        ),
        Case(
            "strided, n=11, stride=4, causal=True", (11, "strided"), {"causal": True}, hidden=True
        ),
        Case(
            "fixed, n=7, n_global=3, causal=True",
            (7, "fixed"),
            {"n_global": 3, "causal": True},
            hidden=True,
        ),
        Case("local, n=6, window=0 (only the diagonal)", (6, "local"), {"window": 0}, hidden=True),
        Case("a single token: n=1, bigbird", (1, "bigbird"), hidden=True),
        Case(
            "random with n_random larger than n: n=5, n_random=8",
            (5, "random"),
            {"n_random": 8},
            hidden=True,
        ),
    ]


def _rule_local(i, j, window, stride, n_global):
    return np.abs(i - j) <= window


def _rule_strided(i, j, window, stride, n_global):
    return (i - j) % stride == 0


def _rule_fixed(i, j, window, stride, n_global):
    return (i < n_global) | (j < n_global)


def _library_random(n, n_random, seed, causal):
    return attnlab.sparse_mask(n, "random", n_random=n_random, seed=seed, causal=causal)


def _sparse_variant(
    local=_rule_local,
    strided=_rule_strided,
    fixed=_rule_fixed,
    random=_library_random,
    causal_fn=None,
    bigbird_parts=("local", "fixed", "random"),
    apply_causal=True,
):
    """A sparse_mask with some rule replaced by a wrong one (the others as in the reference)."""

    def wrong(n, pattern, window=3, stride=4, n_global=1, n_random=2, seed=0, causal=False):
        i = np.arange(n)[:, None]
        j = np.arange(n)[None, :]
        causal = causal and apply_causal
        allowed = (causal_fn or attnlab.causal_mask)(n, n) if causal else np.ones((n, n), bool)
        rules = {"local": local, "strided": strided, "fixed": fixed}

        def part(name):
            if name == "random":
                return random(n, n_random, seed, causal)
            return np.broadcast_to(rules[name](i, j, window, stride, n_global), (n, n))

        if pattern == "bigbird":
            mask = np.zeros((n, n), bool)
            for name in bigbird_parts:
                mask = mask | part(name)
        else:
            mask = part(pattern)
        return mask & allowed

    return wrong


def _random_then_causal(n, n_random, seed, causal):
    return attnlab.sparse_mask(n, "random", n_random=n_random, seed=seed, causal=False)


def _random_row_seeded(n, n_random, seed, causal):
    allowed = attnlab.causal_mask(n) if causal else np.ones((n, n), bool)
    mask = np.zeros((n, n), bool)
    for i in range(n):
        rng = np.random.default_rng(seed)
        keys = np.flatnonzero(allowed[i])
        mask[i, rng.choice(keys, size=min(n_random, keys.size), replace=False)] = True
    return mask


register(
    Exercise(
        name="sparse_mask",
        reference=attnlab.sparse_mask,
        points=3,
        cases=_sparse_cases,
        description="boolean sparse attention masks: local, strided, fixed, random, BigBird",
        mutants=[
            Mutant(
                "local window off by one",
                _sparse_variant(local=lambda i, j, w, s, g: np.abs(i - j) < w),
                "local window off by one: query i sees the keys with |i - j| <= window (window "
                "neighbours on each side, and itself): use <=, not <.",
            ),
            Mutant(
                "local window one-sided",
                _sparse_variant(local=lambda i, j, w, s, g: (i - j <= w) & (i - j >= 0)),
                "the local window is two-sided: |i - j| <= window, keys on both sides of the "
                "query (causal=True removes the future side separately).",
            ),
            Mutant(
                "strided on the key index",
                _sparse_variant(strided=lambda i, j, w, s, g: j % s == 0),
                "strided means the DISTANCE i - j is a multiple of stride: (i - j) % stride == 0, "
                "not j % stride == 0.",
            ),
            Mutant(
                "global tokens only send",
                _sparse_variant(fixed=lambda i, j, w, s, g: j < g),
                "global tokens work both ways: every token attends to them (j < n_global) AND "
                "they attend to every token (i < n_global).",
            ),
            Mutant(
                "global tokens only receive",
                _sparse_variant(fixed=lambda i, j, w, s, g: i < g),
                "global tokens work both ways: every token attends to them (j < n_global) AND "
                "they attend to every token (i < n_global).",
            ),
            Mutant(
                "bigbird without random keys",
                _sparse_variant(bigbird_parts=("local", "fixed")),
                "BigBird is the union of local, fixed (global) AND random keys.",
            ),
            Mutant(
                "bigbird without global tokens",
                _sparse_variant(bigbird_parts=("local", "random")),
                "BigBird is the union of local, fixed (global) AND random keys.",
            ),
            Mutant(
                "causal ignored",
                _sparse_variant(apply_causal=False),
                "causal=True is ignored: intersect the pattern with the causal mask (j <= i), "
                "e.g. mask & attnlab.causal_mask(n), and draw random keys among j <= i.",
            ),
            Mutant(
                "causal mask transposed",
                _sparse_variant(causal_fn=lambda n, m: np.triu(np.ones((n, m), bool))),
                "causal mask transposed: a query may see keys j <= i (the lower triangle, "
                "np.tril), not the future.",
            ),
            Mutant(
                "random keys drawn before the causal cut",
                _sparse_variant(random=_random_then_causal),
                "with causal=True, draw the random keys among the allowed ones (set the priority "
                "of future keys to inf before the argsort), so row i gets min(n_random, i + 1) keys.",
            ),
            Mutant(
                "a new generator for every row",
                _sparse_variant(random=_random_row_seeded),
                "random keys: create ONE generator rng = np.random.default_rng(seed), draw the "
                "whole (n, n) priority matrix with rng.random((n, n)) and keep, in each row, the "
                "n_random keys of lowest priority (np.argsort(priority, axis=1)).",
            ),
        ],
    )
)

# ================================================================ linear_attention


def _linear_cases():
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    q3, k5, v5 = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    qb, kb, vb = (
        rng.normal(size=(2, 3, 7, 4)),
        rng.normal(size=(2, 3, 7, 4)),
        rng.normal(size=(2, 3, 7, 5)),
    )
    return [
        Case("q, k, v of shape (6, 4)", (q, k, v)),
        Case("q, k, v of shape (6, 4), causal=True", (q, k, v), {"causal": True}),
        Case("3 queries, 5 keys, d_v = 2", (q3, k5, v5)),
        Case(
            "a (2, 5, 3) batch with d_v = 2, causal=True",
            tuple(
                np.random.default_rng(105).normal(size=s) for s in ((2, 5, 3), (2, 5, 3), (2, 5, 2))
            ),
            {"causal": True},
        ),
        Case(
            "a (2, 3, 7, 4) batch of heads with d_v = 5, causal=True",
            (qb, kb, vb),
            {"causal": True},
            hidden=True,
        ),
        Case("strongly negative inputs (the exp branch of elu)", (q - 6, k - 6, v), hidden=True),
        Case("a (2, 3, 7, 4) batch, not causal", (qb, kb, vb), hidden=True),
        Case(
            "float32 inputs, causal=True",
            tuple(a.astype(np.float32) for a in (qb, kb, vb)),
            {"causal": True},
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _phi(x):
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def _linear_generic(q, k, v, causal, phi=_phi, normalise=True, prefix="inclusive"):
    phi_q, phi_k = phi(q), phi(k)
    sim = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        n = q.shape[-2]
        keep = np.tril(np.ones((n, n), bool), k=0 if prefix == "inclusive" else -1)
        sim = np.where(keep, sim, 0.0)
    if normalise:
        sim = sim / sim.sum(axis=-1, keepdims=True)
    return sim @ v


def _linear_no_normaliser(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, normalise=False)


def _linear_causal_full_sum(q, k, v, causal=False):
    return _linear_generic(q, k, v, False)


def _linear_exclusive_prefix(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, prefix="exclusive")


def _linear_no_plus_one(q, k, v, causal=False):
    return _linear_generic(
        q, k, v, causal, phi=lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))
    )


def _linear_relu(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, phi=lambda x: np.maximum(x, 0.0))


def _linear_exp(q, k, v, causal=False):
    return _linear_generic(q, k, v, causal, phi=np.exp)


def _linear_softmax(q, k, v, causal=False):
    return attnlab.scaled_dot_product_attention(q, k, v, causal=causal)[0]


def _linear_numerator_sum_only(q, k, v, causal=False):
    """Normalised by the sum over keys of phi(k) alone (the denominator without phi(q))."""
    phi_q, phi_k = _phi(q), _phi(k)
    sim = phi_q @ np.swapaxes(phi_k, -1, -2)
    if causal:
        sim = np.where(np.tril(np.ones(sim.shape[-2:], bool)), sim, 0.0)
    z = phi_k.sum(axis=-2)  # (..., d)
    return (sim @ v) / z.sum(axis=-1)[..., None, None]


register(
    Exercise(
        name="linear_attention",
        reference=attnlab.linear_attention,
        points=2,
        cases=_linear_cases,
        rtol=1e-6,
        atol=1e-9,
        description="linear attention with phi = elu + 1, by associativity (Katharopoulos et al. 2020)",
        mutants=[
            Mutant(
                "no normaliser",
                _linear_no_normaliser,
                "the normaliser is missing: divide phi(q_i) S by phi(q_i) . z with "
                "z = sum_j phi(k_j), so that each query's weights sum to 1.",
            ),
            Mutant(
                "causal uses the full sum",
                _linear_causal_full_sum,
                "with causal=True, S and z must be PREFIX sums over keys j <= i (np.cumsum along "
                "the token axis), not sums over all keys.",
            ),
            Mutant(
                "causal prefix excludes the query",
                _linear_exclusive_prefix,
                "the causal prefix must include the query's own key: sum over j <= i, not j < i.",
            ),
            Mutant(
                "elu without +1",
                _linear_no_plus_one,
                "the feature map is elu(x) + 1 (x + 1 for x > 0, exp(x) for x <= 0), which is "
                "always positive; you used elu(x) alone.",
            ),
            Mutant(
                "relu feature map",
                _linear_relu,
                "the feature map is elu(x) + 1 (x + 1 for x > 0, exp(x) for x <= 0), not relu.",
            ),
            Mutant(
                "exp feature map",
                _linear_exp,
                "the feature map is elu(x) + 1 (x + 1 for x > 0, exp(x) for x <= 0), not exp(x) "
                "everywhere.",
            ),
            Mutant(
                "softmax attention",
                _linear_softmax,
                "this is softmax attention: linear attention replaces exp(q.k / sqrt(d)) by "
                "phi(q) . phi(k) with phi = elu + 1 (and no 1/sqrt(d)).",
            ),
            Mutant(
                "denominator without phi(q)",
                _linear_numerator_sum_only,
                "the denominator of query i is phi(q_i) . z with z = sum_j phi(k_j): it depends on "
                "the query.",
            ),
        ],
    )
)

# ================================================================ ssm_discretize


def _discretize_cases():
    rng = np.random.default_rng(7)
    a_diag = np.array([-1.0, -2.0, -0.5])
    b_diag = np.array([1.0, 0.5, 2.0])
    a_dense = np.array([[-1.0, 0.5], [-0.3, -2.0]])
    b_dense = np.array([[1.0], [0.5]])
    m = rng.normal(size=(3, 3))
    a3 = -2.0 * np.eye(3) + 0.4 * (m - m.T) + 0.2 * rng.normal(size=(3, 3))
    b3 = rng.normal(size=(3, 2))
    return [
        Case("diagonal A = [-1, -2, -0.5], B = [1, 0.5, 2], delta = 0.1", (a_diag, b_diag, 0.1)),
        Case("the same with a large step delta = 1.0", (a_diag, b_diag, 1.0)),
        Case(
            "dense A = [[-1, 0.5], [-0.3, -2]], B of shape (2, 1), delta = 0.5",
            (a_dense, b_dense, 0.5),
        ),
        Case(
            "diagonal A = [-1, -3], B of shape (2, 2) = [[1, 2], [0.5, -1]], delta = 0.5",
            (np.array([-1.0, -3.0]), np.array([[1.0, 2.0], [0.5, -1.0]]), 0.5),
        ),
        Case("dense (3, 3) A, B of shape (3, 2), delta = 0.3", (a3, b3, 0.3), hidden=True),
        Case(
            "diagonal A with B of shape (3, 2), delta = 2.0",
            (a_diag, np.stack([b_diag, -b_diag], 1), 2.0),
            hidden=True,
        ),
        Case("a tiny step delta = 1e-4", (a_diag, b_diag, 1e-4), hidden=True),
        Case(
            "float32 diagonal A and B, delta = 0.25",
            (a_diag.astype(np.float32), b_diag.astype(np.float32), 0.25),
            hidden=True,
            rtol=1e-5,
            atol=1e-6,
        ),
    ]


def _is_diag(A):
    return np.ndim(A) == 1


def _mat_or_diag(A, B, delta, f_diag, f_dense):
    A, B = np.asarray(A, float), np.asarray(B, float)
    if _is_diag(A):
        return f_diag(A, B, delta)
    return f_dense(A, B, delta)


def _col(x, B):
    return x if B.ndim == 1 else x[:, None]


def _disc_euler(A, B, delta):
    def diag(A, B, dt):
        return 1 + dt * A, dt * B

    def dense(A, B, dt):
        return np.eye(len(A)) + dt * A, dt * B

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_no_delta(A, B, delta):
    def diag(A, B, dt):
        return np.exp(A), _col(np.expm1(A) / A, B) * B

    def dense(A, B, dt):
        e = attnlab.expm(A)
        return e, np.linalg.solve(A, (e - np.eye(len(A))) @ B)

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_euler_b(A, B, delta):
    def diag(A, B, dt):
        return np.exp(dt * A), dt * B

    def dense(A, B, dt):
        return attnlab.expm(dt * A), dt * B

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_b_without_delta(A, B, delta):
    def diag(A, B, dt):
        return np.exp(dt * A), _col(np.expm1(dt * A) / (dt * A), B) * B

    def dense(A, B, dt):
        e = attnlab.expm(dt * A)
        return e, np.linalg.solve(dt * A, (e - np.eye(len(A))) @ B)

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_bilinear(A, B, delta):
    def diag(A, B, dt):
        inv = 1 / (1 - dt * A / 2)
        return inv * (1 + dt * A / 2), _col(inv * dt, B) * B

    def dense(A, B, dt):
        eye = np.eye(len(A))
        inv = np.linalg.inv(eye - dt * A / 2)
        return inv @ (eye + dt * A / 2), inv @ (dt * B)

    return _mat_or_diag(A, B, delta, diag, dense)


def _disc_elementwise_exp(A, B, delta):
    def dense(A, B, dt):
        e = np.exp(dt * A)
        return e, np.linalg.solve(dt * A, (e - np.eye(len(A))) @ (dt * B))

    return _mat_or_diag(A, B, delta, lambda A, B, dt: attnlab.ssm_discretize(A, B, dt), dense)


def _disc_wrong_gain(A, B, delta):
    """B_bar = (exp(dA) - I) B: forgot the (dA)^-1 factor (and the delta)."""

    def diag(A, B, dt):
        return np.exp(dt * A), _col(np.expm1(dt * A), B) * B

    def dense(A, B, dt):
        e = attnlab.expm(dt * A)
        return e, (e - np.eye(len(A))) @ B

    return _mat_or_diag(A, B, delta, diag, dense)


register(
    Exercise(
        name="ssm_discretize",
        reference=attnlab.ssm_discretize,
        points=3,
        cases=_discretize_cases,
        rtol=1e-6,
        atol=1e-10,
        description="zero-order hold: A_bar = exp(delta A), B_bar = (delta A)^-1 (exp(delta A) - I) delta B",
        mutants=[
            Mutant(
                "Euler",
                _disc_euler,
                "this is the Euler rule (A_bar = I + delta A, B_bar = delta B). The zero-order hold "
                "is exact for a constant input: A_bar = exp(delta A), B_bar = (delta A)^-1 "
                "(exp(delta A) - I) delta B.",
            ),
            Mutant(
                "exp(A) without delta",
                _disc_no_delta,
                "the step is missing: A_bar = exp(delta * A), not exp(A) (and delta enters B_bar too).",
            ),
            Mutant(
                "Euler B with ZOH A",
                _disc_euler_b,
                "B_bar = delta * B is Mamba's simplification (Euler for B). The exact zero-order hold "
                "is B_bar = (delta A)^-1 (exp(delta A) - I) delta B.",
            ),
            Mutant(
                "B_bar without delta",
                _disc_b_without_delta,
                "B_bar = (delta A)^-1 (exp(delta A) - I) * delta * B: keep the final factor delta "
                "(for diagonal A it simplifies to (exp(delta A) - 1) / A * B).",
            ),
            Mutant(
                "bilinear",
                _disc_bilinear,
                "this is the bilinear (Tustin) rule; the exercise asks for the zero-order hold: "
                "A_bar = exp(delta A).",
            ),
            Mutant(
                "elementwise exp of a dense matrix",
                _disc_elementwise_exp,
                "for a dense A, exp(delta A) is the MATRIX exponential (attnlab.expm), not np.exp "
                "applied entry by entry.",
            ),
            Mutant(
                "forgot (delta A)^-1",
                _disc_wrong_gain,
                "B_bar = (delta A)^-1 (exp(delta A) - I) delta B: the factor (delta A)^-1 is missing "
                "(for diagonal A: (exp(delta A) - 1) / A * B).",
            ),
        ],
    )
)

# ================================================================ ssm_kernel


def _kernel_cases():
    rng = np.random.default_rng(11)
    a, b, c = np.array([0.9, 0.5, -0.3]), np.array([1.0, 0.5, 2.0]), np.array([0.2, -1.0, 0.7])
    a_dense = np.array([[0.8, 0.1], [-0.2, 0.6]])
    a3 = 0.4 * rng.normal(size=(3, 3))
    return [
        Case(
            "diagonal A_bar = [0.9, 0.5, -0.3], B_bar = [1, 0.5, 2], C = [0.2, -1, 0.7], L = 6",
            (a, b, c, 6),
        ),
        Case(
            "dense A_bar = [[0.8, 0.1], [-0.2, 0.6]], B_bar = [1, 1], C = [1, -1], L = 5",
            (a_dense, np.array([1.0, 1.0]), np.array([1.0, -1.0]), 5),
        ),
        Case(
            "diagonal A_bar = [0.7, -0.4], B_bar of shape (2, 1), C of shape (1, 2), L = 4",
            (np.array([0.7, -0.4]), np.array([[1.0], [2.0]]), np.array([[0.5, 1.0]]), 4),
        ),
        Case("L = 1 (the kernel is just C . B_bar)", (a, b, c, 1), hidden=True),
        Case(
            "dense (3, 3) A_bar with B_bar of shape (3, 1) and C of shape (1, 3), L = 8",
            (a3, rng.normal(size=(3, 1)), rng.normal(size=(1, 3)), 8),
            hidden=True,
        ),
        Case("a long kernel, L = 40", (a, b, c, 40), hidden=True),
        Case(
            "float32 inputs, L = 7",
            (a.astype(np.float32), b.astype(np.float32), c.astype(np.float32), 7),
            hidden=True,
            rtol=1e-5,
            atol=1e-6,
        ),
    ]


def _kernel_generic(A_bar, B_bar, C, L, first_power=0, power=None, reverse=False, use_c=True):
    A_bar = np.asarray(A_bar, float)
    b = np.asarray(B_bar, float).reshape(-1)
    c = np.asarray(C, float).reshape(-1)
    out = []
    for k in range(first_power, first_power + L):
        if A_bar.ndim == 1:
            x = A_bar**k * b
        elif power == "elementwise":
            x = (A_bar**k) @ b
        else:
            x = np.linalg.matrix_power(A_bar, k) @ b
        out.append(c @ x if use_c else x.sum())
    out = np.array(out)
    return out[::-1].copy() if reverse else out


register(
    Exercise(
        name="ssm_kernel",
        reference=attnlab.ssm_kernel,
        points=2,
        cases=_kernel_cases,
        rtol=1e-7,
        atol=1e-10,
        description="K = (C B_bar, C A_bar B_bar, ..., C A_bar^(L-1) B_bar)",
        mutants=[
            Mutant(
                "off by one power",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, 1),
                "the kernel starts at A_bar^0 = I: K_0 = C B_bar (the current input), K_k = C "
                "A_bar^k B_bar for k = 0 .. L-1.",
            ),
            Mutant(
                "elementwise power of a dense matrix",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, power="elementwise"),
                "for a dense A_bar, A_bar^k is a MATRIX power (np.linalg.matrix_power, or multiply "
                "the vector by A_bar once per step), not A_bar ** k entry by entry.",
            ),
            Mutant(
                "kernel reversed",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, reverse=True),
                "the kernel is reversed: K[0] = C B_bar is the weight of the CURRENT input, K[L-1] "
                "the oldest.",
            ),
            Mutant(
                "forgot C",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L, use_c=False),
                "each entry is the scalar C . (A_bar^k B_bar): read the state out with C.",
            ),
            Mutant(
                "one entry too many",
                lambda A_bar, B_bar, C, L: _kernel_generic(A_bar, B_bar, C, L + 1),
                "the kernel has exactly L entries, powers 0 .. L-1.",
            ),
        ],
    )
)

# ================================================================ selective_scan


def _scan_inputs(rng, batch, d_inner, d_state, L, delta_scale=1.0):
    u = rng.normal(size=(batch, d_inner, L))
    delta = delta_scale * np.log1p(np.exp(rng.normal(size=(batch, d_inner, L))))  # softplus > 0
    A = -np.exp(rng.normal(size=(d_inner, d_state)))
    B = rng.normal(size=(batch, d_state, L))
    C = rng.normal(size=(batch, d_state, L))
    D = rng.normal(size=(d_inner,))
    return u, delta, A, B, C, D


def _scan_cases():
    rng = np.random.default_rng(13)
    small = _scan_inputs(rng, 1, 2, 3, 5)
    batch = _scan_inputs(rng, 2, 3, 4, 7)
    single = _scan_inputs(rng, 2, 2, 2, 1)
    big = _scan_inputs(rng, 1, 3, 4, 9, delta_scale=5.0)
    f32 = tuple(a.astype(np.float32) for a in _scan_inputs(rng, 2, 3, 4, 6))
    return [
        Case("batch 1, d_inner 2, d_state 3, L 5, with D", small),
        Case("the same without D (D=None)", small[:5]),
        Case("batch 2, d_inner 3, d_state 4, L 7, with D", batch),
        Case("a single time step L = 1", single, hidden=True),
        Case("large steps (delta up to ~20)", big, hidden=True),
        Case("batch 2, L 7, D=None", batch[:5], hidden=True),
        Case("float32 inputs", f32, hidden=True, rtol=1e-4, atol=1e-5),
    ]


def _scan_generic(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    b_rule="euler",
    order="update-then-read",
    use_delta_in_a=True,
    reverse=False,
    use_d=True,
    swap_bc=False,
):
    u, delta, A, B, C = (np.asarray(x, float) for x in (u, delta, A, B, C))
    if swap_bc:
        B, C = C, B
    batch, d_inner, L = u.shape
    h = np.zeros((batch, d_inner, A.shape[1]))
    y = np.zeros((batch, d_inner, L))
    times = range(L - 1, -1, -1) if reverse else range(L)
    for t in times:
        dt = delta[:, :, t, None]
        dA = dt * A if use_delta_in_a else A
        A_bar = np.exp(dA)
        if b_rule == "euler":
            B_bar = dt * B[:, None, :, t]
        else:  # zoh
            B_bar = np.expm1(dt * A) / A * B[:, None, :, t]
        readout = np.einsum("bdn,bn->bd", h, C[:, :, t])
        h = A_bar * h + B_bar * u[:, :, t, None]
        if order == "update-then-read":
            readout = np.einsum("bdn,bn->bd", h, C[:, :, t])
        y[:, :, t] = readout
    if D is not None and use_d:
        y = y + np.asarray(D, float)[:, None] * u
    return y


register(
    Exercise(
        name="selective_scan",
        reference=attnlab.selective_scan,
        points=3,
        cases=_scan_cases,
        rtol=1e-6,
        atol=1e-9,
        description="Mamba's selective scan (mamba_ssm reference shapes)",
        mutants=[
            Mutant(
                "no D skip",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, use_d=False),
                "the skip connection is missing: when D is given, add D[d] * u[:, d, t] to every "
                "output (y = y + D[:, None] * u).",
            ),
            Mutant(
                "ZOH for B",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, b_rule="zoh"),
                "Mamba discretises B with the simpler Euler rule: B_bar = delta_t * B_t (only A "
                "gets the exponential, A_bar = exp(delta_t A)), as in mamba_ssm's reference.",
            ),
            Mutant(
                "read before update",
                lambda u, delta, A, B, C, D=None: _scan_generic(
                    u, delta, A, B, C, D, order="read-then-update"
                ),
                "wrong time ordering: update the state first, h_t = A_bar h_{t-1} + B_bar u_t, THEN "
                "read y_t = C_t . h_t (the current input must reach the current output).",
            ),
            Mutant(
                "time reversed",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, reverse=True),
                "the scan runs backwards: go forward in time, t = 0, 1, ..., L-1 (the model is causal).",
            ),
            Mutant(
                "exp(A) without delta",
                lambda u, delta, A, B, C, D=None: _scan_generic(
                    u, delta, A, B, C, D, use_delta_in_a=False
                ),
                "A_bar = exp(delta_t * A): the step delta_t multiplies A inside the exponential.",
            ),
            Mutant(
                "B and C swapped",
                lambda u, delta, A, B, C, D=None: _scan_generic(u, delta, A, B, C, D, swap_bc=True),
                "B writes the input into the state (h += delta B u) and C reads it out (y = C . h); "
                "you swapped them.",
            ),
        ],
    )
)

# ================================================================ kv_cache_bytes


def _kv_cases():
    return [
        Case("GPT-2 small (12 layers, 12 kv heads of 64) at 1024 tokens", (12, 12, 64, 1024)),
        Case("Llama-2-7B (32 layers, 32 kv heads of 128) at 4096 tokens", (32, 32, 128, 4096)),
        Case(
            "Llama-3.1-8B (32 layers, 8 kv heads of 128, no sliding window) at 8192 tokens, batch 4",
            (32, 8, 128, 8192),
            {"batch": 4},
        ),
        Case(
            "fp32 (bytes_per_element=4): 4 layers, 2 kv heads of 16, 10 tokens",
            (4, 2, 16, 10),
            {"bytes_per_element": 4},
        ),
        Case(
            "fp32 (bytes_per_element=4): 6 layers, 4 kv heads of 32, 100 tokens, batch 2",
            (6, 4, 32, 100),
            {"batch": 2, "bytes_per_element": 4},
            hidden=True,
        ),
        Case(
            "Falcon-7B (MQA: 32 layers, 1 kv head of 64) at 2048 tokens, batch 8",
            (32, 1, 64, 2048),
            {"batch": 8},
            hidden=True,
        ),
        Case("a single token: 2 layers, 2 kv heads of 16", (2, 2, 16, 1), hidden=True),
        Case(
            "Llama-2-70B (80 layers, 8 kv heads of 128), 32768 tokens, int8 (1 byte)",
            (80, 8, 128, 32768),
            {"bytes_per_element": 1},
            hidden=True,
        ),
    ]


def _kv(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, kv=2, bits=1):
    return kv * n_layers * n_kv_heads * head_dim * seq_len * batch * bytes_per_element * bits


register(
    Exercise(
        name="kv_cache_bytes",
        reference=attnlab.kv_cache_bytes,
        points=2,
        cases=_kv_cases,
        rtol=0.0,
        atol=0.0,
        description="KV cache bytes: 2 * layers * kv heads * head_dim * tokens * batch * bytes",
        mutants=[
            Mutant(
                "K and V counted once",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, kv=1
                ),
                "the cache holds keys AND values: multiply by 2.",
            ),
            Mutant(
                "counted bits",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, bits=8
                ),
                "you counted bits: bytes_per_element is already in bytes (2 for fp16), do not "
                "multiply by 8.",
            ),
            Mutant(
                "counted elements",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, 1
                ),
                "you returned elements: multiply by bytes_per_element to get bytes.",
            ),
            Mutant(
                "forgot the batch",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, 1, bytes_per_element
                ),
                "every sequence of the batch has its own cache: multiply by batch.",
            ),
            Mutant(
                "forgot the layers",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    1, n_kv_heads, head_dim, seq_len, batch, bytes_per_element
                ),
                "every layer has its own keys and values: multiply by n_layers.",
            ),
            Mutant(
                "K and V counted twice each",
                lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: _kv(
                    n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element, kv=4
                ),
                "K and V are one tensor each per layer: the factor is 2, not 4.",
            ),
        ],
    )
)
