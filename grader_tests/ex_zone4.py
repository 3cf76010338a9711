"""Zone 4 exercises (implementation): one KV-cache decoding step, grouped-query attention,
tiled FlashAttention in NumPy, the inner loop of the Triton FlashAttention kernel, and the
parallel (associative) scan.

Three checks need more than comparing outputs, so the notebook's test cells hand the learner's
function to the grader through a small wrapper defined here:
- `memory_limited(fn)` measures (tracemalloc) what `flash_attention_numpy` allocates on a long
  sequence and fails if it builds anything near a full (Nq, Nk) score matrix;
- `loop_limited(fn)` counts the Python steps (sys.settrace) of `parallel_scan` on a long
  sequence and fails if it loops over time;
- `forward_with_inner(inner)` runs attnlab's Triton FlashAttention forward with the learner's
  @triton.jit inner loop (on tiny shapes; natively on a GPU, in Triton's interpreter on a
  CPU) and returns NumPy (out, lse), checked against torch's SDPA. Without Triton installed
  it raises TritonNotInstalled: the exercise scores 0 as "not attempted", nothing crashes.
Each wrapper pickles with the learner's function, so the hidden checks can run in the clean
grading process (see sandbox.py). Failures raise exceptions whose message depends only on
the input, so a catalogued mistake that fails the same way is named in the feedback.
"""

import inspect
import linecache
import math
import os
import sys
import textwrap

import attnlab
import numpy as np

from .core import Case, Exercise, Mutant, register

__all__ = [
    "NotTiledError",
    "TimeLoopError",
    "TritonNotInstalled",
    "forward_with_inner",
    "loop_limited",
    "memory_limited",
]


class _Wrapped:
    """A learner's function run under an extra check; shows the learner's code to the grader.

    The grader inspects `__code__` / `__globals__` of submitted functions (to refuse one that
    calls the library's own answer), so these attributes are those of the wrapped function.
    """

    exercise = ""  # the attnlab function this wrapper grades

    def __init__(self, fn):
        self.fn = fn
        self.__module__ = getattr(fn, "__module__", None) or "__main__"

    def _refuse_the_library(self):
        if self.fn is getattr(attnlab, self.exercise, None):
            raise ValueError(f"this is attnlab.{self.exercise} itself: write your own version")

    @property
    def __wrapped__(self):
        return self.fn

    @property
    def __code__(self):
        return self.fn.__code__

    @property
    def __globals__(self):
        return self.fn.__globals__


# ================================================================ kv_cache_attention_step


def _kv_cases():
    rng = np.random.default_rng(40)

    def arrays(lead, t, d_k, d_v, scale=1.0):
        q = scale * rng.normal(size=lead + (1, d_k))
        k = scale * rng.normal(size=lead + (1, d_k))
        v = rng.normal(size=lead + (1, d_v))
        return q, k, v, scale * rng.normal(size=lead + (t, d_k)), rng.normal(size=lead + (t, d_v))

    return [
        Case("H=2 heads, 3 cached tokens, d=4", arrays((2,), 3, 4, 4)),
        Case(
            "an empty cache (T=0): the first token can only attend to itself", arrays((2,), 0, 4, 4)
        ),
        Case(
            "a batch of 2 sequences, 3 heads, 5 cached tokens, d_k=8, d_v=6",
            arrays((2, 3), 5, 8, 6),
        ),
        Case("one cached token (T=1), 1 head, d=3", arrays((1,), 1, 3, 3), hidden=True),
        Case("large scores (q and k scaled by 20)", arrays((2,), 6, 4, 4, scale=20.0), hidden=True),
        Case(
            "two leading batch axes (2, 2), 2 heads, 4 cached tokens",
            arrays((2, 2, 2), 4, 3, 5),
            hidden=True,
        ),
        Case(
            "float32 inputs, 4 heads, 7 cached tokens",
            tuple(a.astype(np.float32) for a in arrays((4,), 7, 8, 8)),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _concat(cache, new, axis=-2, new_first=False):
    parts = [new, cache] if new_first else [cache, new]
    return np.concatenate(parts, axis=axis)


def _kv_step(
    q_new,
    k_new,
    v_new,
    k_cache,
    v_cache,
    *,
    axis=-2,
    new_first=False,
    scale=True,
    keep_old_cache=False,
    cache_only=False,
    top_left=False,
    softmax_axis=-1,
):
    """The correct step, with one mistake switched on by a keyword."""
    k_all = _concat(k_cache, k_new, axis, new_first)
    v_all = _concat(v_cache, v_new, axis, new_first)
    k_att, v_att = (k_cache, v_cache) if cache_only else (k_all, v_all)
    scores = q_new @ np.swapaxes(k_att, -1, -2)
    if scale:
        scores = scores / np.sqrt(q_new.shape[-1])
    if top_left:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    out = attnlab.softmax(scores, axis=softmax_axis) @ v_att
    if keep_old_cache:
        return out, k_cache, v_cache
    return out, k_all, v_all


def _kv_mutant(**mistake):
    return lambda q_new, k_new, v_new, k_cache, v_cache: _kv_step(
        q_new, k_new, v_new, k_cache, v_cache, **mistake
    )


register(
    Exercise(
        name="kv_cache_attention_step",
        reference=attnlab.kv_cache_attention_step,
        points=3,
        cases=_kv_cases,
        description="one decoding step: append k_new, v_new to the caches and attend from q_new",
        mutants=[
            Mutant(
                "cache not appended",
                _kv_mutant(keep_old_cache=True),
                "the caches you return did not grow: return k_cache and v_cache with the new "
                "key and value appended (np.concatenate([k_cache, k_new], axis=-2)), so the "
                "next step sees this token.",
            ),
            Mutant(
                "new token not attended",
                _kv_mutant(cache_only=True),
                "the new query attends only to the old cache: append k_new and v_new first, "
                "then attend over all T + 1 keys (a token may look at itself).",
            ),
            Mutant(
                "appended on the wrong axis",
                _kv_mutant(axis=0),
                "concatenated on the wrong axis: tokens live on axis -2 of (..., H, T, d); use "
                "np.concatenate([k_cache, k_new], axis=-2).",
            ),
            Mutant(
                "new token put first",
                _kv_mutant(new_first=True),
                "the new key/value is put in front of the cache: append it at the end "
                "([k_cache, k_new]) so position t of the cache is token t.",
            ),
            Mutant(
                "missing 1/sqrt(d)",
                _kv_mutant(scale=False),
                "the scores are not scaled: divide q_new @ k^T by sqrt(d_k), d_k = q_new.shape[-1].",
            ),
            Mutant(
                "causal mask on the single query",
                _kv_mutant(top_left=True),
                "a causal mask applied to the single new query hides the cache (np.tril of a "
                "1 x (T+1) matrix keeps only key 0). The newest token may see every cached "
                "key: no mask is needed, or a bottom-right aligned one (attnlab.causal_mask(1, T + 1)).",
            ),
            Mutant(
                "softmax over the query axis",
                _kv_mutant(softmax_axis=-2),
                "softmax over the wrong axis: with one query, normalising over queries makes "
                "every weight 1. Normalise over the keys, the last axis.",
            ),
        ],
    )
)

# ================================================================ grouped_query_attention


def _gqa_cases():
    rng = np.random.default_rng(41)
    extra = np.random.default_rng(
        141
    )  # the visible cases added later: the hidden inputs stay as they were

    def qkv(lead, h, h_kv, n_q, n_k, d, scale=1.0, gen=None):
        gen = gen or rng
        q = scale * gen.normal(size=lead + (h, n_q, d))
        k = scale * gen.normal(size=lead + (h_kv, n_k, d))
        return q, k, gen.normal(size=lead + (h_kv, n_k, d))

    return [
        Case("H=4 query heads sharing H_kv=2 key/value heads, N=5, d=8", qkv((), 4, 2, 5, 5, 8)),
        Case("multi-query attention: H=4 query heads, one key/value head", qkv((), 4, 1, 5, 5, 8)),
        Case("causal=True, H=6 query heads, H_kv=3, N=7", qkv((), 6, 3, 7, 7, 4), {"causal": True}),
        Case(
            "causal with 2 queries and 5 keys: query i sees keys j <= i + 3 (bottom-right aligned)",
            qkv((), 4, 2, 2, 5, 8, gen=extra),
            {"causal": True},
        ),
        Case("H_kv = H = 3 (plain multi-head attention)", qkv((), 3, 3, 4, 4, 5), hidden=True),
        Case(
            "a batch of 2, H=8, H_kv=2, N=6, causal",
            qkv((2,), 8, 2, 6, 6, 4),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "causal with 3 queries and 7 keys (bottom-right aligned, as after a KV cache)",
            qkv((), 4, 2, 3, 7, 8),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "large scores (q and k scaled by 10)", qkv((), 4, 2, 5, 5, 8, scale=10.0), hidden=True
        ),
        Case(
            "float32 inputs",
            tuple(a.astype(np.float32) for a in qkv((2,), 6, 2, 5, 5, 8)),
            hidden=True,
            rtol=1e-4,
            atol=1e-6,
        ),
    ]


def _gqa(q, k, v, causal=False, *, kv_index=None, scale=True, causal_fn=None, use_causal=True):
    """Grouped-query attention with one mistake switched on; kv_index(h, H, H_kv) picks the kv head."""
    n_heads, n_kv = q.shape[-3], k.shape[-3]
    if kv_index is None:

        def kv_index(h, n_heads, n_kv):
            return h // (n_heads // n_kv)

    heads = [kv_index(h, n_heads, n_kv) for h in range(n_heads)]
    k, v = np.take(k, heads, axis=-3), np.take(v, heads, axis=-3)
    scores = q @ np.swapaxes(k, -1, -2)
    if scale:
        scores = scores / np.sqrt(q.shape[-1])
    if causal and use_causal:
        mask = (causal_fn or attnlab.causal_mask)(q.shape[-2], k.shape[-2])
        scores = np.where(mask, scores, -np.inf)
    return attnlab.softmax(scores, axis=-1) @ v


def _gqa_mutant(**mistake):
    return lambda q, k, v, causal=False: _gqa(q, k, v, causal, **mistake)


register(
    Exercise(
        name="grouped_query_attention",
        reference=attnlab.grouped_query_attention,
        points=3,
        cases=_gqa_cases,
        description="H query heads share H_kv key/value heads: head h reads kv head h // (H // H_kv)",
        mutants=[
            Mutant(
                "heads mapped with h % H_kv",
                _gqa_mutant(kv_index=lambda h, n, n_kv: h % n_kv),
                "query heads are dealt to key/value heads round-robin (h % H_kv, np.tile). "
                "Consecutive query heads share a kv head: head h uses kv head h // (H // H_kv) "
                "(np.repeat(k, H // H_kv, axis=-3)).",
            ),
            Mutant(
                "group size taken as H_kv",
                _gqa_mutant(kv_index=lambda h, n, n_kv: h // n_kv),
                "each kv head serves H // H_kv query heads (the group size), so head h uses kv "
                "head h // (H // H_kv), not h // H_kv.",
            ),
            Mutant(
                "every head reads kv head 0",
                _gqa_mutant(kv_index=lambda h, n, n_kv: 0),
                "every query head reads key/value head 0: with H_kv > 1 each group of "
                "H // H_kv query heads has its own kv head.",
            ),
            Mutant(
                "missing 1/sqrt(d)",
                _gqa_mutant(scale=False),
                "the scores are not scaled: divide q @ k^T by sqrt(d_k), d_k = q.shape[-1].",
            ),
            Mutant(
                "causal ignored",
                _gqa_mutant(use_causal=False),
                "causal=True is ignored: hide future keys with attnlab.causal_mask(N_q, N_k) "
                "before the softmax.",
            ),
            Mutant(
                "causal mask top-left aligned",
                _gqa_mutant(causal_fn=lambda n_q, n_k: np.tril(np.ones((n_q, n_k), dtype=bool))),
                "causal mask aligned top-left: with fewer queries than keys, query i may see "
                "keys j <= i + (N_k - N_q); use attnlab.causal_mask(N_q, N_k).",
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


def memory_limited(fn):
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


def _flash(
    q,
    k,
    v,
    causal=False,
    block_size=64,
    *,
    rescale_acc=True,
    rescale_l=True,
    divide=True,
    key_end="last row",
    subtract_max=True,
    scale=True,
    top_left=False,
    guard_empty=True,
):
    """Tiled attention with one mistake switched on by a keyword (the mutants below)."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    n_q, n_k, block = q.shape[-2], k.shape[-2], block_size
    offset = 0 if top_left else n_k - n_q
    out = np.zeros(q.shape[:-1] + (v.shape[-1],))
    for r0 in range(0, n_q, block):
        r1 = min(r0 + block, n_q)
        rows = np.arange(r0, r1)
        m = np.full(q.shape[:-2] + (r1 - r0,), -np.inf)
        l = np.zeros_like(m)
        acc = np.zeros(m.shape + (v.shape[-1],))
        last_row = {"last row": r1 - 1, "first row": r0, "one short": r1 - 2}[key_end]
        end = max(0, min(n_k, last_row + offset + 1)) if causal else n_k
        for c0 in range(0, end, block):
            c1 = min(c0 + block, n_k)
            s = q[..., r0:r1, :] @ np.swapaxes(k[..., c0:c1, :], -1, -2)
            if scale:
                s = s / np.sqrt(q.shape[-1])
            if causal:
                s = np.where(np.arange(c0, c1)[None, :] <= rows[:, None] + offset, s, -np.inf)
            if not subtract_max:
                p = np.exp(s)
                l, acc = l + p.sum(-1), acc + p @ v[..., c0:c1, :]
                continue
            m_new = np.maximum(m, s.max(-1))
            shift = np.where(np.isneginf(m_new), 0.0, m_new) if guard_empty else m_new
            alpha = np.exp(m - shift)
            p = np.exp(s - shift[..., None])
            l = (l * alpha if rescale_l else l) + p.sum(-1)
            acc = (acc * alpha[..., None] if rescale_acc else acc) + p @ v[..., c0:c1, :]
            m = m_new
        if not divide:
            out[..., r0:r1, :] = acc
        elif guard_empty:
            out[..., r0:r1, :] = np.divide(
                acc, l[..., None], out=np.zeros_like(acc), where=l[..., None] > 0
            )
        else:
            out[..., r0:r1, :] = acc / l[..., None]
    return out


def _flash_mutant(**mistake):
    return lambda q, k, v, causal=False, block_size=64: _flash(
        q, k, v, causal, block_size, **mistake
    )


def _flash_full_matrix(q, k, v, causal=False, block_size=64):
    return attnlab.scaled_dot_product_attention(q, k, v, causal=causal)[0]


register(
    Exercise(
        name="flash_attention_numpy",
        reference=attnlab.flash_attention_numpy,
        points=4,
        cases=_flash_cases,
        description="attention tile by tile with an online softmax, never building (Nq, Nk)",
        mutants=[
            Mutant(
                "tile merge without rescale",
                _flash_mutant(rescale_acc=False),
                "acc is not rescaled when the running maximum grows: before adding p @ v_tile, "
                "multiply the old acc by alpha = exp(m_old - m_new), like l.",
            ),
            Mutant(
                "l not rescaled",
                _flash_mutant(rescale_l=False),
                "the running sum l is not rescaled when the maximum grows: "
                "l = l * exp(m_old - m_new) + p.sum(-1).",
            ),
            Mutant(
                "missing final division by l",
                _flash_mutant(divide=False),
                "the output is acc, the unnormalised sum: divide by l at the end of each query "
                "block (out = acc / l[..., None]).",
            ),
            Mutant(
                "no maximum subtracted",
                _flash_mutant(subtract_max=False),
                "exp of raw scores overflows for large scores: keep the running maximum m and "
                "compute exp(s - m_new), rescaling the old state by exp(m_old - m_new).",
            ),
            Mutant(
                "missing 1/sqrt(d)",
                _flash_mutant(scale=False),
                "the scores are not scaled: divide each q_tile @ k_tile^T by sqrt(d_k).",
            ),
            Mutant(
                "causal block skipping uses the first row",
                _flash_mutant(key_end="first row"),
                "causal block skipping stops too early: a query block must visit every key "
                "block its LAST row can see, keys j <= (r1 - 1) + (Nk - Nq).",
            ),
            Mutant(
                "causal block skipping off by one",
                _flash_mutant(key_end="one short"),
                "causal block skipping is off by one: the last visible key of a query block is "
                "j = (r1 - 1) + (Nk - Nq), so loop over key blocks starting below r1 + (Nk - Nq).",
            ),
            Mutant(
                "causal mask top-left aligned",
                _flash_mutant(top_left=True),
                "causal mask aligned top-left: with Nq != Nk, query i sees keys "
                "j <= i + (Nk - Nq) (bottom-right, as attnlab.causal_mask).",
            ),
            Mutant(
                "NaN for queries that see no key",
                _flash_mutant(guard_empty=False),
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

# ================================================================ Triton inner loop

_TRITON_HINT = (
    "Install it with pip install 'attnlab[triton]' (Linux; it runs on a CPU through Triton's "
    "interpreter), restart the kernel and run the notebook again."
)


class TritonNotInstalled(RuntimeError):
    """Raised by forward_with_inner when triton cannot be imported: the exercise is not attempted."""


def _triton_kernels():
    """attnlab's kernel module; without a GPU, Triton's interpreter unless triton was imported already.

    The interpreter must be chosen before triton is first imported (its own library of
    @triton.jit functions is built then), so a notebook sets TRITON_INTERPRET itself, first thing.
    """
    import torch

    if "triton" not in sys.modules and not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
    try:
        import triton  # noqa: F401
    except ImportError:
        raise TritonNotInstalled(
            f"Triton is not installed, so this exercise is not attempted (0 points). {_TRITON_HINT}"
        ) from None
    return attnlab.load_triton_kernels()


def _function_source(fn):
    """The source of a (possibly @triton.jit) function from its `def` line, or None."""
    fn = getattr(fn, "fn", fn)
    try:
        lines = textwrap.dedent(inspect.getsource(fn)).splitlines(keepends=True)
    except (OSError, TypeError):
        return None
    for i, line in enumerate(lines):
        if line.startswith("def "):
            return "".join(lines[i:])
    return None


class _TritonForward:
    """NumPy (out, lse) of attnlab.flash_attention_triton_forward with a given inner loop.

    Pickles as the inner function's source, which is compiled again with triton.jit where
    it is unpickled (the clean grading process), with tl, triton, load_tile and visible in scope.
    """

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(getattr(inner, "fn", inner), "__name__", "inner")
        self.module = getattr(getattr(inner, "fn", inner), "__module__", None)
        self.source = _function_source(inner)

    def __getstate__(self):
        return {"name": self.name, "module": self.module, "source": self.source}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.inner = None

    def _jitted(self, kernels):
        if self.module == kernels.__name__:
            raise ValueError("this is attnlab's own inner loop: write yours in the exercise cell")
        if self.inner is not None:
            return self.inner
        if self.source is None:
            raise ValueError(f"the source of {self.name} could not be read, so it cannot be graded")
        import triton
        import triton.language as tl

        filename = f"<your {self.name}>"
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        scope = {
            "triton": triton,
            "tl": tl,
            "load_tile": kernels.load_tile,
            "visible": kernels.visible,
            "score_block": kernels.score_block,
        }
        exec(compile(self.source, filename, "exec"), scope)  # the learner's own code
        self.inner = triton.jit(scope[self.name])
        return self.inner

    def __call__(self, q, k, v, causal=False, sm_scale=None):
        import torch

        kernels = _triton_kernels()
        inner = self._jitted(kernels)
        q, k, v = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (q, k, v))
        device = "cpu" if kernels.INTERPRET else "cuda"
        try:
            out, lse = attnlab.flash_attention_triton_forward(
                q.to(device),
                k.to(device),
                v.to(device),
                causal=causal,
                sm_scale=sm_scale,
                inner=inner,
            )
        except Exception as exc:
            if "NotImplementedError" in f"{type(exc).__name__}: {exc}":
                raise NotImplementedError() from None
            raise
        return out.cpu().numpy(), lse.cpu().numpy()


def forward_with_inner(inner):
    """A NumPy-in, NumPy-out attnlab.flash_attention_triton_forward that uses `inner`
    (a @triton.jit function with the signature of attnlab.flash.triton_kernels.attn_fwd_inner)
    as its inner loop over key/value blocks. Returns (out, lse) like the library's forward."""
    return _TritonForward(inner)


def _sdpa_with_lse(q, k, v, causal=False, sm_scale=None, inner=None):
    """(out, lse) from torch's SDPA in float64; rows that see no key give 0 and -inf."""
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(np.asarray(a, dtype=np.float64)) for a in (q, k, v))
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
    scores = q @ k.transpose(-1, -2) * scale
    mask = None
    if causal:
        mask = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=n_k - n_q)
        scores = scores.masked_fill(~mask, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    lse = torch.logsumexp(scores, dim=-1)
    out = torch.where(torch.isneginf(lse)[..., None], 0.0, out)
    return out.numpy(), lse.numpy()


_sdpa_with_lse.__signature__ = inspect.signature(attnlab.flash_attention_triton_forward)


def _triton_cases():
    rng = np.random.default_rng(43)
    extra = np.random.default_rng(
        143
    )  # the visible cases added later: the hidden inputs stay as they were

    def qkv(b, h, n_q, n_k, d, scale=1.0, gen=None):
        gen = gen or rng

        def normal(n):
            return (scale * gen.normal(size=(b, h, n, d))).astype(np.float32)

        return normal(n_q), normal(n_k), gen.normal(size=(b, h, n_k, d)).astype(np.float32)

    return [
        Case(
            "B=1, H=2, 19 queries and keys, d=16 (two key blocks of 16, the second partial)",
            qkv(1, 2, 19, 19, 16),
        ),
        Case("causal=True, B=2, H=1, 19 tokens, d=16", qkv(2, 1, 19, 19, 16), {"causal": True}),
        Case(
            "causal, 20 queries and 7 keys: the first 13 queries see no key (out 0, lse -inf)",
            qkv(1, 1, 20, 7, 16, gen=extra),
            {"causal": True},
        ),
        Case(
            "causal, 23 queries and 9 keys: the first 14 queries see no key (out 0, lse -inf)",
            qkv(1, 1, 23, 9, 16),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "causal decoding: 1 query and 21 keys",
            qkv(1, 2, 1, 21, 16),
            {"causal": True},
            hidden=True,
        ),
        Case(
            "d=24 (not a power of two), 33 queries and 20 keys", qkv(1, 1, 33, 20, 24), hidden=True
        ),
        Case(
            "larger scores (q and k scaled by 3), causal",
            qkv(1, 1, 18, 18, 16, scale=3.0),
            {"causal": True},
            hidden=True,
        ),
    ]


_TRITON_MUTANTS = {}


def _build_triton_mutants():
    """The catalogued wrong inner loops, compiled on first use (triton is imported only then)."""
    global triton, tl, score_block  # the kernels below read these as globals
    if _TRITON_MUTANTS:
        return _TRITON_MUTANTS
    kernels = _triton_kernels()
    import triton
    import triton.language as tl

    score_block = (
        kernels.score_block
    )  # loads a key/value block and scores it, as the library's loop

    @triton.jit
    def no_rescale(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        lo,
        hi,
        n_k,
        causal_offset,
        qk_scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CAUSAL: tl.constexpr,
        MASKED: tl.constexpr,
    ):
        for start_n in range(lo, hi, BLOCK_N):
            s, v = score_block(
                q,
                K,
                V,
                stride_kn,
                stride_vn,
                offs_m,
                start_n,
                n_k,
                causal_offset,
                qk_scale,
                HEAD_DIM,
                BLOCK_N,
                BLOCK_D,
                CAUSAL,
                MASKED,
            )
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_shift)
            p = tl.exp2(s - m_shift[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc + tl.dot(p.to(v.dtype), v)  # mistake: acc not rescaled by alpha
            m_i = m_new
        return acc, l_i, m_i

    @triton.jit
    def l_not_rescaled(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        lo,
        hi,
        n_k,
        causal_offset,
        qk_scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CAUSAL: tl.constexpr,
        MASKED: tl.constexpr,
    ):
        for start_n in range(lo, hi, BLOCK_N):
            s, v = score_block(
                q,
                K,
                V,
                stride_kn,
                stride_vn,
                offs_m,
                start_n,
                n_k,
                causal_offset,
                qk_scale,
                HEAD_DIM,
                BLOCK_N,
                BLOCK_D,
                CAUSAL,
                MASKED,
            )
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_shift)
            p = tl.exp2(s - m_shift[:, None])
            l_i = l_i + tl.sum(p, 1)  # mistake: l not rescaled by alpha
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        return acc, l_i, m_i

    @triton.jit
    def natural_exp(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        lo,
        hi,
        n_k,
        causal_offset,
        qk_scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CAUSAL: tl.constexpr,
        MASKED: tl.constexpr,
    ):
        for start_n in range(lo, hi, BLOCK_N):
            s, v = score_block(
                q,
                K,
                V,
                stride_kn,
                stride_vn,
                offs_m,
                start_n,
                n_k,
                causal_offset,
                qk_scale,
                HEAD_DIM,
                BLOCK_N,
                BLOCK_D,
                CAUSAL,
                MASKED,
            )
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp(m_i - m_shift)  # mistake: exp, but the scores are in log2 units
            p = tl.exp(s - m_shift[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        return acc, l_i, m_i

    @triton.jit
    def no_empty_guard(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        lo,
        hi,
        n_k,
        causal_offset,
        qk_scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CAUSAL: tl.constexpr,
        MASKED: tl.constexpr,
    ):
        for start_n in range(lo, hi, BLOCK_N):
            s, v = score_block(
                q,
                K,
                V,
                stride_kn,
                stride_vn,
                offs_m,
                start_n,
                n_k,
                causal_offset,
                qk_scale,
                HEAD_DIM,
                BLOCK_N,
                BLOCK_D,
                CAUSAL,
                MASKED,
            )
            m_new = tl.maximum(m_i, tl.max(s, 1))
            alpha = tl.exp2(m_i - m_new)  # mistake: -inf - (-inf) = NaN for a row with no key yet
            p = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        return acc, l_i, m_i

    @triton.jit
    def m_not_updated(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        lo,
        hi,
        n_k,
        causal_offset,
        qk_scale,
        HEAD_DIM: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr,
        CAUSAL: tl.constexpr,
        MASKED: tl.constexpr,
    ):
        for start_n in range(lo, hi, BLOCK_N):
            s, v = score_block(
                q,
                K,
                V,
                stride_kn,
                stride_vn,
                offs_m,
                start_n,
                n_k,
                causal_offset,
                qk_scale,
                HEAD_DIM,
                BLOCK_N,
                BLOCK_D,
                CAUSAL,
                MASKED,
            )
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_shift)
            p = tl.exp2(s - m_shift[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            # mistake: m_i = m_new is missing, so the state forgets its maximum
        return acc, l_i, m_i

    _TRITON_MUTANTS.update(
        no_rescale=no_rescale,
        l_not_rescaled=l_not_rescaled,
        natural_exp=natural_exp,
        no_empty_guard=no_empty_guard,
        m_not_updated=m_not_updated,
    )
    return _TRITON_MUTANTS


def _triton_mutant(name):
    def wrong(q, k, v, causal=False, sm_scale=None):
        try:
            inner = _build_triton_mutants()[name]
            return _TritonForward(inner)(q, k, v, causal=causal, sm_scale=sm_scale)
        except TritonNotInstalled:  # not the learner's error message, so no hint is matched to it
            raise RuntimeError("the catalogued mistakes of this exercise need Triton") from None

    return wrong


register(
    Exercise(
        name="flash_attention_triton_forward",
        reference=_sdpa_with_lse,
        # The reference is torch's SDPA (independent of attnlab); the exercise is named after
        # the attnlab function whose inner loop the learner writes.
        reference_name="torch.nn.functional.scaled_dot_product_attention",
        points=4,
        cases=_triton_cases,
        rtol=1e-4,
        atol=2e-5,
        timeout_s=60.0,
        description="the inner loop of attnlab's Triton FlashAttention forward, checked through "
        "the library's kernel against torch SDPA: returns (out, lse)",
        mutants=[
            Mutant(
                "tile merge without rescale",
                _triton_mutant("no_rescale"),
                "acc is not rescaled when the running maximum grows: "
                "acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v).",
            ),
            Mutant(
                "l not rescaled",
                _triton_mutant("l_not_rescaled"),
                "the running sum is not rescaled: l_i = l_i * alpha + tl.sum(p, 1).",
            ),
            Mutant(
                "natural exponential on log2 scores",
                _triton_mutant("natural_exp"),
                "the scores s are in log2 units (qk_scale includes log2(e)), so use tl.exp2, "
                "not tl.exp, for both alpha and p.",
            ),
            Mutant(
                "NaN for queries that see no key",
                _triton_mutant("no_empty_guard"),
                "a row that has seen no key keeps m = -inf and exp2(-inf - (-inf)) is NaN: "
                "subtract m_shift = tl.where(m_new == float('-inf'), 0.0, m_new) instead of m_new.",
            ),
            Mutant(
                "running maximum not updated",
                _triton_mutant("m_not_updated"),
                "m_i is never updated: end each block with m_i = m_new, or the next block "
                "rescales the state with a stale maximum.",
            ),
        ],
    )
)

# ================================================================ parallel_scan

LOOP_CHECK_MIN_LENGTH = 4096  # the step count is checked for sequences at least this long


class TimeLoopError(Exception):
    """parallel_scan executed about one Python step per time step: a loop over time."""


class _LoopLimited(_Wrapped):
    """parallel_scan that may execute at most L / 4 Python lines on a sequence of length L."""

    exercise = "parallel_scan"

    def __call__(self, a, b, *args, **kwargs):
        self._refuse_the_library()
        length = np.shape(a)[-1] if np.ndim(a) else 0
        if length < LOOP_CHECK_MIN_LENGTH:
            return self.fn(a, b, *args, **kwargs)
        limit = length // 4
        count = 0

        def tracer(frame, event, arg):
            nonlocal count
            count += 1
            if count > limit:
                raise TimeLoopError(
                    f"on a sequence of {length} time steps your function ran more than {limit} "
                    "Python steps: that is a loop over time. Combine all positions at once, "
                    "log2(L) times: position t with position t - offset, offset = 1, 2, 4, ..."
                )
            return tracer

        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            return self.fn(a, b, *args, **kwargs)
        finally:
            sys.settrace(previous)


def loop_limited(fn):
    """fn (a parallel_scan) that fails with TimeLoopError if, on a long sequence, it executes
    about one Python line per time step or more (counted with sys.settrace)."""
    return _LoopLimited(fn)


def _scan_cases():
    rng = np.random.default_rng(44)
    long = 1 << 16
    restarts = rng.uniform(0.3, 0.9, size=(2, 15))
    restarts[:, [3, 8, 9]] = 0.0
    return [
        Case(
            "a = 0.5 and b = 1 at each of 8 steps (h approaches 2)", (np.full(8, 0.5), np.ones(8))
        ),
        Case(
            "random a, b of shape (3, 11): three sequences of 11 steps",
            (rng.uniform(-1, 1, (3, 11)), rng.normal(size=(3, 11))),
        ),
        Case("a = 1: h is the running sum of b (10 steps)", (np.ones(10), rng.normal(size=10))),
        Case(
            f"a long sequence of {long} steps (checked: no Python loop over time)",
            (rng.uniform(0.5, 1.0, long), rng.normal(size=long)),
        ),
        Case("a single step (L = 1)", (np.array([0.7]), np.array([2.0])), hidden=True),
        Case(
            "a = 0 at steps 3, 8 and 9: the state restarts there",
            (restarts, rng.normal(size=(2, 15))),
            hidden=True,
        ),
        Case(
            "a batch (2, 3) of 13 steps with a in (-1, 1)",
            (rng.uniform(-1, 1, (2, 3, 13)), rng.normal(size=(2, 3, 13))),
            hidden=True,
        ),
        Case(
            "a = 0.999 over 200 steps (slow decay)",
            (np.full(200, 0.999), rng.normal(size=200)),
            hidden=True,
        ),
        Case(
            "float32 inputs, 3 x 33 steps",
            (
                rng.uniform(0, 1, (3, 33)).astype(np.float32),
                rng.normal(size=(3, 33)).astype(np.float32),
            ),
            hidden=True,
            rtol=1e-4,
            atol=1e-5,
        ),
    ]


def _scan(a, b, *, order="correct", update_a=True, a_first=False):
    """Hillis-Steele scan with one mistake switched on by a keyword."""
    A, H = np.array(a, dtype=float), np.array(b, dtype=float)
    offset = 1
    while offset < A.shape[-1]:
        A_prev, H_prev = A[..., :-offset], H[..., :-offset]
        A_new, H_new = A.copy(), H.copy()
        if update_a:
            A_new[..., offset:] = A[..., offset:] * A_prev
        if a_first:  # the products are updated first and then used for h
            A, A_prev = A_new, A_new[..., :-offset]
        if order == "correct":  # earlier window first, then the later one
            H_new[..., offset:] = A[..., offset:] * H_prev + H[..., offset:]
        else:  # the later window applied first
            H_new[..., offset:] = A_prev * H[..., offset:] + H_prev
        A, H = A_new, H_new
        offset *= 2
    return H


def _scan_exclusive(a, b):
    h = attnlab.parallel_scan(a, b)
    return np.concatenate([np.zeros_like(h[..., :1]), h[..., :-1]], axis=-1)


def _scan_cumprod(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    prod = np.cumprod(a, axis=-1)
    return prod * np.cumsum(b / prod, axis=-1)


register(
    Exercise(
        name="parallel_scan",
        reference=attnlab.parallel_scan,
        points=3,
        cases=_scan_cases,
        description="h_t = a_t h_{t-1} + b_t by a log-step associative scan (no loop over time)",
        mutants=[
            Mutant(
                "operators composed in the wrong order",
                lambda a, b: _scan(a, b, order="reversed"),
                "the two windows are composed in the wrong order: the earlier window (at "
                "t - offset) acts first, so H[t] = A[t] * H[t - offset] + H[t], not "
                "A[t - offset] * H[t] + H[t - offset].",
            ),
            Mutant(
                "exclusive instead of inclusive",
                _scan_exclusive,
                "your h is shifted by one step (an exclusive scan): h_t must include step t "
                "itself, h_0 = b_0, not 0.",
            ),
            Mutant(
                "products of a not accumulated",
                lambda a, b: _scan(a, b, update_a=False),
                "the a-part of each window is not updated: after combining, A[t] must become "
                "A[t] * A[t - offset], the product of a over the whole window.",
            ),
            Mutant(
                "a updated before h uses it",
                lambda a, b: _scan(a, b, a_first=True),
                "A is overwritten before H is computed: compute the new H from the A of the "
                "previous round (use copies, or update H first).",
            ),
            Mutant(
                "divided by the cumulative product",
                _scan_cumprod,
                "h_t = P_t * cumsum(b / P) with P = cumprod(a) divides by zero when some a_t = 0 "
                "(and loses precision as P shrinks): combine (a, b) pairs instead.",
            ),
            Mutant(
                "a Python loop over time",
                loop_limited(attnlab.scan_loop),
                "a loop over time steps is the sequential recurrence, not a parallel scan: use "
                "log2(L) vectorised rounds that combine position t with position t - offset.",
            ),
        ],
    )
)
