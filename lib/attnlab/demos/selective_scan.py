"""Mamba's selective scan: the input-dependent parameters and a loop-based scan to compare
against (Zones 3 and 4)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import ArrayLike

from .._validate import as_float_array

__all__ = ["mamba_selective_inputs", "scan_loop", "selective_scan_with"]


# ============================================================================ Mamba
def mamba_selective_inputs(
    tokens: ArrayLike, d_model: int = 16, d_state: int = 8, vocab_size: int = 16, seed: int = 0
) -> dict:
    """What a (randomly initialised) Mamba block feeds its selective scan for a token sequence.

    tokens: 1-D integer sequence. A fixed random embedding (seeded) maps tokens to
    (1, L, d_model); an attnlab.MambaBlock (seeded) computes u, delta (1, d_inner, L),
    A (d_inner, d_state), B, C (1, d_state, L) and D. Returns them as float64 NumPy arrays,
    plus "torch_out": the block's own scan output y (1, d_inner, L) from
    attnlab.selective_scan_torch, for comparison with the NumPy selective_scan.
    """

    from ..mamba import MambaBlock
    from ..mamba_scan import selective_scan_torch

    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"tokens must be a 1-D integer sequence, got {tokens.dtype} {tokens.shape}"
        )
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(
            f"tokens must lie in [0, vocab_size={vocab_size}), got {tokens.min()}..{tokens.max()}"
        )
    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(vocab_size, d_model, generator=generator, dtype=torch.float64)
    torch.manual_seed(seed)
    block = MambaBlock(d_model=d_model, d_state=d_state).double().eval()
    x = embedding[torch.as_tensor(tokens)][None]  # (1, L, d_model)
    with torch.no_grad():
        s = block.scan_inputs(x)
        y = selective_scan_torch(s["u"], s["delta"], s["A"], s["B"], s["C"], s["D"])
    arrays = {name: s[name].detach().numpy() for name in ("u", "delta", "A", "B", "C", "D")}
    arrays["torch_out"] = y.detach().numpy()
    return arrays


# ============================================================================ scans
def scan_loop(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """h_t = a_t h_{t-1} + b_t along the last axis (h_{-1} = 0), one time step after the other.

    The sequential baseline for attnlab.parallel_scan: L dependent steps, each a small
    vectorised operation over the leading axes.
    """
    a, b = np.broadcast_arrays(as_float_array("a", a), as_float_array("b", b))
    if a.ndim < 1:
        raise ValueError(f"a and b need a time axis (..., L), got shape {a.shape}")
    h = np.zeros(a.shape, dtype=np.result_type(a, b))
    previous = np.zeros(a.shape[:-1], dtype=h.dtype)
    for t in range(a.shape[-1]):
        previous = a[..., t] * previous + b[..., t]
        h[..., t] = previous
    return h


def selective_scan_with(
    scan: Callable[[np.ndarray, np.ndarray], ArrayLike],
    u: ArrayLike,
    delta: ArrayLike,
    A: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    D: ArrayLike | None = None,
) -> np.ndarray:
    """Mamba's selective scan (attnlab.selective_scan) computed by a first-order scan `scan`.

    For each channel d and state n the recurrence h_t = exp(delta_t A_dn) h_{t-1}
    + delta_t B_nt u_t is h_t = a_t h_{t-1} + b_t with a_t = exp(delta_t A_dn) and
    b_t = delta_t B_nt u_t, so scan(a, b) (attnlab.parallel_scan or the learner's) runs every
    (batch, channel, state) sequence at once; then y_t = sum_n C_nt h_t (+ D u_t).
    Shapes as attnlab.selective_scan: u, delta (batch, d_inner, L), A (d_inner, d_state),
    B, C (batch, d_state, L), D (d_inner,).
    """
    u, delta, A, B, C = (
        as_float_array(n, x) for n, x in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C))
    )
    if u.ndim != 3 or delta.shape != u.shape or A.ndim != 2 or B.ndim != 3 or C.shape != B.shape:
        raise ValueError(
            "expected u, delta (batch, d_inner, L), A (d_inner, d_state), B, C (batch, d_state, L); "
            f"got u {u.shape}, delta {delta.shape}, A {A.shape}, B {B.shape}, C {C.shape}"
        )
    a = np.exp(delta[:, :, None, :] * A[None, :, :, None])  # (batch, d_inner, d_state, L)
    b = (delta * u)[:, :, None, :] * B[:, None, :, :]
    h = np.asarray(scan(a, b))
    y = np.einsum("bdnl,bnl->bdl", h, C)
    if D is not None:
        y = y + as_float_array("D", D)[None, :, None] * u
    return y
