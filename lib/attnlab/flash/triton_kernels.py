"""FlashAttention-2 forward kernel in Triton, and the tile helpers every kernel shares.

This module imports triton, so `attnlab` never imports it on its own: the wrappers in
`attnlab.flash.triton_attention` load it on first use. Whether the kernels run natively on a
GPU or in Triton's CPU interpreter is fixed when this module is first imported: set
TRITON_INTERPRET=1 before that to run on CPU. The backward kernels (dq, dk, dv) are in
`attnlab.flash.triton_backward`, the GPU autotuning configurations in
`attnlab.flash.triton_autotune`; both import the helpers below.

Layout: q, k, v, out are (B, H, N, d) tensors whose last axis is contiguous; the log-sum-exp
and the backward's row sums D are float32 (B, H, Nq). Inside a kernel a tile of a matrix is
BLOCK_M (queries) or BLOCK_N (keys) rows by BLOCK_D = next power of two >= d columns.
Scores are kept in log2 units (multiplied by log2(e)) so exp() becomes the cheaper exp2().
Causal masks are bottom-right aligned like `attnlab.causal_mask`: query i sees key j iff
j <= i + (Nk - Nq). Each loop is split in two calls: blocks every row of the tile can see
completely (no mask needed, the fast path) and the few blocks on the diagonal or at the
sequence end (MASKED=True).
"""

import triton
import triton.language as tl

__all__ = [
    "INTERPRET",
    "LOG2E",
    "attn_fwd_inner",
    "attn_fwd_kernel",
    "load_tile",
    "score_block",
    "store_tile",
    "visible",
]

# True when the kernels below were built for Triton's CPU interpreter (TRITON_INTERPRET=1).
INTERPRET = bool(triton.knobs.runtime.interpret)


def _fix_interpreter_scalar_index() -> bool:
    """Let the interpreter of Triton <= 3.6 use runtime scalars as loop bounds under NumPy >= 2.4.

    The interpreter keeps a scalar (an argument such as N_K, or `hi` computed from it) as a
    NumPy array of shape (1,) and turns it into a Python int with int(array), which NumPy 2.4
    refuses ("only 0-dimensional arrays can be converted to Python scalars"). Every
    `range(lo, hi, BLOCK_N)` with a runtime bound then fails (triton-lang/triton#9171; later
    Triton squeezes the array first). This wraps the interpreter's patching of tl.tensor to
    do the same, and only where a probe shows the bug. Returns True if it patched.
    """
    import operator

    import numpy as np
    from triton.runtime import interpreter

    patch = getattr(interpreter, "_patch_lang_tensor", None)
    if patch is None or getattr(patch, "attnlab_fixed", False):
        return False
    try:  # probe: does __index__ of a scalar tensor work with this Triton and NumPy?
        scope = interpreter._LangPatchScope()
        patch(tl.tensor, scope)
        try:
            handle = interpreter.TensorHandle(np.array([1], dtype=np.int32), tl.int32)
            operator.index(tl.tensor(handle, tl.int32))
            return False
        except TypeError:
            pass
        finally:
            scope.restore()
    except Exception:  # interpreter internals changed: leave them alone
        return False

    def patch_lang_tensor(tensor, scope):
        patch(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    patch_lang_tensor.attnlab_fixed = True
    interpreter._patch_lang_tensor = patch_lang_tensor
    return True


if INTERPRET:
    _fix_interpreter_scalar_index()

# log2(e): exp(x) = exp2(x * log2(e)). Kernels may only read globals declared as constexpr.
LOG2E = tl.constexpr(1.4426950408889634)


# ----------------------------------------------------------------------------------------
# Small helpers shared by every kernel (and by the inner loop a learner writes).
# ----------------------------------------------------------------------------------------
@triton.jit
def load_tile(
    ptr,
    offs_rows,
    stride_row,
    n_rows,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CHECK_ROWS: tl.constexpr,
):
    """Load rows `offs_rows` of an (n_rows, HEAD_DIM) matrix as a (rows, BLOCK_D) tile.

    Columns >= HEAD_DIM and, if CHECK_ROWS, rows >= n_rows read as 0.
    """
    offs_d = tl.arange(0, BLOCK_D)
    ptrs = ptr + offs_rows[:, None] * stride_row + offs_d[None, :]
    if CHECK_ROWS:
        mask = (offs_rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM)
        tile = tl.load(ptrs, mask=mask, other=0.0)
    elif BLOCK_D != HEAD_DIM:
        tile = tl.load(ptrs, mask=offs_d[None, :] < HEAD_DIM, other=0.0)
    else:
        tile = tl.load(ptrs)
    return tile


@triton.jit
def store_tile(
    ptr, tile, offs_rows, stride_row, n_rows, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr
):
    """Store a (rows, BLOCK_D) tile into rows `offs_rows` of an (n_rows, HEAD_DIM) matrix."""
    offs_d = tl.arange(0, BLOCK_D)
    ptrs = ptr + offs_rows[:, None] * stride_row + offs_d[None, :]
    mask = (offs_rows[:, None] < n_rows) & (offs_d[None, :] < HEAD_DIM)
    tl.store(ptrs, tile.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def visible(offs_q, offs_k, n_k, causal_offset, CAUSAL: tl.constexpr):
    """True where query offs_q may attend key offs_k (index arrays that broadcast).

    The key must exist (offs_k < n_k) and, if CAUSAL, offs_k <= offs_q + causal_offset with
    causal_offset = Nk - Nq (bottom-right alignment, as in attnlab.causal_mask).
    """
    ok = offs_k < n_k
    if CAUSAL:
        ok = ok & (offs_k <= offs_q + causal_offset)
    return ok


# ----------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------
@triton.jit
def score_block(
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
    HEAD_DIM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    MASKED: tl.constexpr,
):
    """Load the key/value block at start_n; return its scores s (BLOCK_M, BLOCK_N), in log2
    units with hidden keys at -inf, and its values v (BLOCK_N, BLOCK_D)."""
    offs_n = start_n + tl.arange(0, BLOCK_N)
    k = load_tile(K, offs_n, stride_kn, n_k, HEAD_DIM, BLOCK_D, MASKED)
    v = load_tile(V, offs_n, stride_vn, n_k, HEAD_DIM, BLOCK_D, MASKED)
    s = tl.dot(q, tl.trans(k)) * qk_scale
    if MASKED:
        keep = visible(offs_m[:, None], offs_n[None, :], n_k, causal_offset, CAUSAL)
        s = tl.where(keep, s, float("-inf"))
    return s, v


@triton.jit
def attn_fwd_inner(
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
    """The inner loop of FlashAttention: fold key/value blocks [lo, hi) into the running state.

    acc (BLOCK_M, BLOCK_D) float32: sum of exp2(s - m) v, unnormalised;
    l_i, m_i (BLOCK_M,) float32: running sum of exp2(s - m) and running max of the scores s;
    q (BLOCK_M, BLOCK_D): the query tile; K, V: pointers to this (batch, head)'s keys/values;
    offs_m: the query rows of the tile; qk_scale = sm_scale * log2(e).
    MASKED: these blocks may contain hidden keys (causal diagonal, sequence tail).
    Returns the updated (acc, l_i, m_i): the same merge as attnlab.online_softmax_merge.
    """
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
        # A row that has seen no key yet keeps m = -inf: shift by 0 so exp2 gives 0, not NaN.
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_shift)  # rescales the old state to the new maximum
        p = tl.exp2(s - m_shift[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def attn_fwd_kernel(
    Q,
    K,
    V,
    Out,
    Lse,
    sm_scale,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    stride_ob,
    stride_oh,
    stride_on,
    H,
    N_Q,
    N_K,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    INNER: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: BLOCK_M query rows of one (batch, head). Grid (cdiv(Nq, BLOCK_M), B * H)."""
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    Q += b * stride_qb + h * stride_qh
    K += b * stride_kb + h * stride_kh
    V += b * stride_vb + h * stride_vh
    Out += b * stride_ob + h * stride_oh
    Lse += bh.to(tl.int64) * N_Q

    offs_m = start_m + tl.arange(0, BLOCK_M)
    q = load_tile(Q, offs_m, stride_qn, N_Q, HEAD_DIM, BLOCK_D, True)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    qk_scale = sm_scale * LOG2E

    causal_offset = N_K - N_Q
    if CAUSAL:
        # Keys the last row of the tile can see end at hi; every row sees keys < full_hi.
        hi = tl.minimum(N_K, tl.maximum(start_m + BLOCK_M + causal_offset, 0))
        full_hi = tl.minimum(N_K, tl.maximum(start_m + 1 + causal_offset, 0))
    else:
        hi = N_K
        full_hi = N_K
    full_hi = (full_hi // BLOCK_N) * BLOCK_N  # whole blocks only
    acc, l_i, m_i = INNER(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        0,
        full_hi,
        N_K,
        causal_offset,
        qk_scale,
        HEAD_DIM,
        BLOCK_N,
        BLOCK_D,
        CAUSAL,
        False,
    )
    acc, l_i, m_i = INNER(
        acc,
        l_i,
        m_i,
        q,
        K,
        V,
        stride_kn,
        stride_vn,
        offs_m,
        full_hi,
        hi,
        N_K,
        causal_offset,
        qk_scale,
        HEAD_DIM,
        BLOCK_N,
        BLOCK_D,
        CAUSAL,
        True,
    )

    # A row that saw no key (causal, Nq > Nk) has l = 0: output 0 and log-sum-exp -inf.
    seen = l_i > 0.0
    l_safe = tl.where(seen, l_i, 1.0)
    store_tile(Out, acc / l_safe[:, None], offs_m, stride_on, N_Q, HEAD_DIM, BLOCK_D)
    lse = tl.where(seen, (m_i + tl.log2(l_safe)) / LOG2E, float("-inf"))
    tl.store(Lse + offs_m, lse, mask=offs_m < N_Q)
