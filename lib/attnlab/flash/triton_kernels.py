"""FlashAttention-2 kernels in Triton: forward, and backward for dq, dk, dv.

This module imports triton, so `attnlab` never imports it on its own: the wrappers in
`attnlab.flash.triton_attention` load it on first use. Whether the kernels run natively on a
GPU or in Triton's CPU interpreter is fixed when this module is first imported: set
TRITON_INTERPRET=1 before that to run on CPU.

Layout: q, k, v, out are (B, H, N, d) tensors whose last axis is contiguous; the log-sum-exp
and the backward's row sums D are float32 (B, H, Nq). Inside a kernel a tile of a matrix is
BLOCK_M (queries) or BLOCK_N (keys) rows by BLOCK_D = next power of two >= d columns.
Scores are kept in log2 units (multiplied by log2(e)) so exp() becomes the cheaper exp2().
Causal masks are bottom-right aligned like `attnlab.causal_mask`: query i sees key j iff
j <= i + (Nk - Nq). Each loop is split in two calls: blocks every row of the tile can see
completely (no mask needed, the fast path) and the few blocks on the diagonal or at the
sequence end (MASKED=True).
"""

import os

import triton
import triton.language as tl
from triton.runtime import Autotuner

__all__ = [
    "CONFIGS",
    "INTERPRET",
    "attn_bwd_dkdv_kernel",
    "attn_bwd_dq_kernel",
    "attn_bwd_preprocess_kernel",
    "attn_fwd_inner",
    "attn_fwd_kernel",
    "autotuned",
    "config_class",
    "load_tile",
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


# ----------------------------------------------------------------------------------------
# Backward (FlashAttention-2): D = rowsum(dO * O), then dK, dV per key block and dQ per
# query block, each recomputing P = exp(S - L) tile by tile.
# ----------------------------------------------------------------------------------------
@triton.jit
def attn_bwd_preprocess_kernel(
    Out,
    DO,
    Delta,
    stride_ob,
    stride_oh,
    stride_on,
    stride_dob,
    stride_doh,
    stride_don,
    H,
    N_Q,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """D_i = sum_d dO_id * O_id (float32), the row term of dS = P * (dP - D)."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    o = load_tile(
        Out + b * stride_ob + h * stride_oh, offs_m, stride_on, N_Q, HEAD_DIM, BLOCK_D, True
    )
    do = load_tile(
        DO + b * stride_dob + h * stride_doh, offs_m, stride_don, N_Q, HEAD_DIM, BLOCK_D, True
    )
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(Delta + bh.to(tl.int64) * N_Q + offs_m, delta, mask=offs_m < N_Q)


@triton.jit
def _load_row_stats(Lse, Delta, offs_m, n_q):
    """Log-sum-exp in log2 units and D for query rows offs_m (0 beyond n_q).

    A row with no visible key has L = -inf; every score of that row is masked to -inf, so a
    stand-in of 0 gives P = exp2(-inf) = 0 instead of exp2(-inf + inf) = NaN.
    """
    lse = tl.load(Lse + offs_m, mask=offs_m < n_q, other=0.0)
    lse = tl.where(lse == float("-inf"), 0.0, lse) * LOG2E
    delta = tl.load(Delta + offs_m, mask=offs_m < n_q, other=0.0)
    return lse, delta


@triton.jit
def _attn_bwd_dkdv_inner(
    dk,
    dv,
    k,
    v,
    Q,
    DO,
    Lse,
    Delta,
    stride_qn,
    stride_don,
    offs_n,
    lo,
    hi,
    n_q,
    n_k,
    causal_offset,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    MASKED: tl.constexpr,
):
    """Accumulate dK^T-oriented tiles over query blocks [lo, hi) for one key block.

    Works on transposed tiles (keys x queries) so that dv += P^T dO and dk += dS^T Q are
    plain matrix products. Padded query rows (>= n_q) load q = dO = 0 and add nothing.
    """
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = load_tile(Q, offs_m, stride_qn, n_q, HEAD_DIM, BLOCK_D, True)
        do = load_tile(DO, offs_m, stride_don, n_q, HEAD_DIM, BLOCK_D, True)
        lse, delta = _load_row_stats(Lse, Delta, offs_m, n_q)
        s_t = tl.dot(k, tl.trans(q)) * qk_scale  # (BLOCK_N, BLOCK_M) = S^T, log2 units
        if MASKED:
            keep = visible(offs_m[None, :], offs_n[:, None], n_k, causal_offset, CAUSAL)
            s_t = tl.where(keep, s_t, float("-inf"))
        p_t = tl.exp2(s_t - lse[None, :])  # P^T, already normalised by the saved L
        dv += tl.dot(p_t.to(do.dtype), do)
        dp_t = tl.dot(v, tl.trans(do))  # (dO V^T)^T
        ds_t = p_t * (dp_t - delta[None, :])
        dk += tl.dot(ds_t.to(q.dtype), q)
    return dk, dv


@triton.jit
def attn_bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    DK,
    DV,
    Lse,
    Delta,
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
    stride_dob,
    stride_doh,
    stride_don,
    H,
    N_Q,
    N_K,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: dK, dV for BLOCK_N keys of one (batch, head). Grid (cdiv(Nk, BLOCK_N), B * H).

    dK, dV are contiguous (B, H, Nk, d) like K, V's shape.
    """
    start_n = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    Q += b * stride_qb + h * stride_qh
    K += b * stride_kb + h * stride_kh
    V += b * stride_vb + h * stride_vh
    DO += b * stride_dob + h * stride_doh
    DK += bh.to(tl.int64) * N_K * HEAD_DIM
    DV += bh.to(tl.int64) * N_K * HEAD_DIM
    Lse += bh.to(tl.int64) * N_Q
    Delta += bh.to(tl.int64) * N_Q

    offs_n = start_n + tl.arange(0, BLOCK_N)
    k = load_tile(K, offs_n, stride_kn, N_K, HEAD_DIM, BLOCK_D, True)
    v = load_tile(V, offs_n, stride_vn, N_K, HEAD_DIM, BLOCK_D, True)
    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    qk_scale = sm_scale * LOG2E

    causal_offset = N_K - N_Q
    if CAUSAL:
        # Query i sees key j iff i >= j - causal_offset. lo: first query block that sees the
        # block's first key; full_lo: first query block that sees all of its keys.
        lo = tl.maximum(start_n - causal_offset, 0)
        lo = (lo // BLOCK_M) * BLOCK_M
        full_lo = tl.maximum(start_n + BLOCK_N - 1 - causal_offset, 0)
        full_lo = tl.minimum(((full_lo + BLOCK_M - 1) // BLOCK_M) * BLOCK_M, N_Q)
    else:
        lo = 0
        full_lo = 0
    # Blocks crossing the diagonal, then blocks that see the whole key block. In the
    # unmasked part, keys >= N_K (tail of the last key block) give garbage dK, dV rows, which
    # are never stored.
    dk, dv = _attn_bwd_dkdv_inner(
        dk,
        dv,
        k,
        v,
        Q,
        DO,
        Lse,
        Delta,
        stride_qn,
        stride_don,
        offs_n,
        lo,
        full_lo,
        N_Q,
        N_K,
        causal_offset,
        qk_scale,
        HEAD_DIM,
        BLOCK_M,
        BLOCK_D,
        CAUSAL,
        True,
    )
    dk, dv = _attn_bwd_dkdv_inner(
        dk,
        dv,
        k,
        v,
        Q,
        DO,
        Lse,
        Delta,
        stride_qn,
        stride_don,
        offs_n,
        full_lo,
        N_Q,
        N_Q,
        N_K,
        causal_offset,
        qk_scale,
        HEAD_DIM,
        BLOCK_M,
        BLOCK_D,
        CAUSAL,
        False,
    )
    store_tile(DV, dv, offs_n, HEAD_DIM, N_K, HEAD_DIM, BLOCK_D)
    store_tile(DK, dk * sm_scale, offs_n, HEAD_DIM, N_K, HEAD_DIM, BLOCK_D)


@triton.jit
def _attn_bwd_dq_inner(
    dq,
    q,
    do,
    lse,
    delta,
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
    """Accumulate dQ = sum over key blocks [lo, hi) of dS K for one query tile."""
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = load_tile(K, offs_n, stride_kn, n_k, HEAD_DIM, BLOCK_D, MASKED)
        v = load_tile(V, offs_n, stride_vn, n_k, HEAD_DIM, BLOCK_D, MASKED)
        s = tl.dot(q, tl.trans(k)) * qk_scale
        if MASKED:
            keep = visible(offs_m[:, None], offs_n[None, :], n_k, causal_offset, CAUSAL)
            s = tl.where(keep, s, float("-inf"))
        p = tl.exp2(s - lse[:, None])
        dp = tl.dot(do, tl.trans(v))
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k)
    return dq


@triton.jit
def attn_bwd_dq_kernel(
    Q,
    K,
    V,
    DO,
    DQ,
    Lse,
    Delta,
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
    stride_dob,
    stride_doh,
    stride_don,
    H,
    N_Q,
    N_K,
    HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program: dQ for BLOCK_M queries of one (batch, head). Grid (cdiv(Nq, BLOCK_M), B * H).

    dQ is contiguous (B, H, Nq, d). Key ranges are those of the forward kernel.
    """
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    Q += b * stride_qb + h * stride_qh
    K += b * stride_kb + h * stride_kh
    V += b * stride_vb + h * stride_vh
    DO += b * stride_dob + h * stride_doh
    DQ += bh.to(tl.int64) * N_Q * HEAD_DIM
    Lse += bh.to(tl.int64) * N_Q
    Delta += bh.to(tl.int64) * N_Q

    offs_m = start_m + tl.arange(0, BLOCK_M)
    q = load_tile(Q, offs_m, stride_qn, N_Q, HEAD_DIM, BLOCK_D, True)
    do = load_tile(DO, offs_m, stride_don, N_Q, HEAD_DIM, BLOCK_D, True)
    lse, delta = _load_row_stats(Lse, Delta, offs_m, N_Q)
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    qk_scale = sm_scale * LOG2E

    causal_offset = N_K - N_Q
    if CAUSAL:
        hi = tl.minimum(N_K, tl.maximum(start_m + BLOCK_M + causal_offset, 0))
        full_hi = tl.minimum(N_K, tl.maximum(start_m + 1 + causal_offset, 0))
    else:
        hi = N_K
        full_hi = N_K
    full_hi = (full_hi // BLOCK_N) * BLOCK_N
    dq = _attn_bwd_dq_inner(
        dq,
        q,
        do,
        lse,
        delta,
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
    dq = _attn_bwd_dq_inner(
        dq,
        q,
        do,
        lse,
        delta,
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
    store_tile(DQ, dq * sm_scale, offs_m, HEAD_DIM, N_Q, HEAD_DIM, BLOCK_D)


# ----------------------------------------------------------------------------------------
# GPU autotuning. The interpreter uses one small fixed configuration instead (see
# attnlab.flash.triton_attention), so none of this runs on a CPU.
# ----------------------------------------------------------------------------------------
def _cfg(block_m, block_n, warps, stages):
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps, num_stages=stages
    )


# Candidates per kernel, by head-dim class: "64" for d <= 64, "128" for 64 < d <= 128, and
# "fp32" for float32 inputs (4-byte tiles need half the shared memory per stage). Shapes suit
# Hopper (H100/H200): wgmma works on 64-row warpgroups, so the forward takes 128 query rows
# per program with 64 or 128 keys per step; a 128 x 128 score tile needs 8 warps to stay in
# registers, and at d = 128 a third stage of 128-key K/V tiles would not fit in shared
# memory. The backward follows the FlashAttention-2 split: dK/dV per 64..128-key block
# stepping over 32..64 queries, dQ per 64..128-query block stepping over 32..64 keys.
# Every candidate is compiled for sm_90 in tests/test_flash_triton.py, which checks that it
# fits Hopper's shared memory. Set ATTNLAB_TRITON_AUTOTUNE=wide to search the larger
# space in _WIDE instead (slow: to check on a new GPU that the winners are still listed).
CONFIGS = {
    "fwd": {
        "64": [
            _cfg(128, 64, 4, 3),
            _cfg(128, 64, 4, 4),
            _cfg(128, 128, 8, 3),
            _cfg(128, 128, 8, 4),
        ],
        "128": [
            _cfg(128, 64, 4, 2),
            _cfg(128, 64, 4, 3),
            _cfg(128, 64, 8, 3),
            _cfg(128, 128, 8, 2),
        ],
        "fp32": [_cfg(64, 64, 4, 2), _cfg(128, 32, 4, 2)],
    },
    "dkdv": {
        "64": [_cfg(32, 128, 4, 3), _cfg(64, 128, 8, 3), _cfg(64, 64, 4, 3)],
        "128": [_cfg(32, 128, 4, 2), _cfg(64, 128, 8, 2), _cfg(64, 64, 4, 2)],
        "fp32": [_cfg(32, 64, 4, 2), _cfg(64, 64, 4, 2)],
    },
    "dq": {
        "64": [_cfg(128, 32, 4, 3), _cfg(128, 64, 8, 3), _cfg(64, 64, 4, 3)],
        "128": [_cfg(128, 32, 4, 2), _cfg(128, 64, 8, 2), _cfg(64, 64, 4, 2)],
        "fp32": [_cfg(64, 32, 4, 2), _cfg(64, 64, 4, 2)],
    },
}

_WIDE = {
    kernel: [_cfg(bm, bn, w, s) for bm, bn in pairs for w in (4, 8) for s in (2, 3, 4)]
    for kernel, pairs in (
        ("fwd", [(64, 64), (64, 128), (128, 32), (128, 64), (128, 128)]),
        ("dkdv", [(32, 64), (32, 128), (64, 64), (64, 128)]),
        ("dq", [(64, 32), (64, 64), (128, 32), (128, 64)]),
    )
}


def config_class(head_dim: int, element_size: int) -> str:
    """The CONFIGS class for a head dim and an input element size in bytes."""
    if element_size >= 4:
        return "fp32"
    return "64" if head_dim <= 64 else "128"


def _pruner(kernel: str):
    """early_config_prune for one kernel: keep the candidates of the call's class."""

    def prune(configs, named_args, **kwargs):
        if os.environ.get("ATTNLAB_TRITON_AUTOTUNE", "").lower() == "wide":
            return _WIDE[kernel]
        return CONFIGS[kernel][config_class(kwargs["HEAD_DIM"], named_args["Q"].element_size())]

    return prune


# Tuned again for every new sequence length, head dim, causal flag and dtype (the autotuner
# adds the tensors' dtypes to the key).
_KEY = ["N_Q", "N_K", "HEAD_DIM", "CAUSAL"]


def autotuned() -> tuple[Autotuner, Autotuner, Autotuner]:
    """Autotuned versions of the three main kernels for a GPU: (forward, dkdv, dq).

    Built on demand (never under the interpreter). Each call tries only the CONFIGS
    candidates of its head-dim class. The timings are cached on disk (cache_results=True,
    under TRITON_CACHE_DIR, default ~/.triton/cache), next to the compiled kernels, so a
    later process on the same machine and Triton version skips both compiling and tuning.
    A configuration that does not fit the GPU is skipped by the autotuner.
    """
    global _AUTOTUNED
    if _AUTOTUNED is None:
        kernels = []
        for name, fn in (
            ("fwd", attn_fwd_kernel),
            ("dkdv", attn_bwd_dkdv_kernel),
            ("dq", attn_bwd_dq_kernel),
        ):
            candidates = [c for configs in CONFIGS[name].values() for c in configs]
            kernels.append(
                triton.autotune(
                    candidates + _WIDE[name],
                    key=_KEY,
                    cache_results=True,
                    prune_configs_by={"early_config_prune": _pruner(name)},
                )(fn)
            )
        _AUTOTUNED = tuple(kernels)
    return _AUTOTUNED


_AUTOTUNED = None
