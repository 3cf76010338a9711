"""Mamba's selective scan in torch, sequential (the reference loop) and parallel (chunked).

For every channel d of the inner width and every state index n,
    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,      y_t = C_t . h_t + D u_t
(Gu & Dao 2023). The NumPy reference is attnlab.selective_scan; the Mamba block and language
model that call these scans are in attnlab.mamba.
"""

from __future__ import annotations

import math

import torch

__all__ = ["selective_scan_torch"]

SCAN_MODES = ("sequential", "parallel")


def _check_scan_args(u, delta, A, B, C, D, initial_state):
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(t).__name__}")
    if u.dim() != 3:
        raise ValueError(f"u must have shape (batch, d_inner, L), got {tuple(u.shape)}")
    batch, d_inner, L = u.shape
    if L == 0:
        raise ValueError(f"u must hold at least one time step, got shape {tuple(u.shape)}")
    if delta.shape != u.shape:
        raise ValueError(
            f"delta must have the shape of u {tuple(u.shape)}, got {tuple(delta.shape)}"
        )
    if A.dim() != 2 or A.shape[0] != d_inner:
        raise ValueError(f"A must have shape (d_inner={d_inner}, d_state), got {tuple(A.shape)}")
    d_state = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.shape != (batch, d_state, L):
            raise ValueError(
                f"{name} must have shape (batch, d_state, L) = {(batch, d_state, L)}, got {tuple(t.shape)}"
            )
    if D is not None and D.shape != (d_inner,):
        raise ValueError(f"D must have shape (d_inner,) = ({d_inner},), got {tuple(D.shape)}")
    if initial_state is not None and initial_state.shape != (batch, d_inner, d_state):
        raise ValueError(
            f"initial_state must have shape (batch, d_inner, d_state) = {(batch, d_inner, d_state)}, "
            f"got {tuple(initial_state.shape)}"
        )
    if not bool((A < 0).all()):
        raise ValueError(
            f"A must be strictly negative for a stable scan (Mamba uses A = -exp(A_log)), "
            f"got max {A.max().item():g}"
        )


def _scan_sequential(u, delta, A, B, C, h):
    """The reference algorithm (mamba_ssm's selective_scan_ref, transformers' slow path):
    discretise every step first, then run the recurrence one time step after the other."""
    A_bar = torch.exp(delta[..., None] * A[:, None, :])  # (batch, d_inner, L, d_state)
    Bu_bar = (delta * u)[..., None] * B.transpose(1, 2)[:, None]  # delta_t B_t u_t, same shape
    ys = []
    for t in range(u.shape[-1]):
        h = A_bar[:, :, t] * h + Bu_bar[:, :, t]
        ys.append((h @ C[:, :, t, None])[..., 0])  # C_t . h_t -> (batch, d_inner)
    return torch.stack(ys, dim=-1), h


def _scan_chunk(x, delta, A, B, C, h, y, work):
    """All T steps of one chunk at once, starting from the state h that enters the chunk.

    Time-major: x = delta * u and delta (batch, T, d_inner), B, C (batch, T, d_state),
    h (batch, d_inner, d_state); the outputs are written into y (batch, T, d_inner) and the
    state after the chunk is returned. With the cumulative log-decay
    G_t = A (delta_1 + ... + delta_t), which is <= 0 and decreasing,
        h_t = exp(G_t) * (h + sum_{s<=t} exp(-G_s) delta_s B_s u_s),
    and both running sums over time are one matrix product with a lower-triangular matrix
    of ones: no loop over time. exp(-G_s) grows along the chunk; if the decays inside it
    span more than exp(max_log_range) it could overflow, so such a chunk is split in two
    halves scanned one after the other, down to single steps if need be.
    `work` (see _scan_parallel) holds that limit, each channel's largest |A|, the matrix of
    ones and three (batch, chunk_size, d_inner, d_state) buffers reused by every chunk (None
    when gradients are needed: autograd cannot track writes into given buffers).
    """
    T = x.shape[1]
    if T == 1:  # a single step: the recurrence itself (exp(G) may underflow to 0, no division)
        h = torch.exp(delta[:, 0, :, None] * A) * h + x[:, 0, :, None] * B[:, 0, None, :]
        y[:, 0] = (h @ C[:, 0, :, None])[..., 0]
        return h
    ones_lower = work["ones_lower"][:T, :T]
    S = ones_lower @ delta  # running sums delta_1 + ... + delta_t: (batch, T, d_inner)
    if (S[:, -1] * work["max_rate"]).max().item() > work["max_log_range"]:  # largest -G_T
        half = T // 2
        for part in (slice(0, half), slice(half, T)):
            h = _scan_chunk(
                x[:, part], delta[:, part], A, B[:, part], C[:, part], h, y[:, part], work
            )
        return h
    buffers = work["buffers"]
    decay, W, H = (None, None, None) if buffers is None else (buf[:, :T] for buf in buffers)
    decay = torch.exp_(torch.mul(S[..., None], A, out=decay))  # exp(G_t), in (0, 1]
    W = torch.mul(x[..., None], B[:, :, None, :], out=W)  # delta_s u_s B_s
    W.div_(decay)  # times exp(-G_s)
    W[:, 0] += h  # the entering state joins the first step's term
    H = torch.matmul(ones_lower, W.flatten(2), out=None if H is None else H.flatten(2))
    H = H.view_as(W).mul_(decay)  # prefix sums over s <= t, times exp(G_t): H[:, t] = h_t
    y[:] = torch.einsum("btdn,btn->btd", H, C)  # y_t = C_t . h_t
    return H[:, -1].clone()


def _scan_parallel(u, delta, A, B, C, h, chunk_size):
    """Chunked scan: inside a chunk every step at once (_scan_chunk), chunks one after another.

    Work stays O(L d_inner d_state) like the loop, but each chunk is a few large vectorised
    operations and two matrix products on cache-sized buffers (reused: no allocation per
    chunk) instead of chunk_size steps of small ones; nothing of size (L, d_inner, d_state)
    is ever stored.
    """
    x = (delta * u).transpose(1, 2).contiguous()  # time-major (batch, L, d_inner)
    delta = delta.transpose(1, 2).contiguous()
    B = B.transpose(1, 2).contiguous()  # (batch, L, d_state)
    C = C.transpose(1, 2).contiguous()
    batch, L, d_inner = x.shape
    T = min(chunk_size, L)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, delta, A, B, C, h))
    work = {
        "max_log_range": 0.45 * math.log(torch.finfo(x.dtype).max),  # ~40 float32, ~319 float64
        "max_rate": -A.min(dim=-1).values,  # A < 0: the fastest decay of each channel
        "ones_lower": torch.ones(T, T, dtype=x.dtype, device=x.device).tril_(),
        "buffers": None
        if needs_grad
        else [x.new_empty(batch, T, d_inner, A.shape[1]) for _ in range(3)],
    }
    y = x.new_empty(batch, L, d_inner)
    for start in range(0, L, T):
        part = slice(start, start + T)
        h = _scan_chunk(x[:, part], delta[:, part], A, B[:, part], C[:, part], h, y[:, part], work)
    return y.transpose(1, 2), h


def selective_scan_torch(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    mode: str = "parallel",
    chunk_size: int = 16,
    initial_state: torch.Tensor | None = None,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Mamba's selective scan in torch; the same maths as attnlab.selective_scan (NumPy).

    u, delta: (batch, d_inner, L); A: (d_inner, d_state) < 0; B, C: (batch, d_state, L);
    D: (d_inner,) skip. mode "sequential" is the reference loop over time (as in mamba_ssm's
    selective_scan_ref); "parallel" scans chunks of chunk_size steps at once with cumulative
    log-decays and a triangular matrix product (see _scan_chunk). Both agree to float32
    rounding. initial_state (batch, d_inner, d_state) continues a previous scan;
    return_last_state=True also returns h_L for recurrent decoding. Returns y (batch, d_inner, L).
    """
    _check_scan_args(u, delta, A, B, C, D, initial_state)
    if mode not in SCAN_MODES:
        raise ValueError(f"mode must be one of {SCAN_MODES}, got {mode!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    batch, d_inner, _ = u.shape
    dtype = torch.promote_types(u.dtype, A.dtype)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    if initial_state is None:
        h = torch.zeros(batch, d_inner, A.shape[1], dtype=dtype, device=u.device)
    else:
        h = initial_state.to(dtype)
    if mode == "sequential":
        y, h = _scan_sequential(u, delta, A, B, C, h)
    else:
        y, h = _scan_parallel(u, delta, A, B, C, h, chunk_size)
    if D is not None:
        y = y.addcmul_(
            D.to(dtype)[:, None], u
        )  # y + D u, in place: no new (batch, d_inner, L) array
    return (y, h) if return_last_state else y
