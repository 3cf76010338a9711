"""FlashAttention-2 backward kernels in Triton: D = rowsum(dO * O), then dK, dV and dQ.

Imported (after `attnlab.flash.triton_kernels`, whose INTERPRET mode it shares) by the
wrappers in `attnlab.flash.triton_attention`. The layout, the log2 units of the scores and
the split of each loop into unmasked and MASKED blocks are those of the forward kernel in
triton_kernels, and the tile helpers come from there: a @triton.jit function calls another
through this module's globals, so importing them by name is enough.
"""

import triton
import triton.language as tl

from .triton_kernels import LOG2E, load_tile, store_tile, visible

__all__ = ["attn_bwd_dkdv_kernel", "attn_bwd_dq_kernel", "attn_bwd_preprocess_kernel"]


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
