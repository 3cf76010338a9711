"""FlashAttention with Triton kernels, callable from torch: forward, backward and autograd.

Tensors are (B, H, N, d) torch tensors: float16, bfloat16 or float32 on a CUDA GPU, or CPU
tensors under Triton's interpreter. Triton is imported only when one of these functions is
called, so `import attnlab` works without it. To run on a CPU, set the environment variable
before triton is first imported:

    import os
    os.environ["TRITON_INTERPRET"] = "1"

The kernels live in `attnlab.flash.triton_kernels` (the forward and the tile helpers),
`attnlab.flash.triton_backward` and `attnlab.flash.triton_autotune`, each readable on its own.
"""

from __future__ import annotations

import importlib
import math
import os
from types import ModuleType
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch.autograd.function import FunctionCtx
    from triton import JITFunction

__all__ = [
    "FlashAttentionTriton",
    "flash_attention_triton",
    "flash_attention_triton_backward",
    "flash_attention_triton_forward",
    "load_triton_kernels",
]

_INSTALL_HINT = (
    "Install it with: pip install 'attnlab[triton]' (Linux; or pip install triton). "
    "To run the kernels on a CPU, set os.environ['TRITON_INTERPRET'] = '1' before "
    "importing triton (first thing in the notebook or script)."
)
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_MAX_HEAD_DIM = 128
# The interpreter runs every program in Python: small tiles keep it quick.
_INTERPRETER_BLOCKS = {"BLOCK_M": 16, "BLOCK_N": 16}


def load_triton_kernels() -> ModuleType:
    """Import and return the kernel module `attnlab.flash.triton_kernels`, checking the setup.

    Raises RuntimeError with what to do when triton is missing, when there is neither a CUDA
    GPU nor TRITON_INTERPRET=1, or when the kernels were already built for the other mode.
    """
    try:
        triton = importlib.import_module("triton")
    except ImportError as err:
        raise RuntimeError(
            f"attnlab's Triton kernels need the triton package. {_INSTALL_HINT}"
        ) from err
    interpret = bool(triton.knobs.runtime.interpret)  # reads TRITON_INTERPRET now
    if not interpret and not torch.cuda.is_available():
        raise RuntimeError(
            "Triton kernels need a CUDA GPU, and none is available. To run them on the CPU "
            "with Triton's interpreter, set os.environ['TRITON_INTERPRET'] = '1' before "
            "importing triton (restart the kernel if it was already imported)."
        )
    kernels = importlib.import_module("attnlab.flash.triton_kernels")
    if interpret != kernels.INTERPRET:
        built = "the CPU interpreter" if kernels.INTERPRET else "the GPU"
        raise RuntimeError(
            f"The Triton kernels were already built for {built} when first imported, and "
            f"TRITON_INTERPRET is now {os.environ.get('TRITON_INTERPRET')!r}. Set "
            "TRITON_INTERPRET before the first use and restart Python to switch modes."
        )
    return kernels


def _check_device(kernels, *tensors) -> None:
    """CUDA tensors for compiled kernels; the interpreter takes any device but has no bfloat16."""
    if kernels.INTERPRET and any(t.dtype == torch.bfloat16 for t in tensors):
        raise TypeError(
            "Triton's CPU interpreter has no bfloat16 (results would be garbage): use float16 "
            "or float32 on the CPU; bfloat16 works on a GPU."
        )
    if not kernels.INTERPRET and not all(t.is_cuda for t in tensors):
        raise RuntimeError(
            "Triton kernels run on CUDA tensors; got a tensor on "
            f"{next(t.device for t in tensors if not t.is_cuda)}. Move them with .cuda(), or "
            "set os.environ['TRITON_INTERPRET'] = '1' before importing triton to use the CPU."
        )


def _check_qkv(q, k, v):
    """Validate (B, H, N, d) tensors q, k, v; returns (B, H, Nq, Nk, d)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, H, N, d), got {tuple(t.shape)}")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.shape != v.shape:
        raise ValueError(
            f"k and v must have the same shape, got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(
            f"q and k must share B, H and d, got q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    batch, heads, n_q, d = q.shape
    n_k = k.shape[2]
    if not 1 <= d <= _MAX_HEAD_DIM:
        raise ValueError(f"head dim d={d} is not supported: need 1 <= d <= {_MAX_HEAD_DIM}")
    if n_q == 0 or n_k == 0:
        raise ValueError(f"sequence lengths must be positive, got Nq={n_q} and Nk={n_k}")
    return batch, heads, n_q, n_k, d


def _block_d(d: int) -> int:
    """Tile width: the next power of two >= d, at least 16 (tl.dot's minimum)."""
    return max(16, 1 << (d - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    """Number of blocks of size b needed to cover a items (ceil(a / b))."""
    return -(-a // b)


def _contiguous_last(t: torch.Tensor) -> torch.Tensor:
    """The kernels need a unit stride along d; other strides are passed to them."""
    return t if t.stride(-1) == 1 else t.contiguous()


def flash_attention_triton_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    sm_scale: float | None = None,
    inner: JITFunction | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashAttention forward with Triton: returns (out, lse).

    q (B, H, Nq, d), k, v (B, H, Nk, d) -> out (B, H, Nq, d) in q's dtype and
    lse (B, H, Nq) float32, the natural-log log-sum-exp of each row's scaled scores
    (-inf for a row with no visible key, whose output is 0). sm_scale defaults to 1/sqrt(d);
    causal masks are bottom-right aligned like attnlab.causal_mask.
    inner: optional @triton.jit function with the signature of
    `attnlab.flash.triton_kernels.attn_fwd_inner`, used as the kernel's inner loop over
    key/value blocks (the course exercise); None uses the library's.
    """
    kernels = load_triton_kernels()
    batch, heads, n_q, n_k, d = _check_qkv(q, k, v)
    _check_device(kernels, q, k, v)
    if inner is None:
        inner = kernels.attn_fwd_inner
    elif not hasattr(inner, "fn") or not callable(inner):
        raise TypeError(
            "inner must be a @triton.jit function with the signature of "
            "attnlab.flash.triton_kernels.attn_fwd_inner, got "
            f"{type(inner).__name__}"
        )
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    q, k, v = (_contiguous_last(t) for t in (q, k, v))
    out = torch.empty_like(q)
    lse = torch.empty((batch, heads, n_q), device=q.device, dtype=torch.float32)
    args = (
        q,
        k,
        v,
        out,
        lse,
        sm_scale,
        *q.stride()[:3],
        *k.stride()[:3],
        *v.stride()[:3],
        *out.stride()[:3],
        heads,
        n_q,
        n_k,
    )
    meta = {"HEAD_DIM": d, "BLOCK_D": _block_d(d), "CAUSAL": bool(causal), "INNER": inner}
    if kernels.INTERPRET:
        grid = (_cdiv(n_q, _INTERPRETER_BLOCKS["BLOCK_M"]), batch * heads)
        kernels.attn_fwd_kernel[grid](*args, **meta, **_INTERPRETER_BLOCKS)
    else:
        from .triton_autotune import autotuned

        fwd = autotuned()[0]
        fwd[lambda cfg: (_cdiv(n_q, cfg["BLOCK_M"]), batch * heads)](*args, **meta)
    return out, lse


def flash_attention_triton_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    dout: torch.Tensor,
    causal: bool = False,
    sm_scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FlashAttention-2 backward with Triton: returns (dq, dk, dv) in q's dtype.

    q, k, v, causal, sm_scale as given to `flash_attention_triton_forward`; out and lse are
    its outputs and dout (B, H, Nq, d) the gradient of the loss with respect to out. One
    kernel computes D = rowsum(dout * out), one dk and dv per key block, one dq per query
    block; both recompute the probabilities P = exp(S - lse) tile by tile.
    """
    kernels = load_triton_kernels()
    from . import triton_backward as backward  # after the checks of load_triton_kernels

    batch, heads, n_q, n_k, d = _check_qkv(q, k, v)
    for name, t in (("out", out), ("dout", dout)):
        if not isinstance(t, torch.Tensor) or t.shape != q.shape:
            raise ValueError(
                f"{name} must be a tensor of q's shape {tuple(q.shape)}, got "
                f"{tuple(getattr(t, 'shape', ()))}"
            )
    if not isinstance(lse, torch.Tensor) or lse.shape != (batch, heads, n_q):
        raise ValueError(
            f"lse must be a tensor of shape {(batch, heads, n_q)}, got "
            f"{tuple(getattr(lse, 'shape', ()))}"
        )
    _check_device(kernels, q, k, v, out, lse, dout)
    sm_scale = 1.0 / math.sqrt(d) if sm_scale is None else float(sm_scale)
    q, k, v, out, dout = (_contiguous_last(t) for t in (q, k, v, out, dout))
    dout = dout.to(q.dtype)
    lse = lse.float().contiguous()
    block_d = _block_d(d)
    bh = batch * heads

    delta = torch.empty_like(lse)
    backward.attn_bwd_preprocess_kernel[(_cdiv(n_q, 64), bh)](
        out,
        dout,
        delta,
        *out.stride()[:3],
        *dout.stride()[:3],
        heads,
        n_q,
        HEAD_DIM=d,
        BLOCK_D=block_d,
        BLOCK_M=64,
    )

    dq = torch.empty((batch, heads, n_q, d), device=q.device, dtype=q.dtype)
    dk = torch.empty((batch, heads, n_k, d), device=q.device, dtype=q.dtype)
    dv = torch.empty_like(dk)
    strides = (*q.stride()[:3], *k.stride()[:3], *v.stride()[:3], *dout.stride()[:3])
    meta = {"HEAD_DIM": d, "BLOCK_D": block_d, "CAUSAL": bool(causal)}
    dkdv_args = (q, k, v, dout, dk, dv, lse, delta, sm_scale, *strides, heads, n_q, n_k)
    dq_args = (q, k, v, dout, dq, lse, delta, sm_scale, *strides, heads, n_q, n_k)
    if kernels.INTERPRET:
        bm, bn = _INTERPRETER_BLOCKS["BLOCK_M"], _INTERPRETER_BLOCKS["BLOCK_N"]
        backward.attn_bwd_dkdv_kernel[(_cdiv(n_k, bn), bh)](
            *dkdv_args, **meta, **_INTERPRETER_BLOCKS
        )
        backward.attn_bwd_dq_kernel[(_cdiv(n_q, bm), bh)](*dq_args, **meta, **_INTERPRETER_BLOCKS)
    else:
        from .triton_autotune import autotuned

        _, dkdv_kernel, dq_kernel = autotuned()
        dkdv_kernel[lambda cfg: (_cdiv(n_k, cfg["BLOCK_N"]), bh)](*dkdv_args, **meta)
        dq_kernel[lambda cfg: (_cdiv(n_q, cfg["BLOCK_M"]), bh)](*dq_args, **meta)
    return dq, dk, dv


class FlashAttentionTriton(torch.autograd.Function):
    """autograd wrapper: forward saves (q, k, v, out, lse), backward runs the Triton backward."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool = False,
        sm_scale: float | None = None,
    ) -> torch.Tensor:
        out, lse = flash_attention_triton_forward(q, k, v, causal=causal, sm_scale=sm_scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal = causal
        ctx.sm_scale = sm_scale
        return out

    @staticmethod
    def backward(
        ctx: FunctionCtx, dout: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None]:
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = flash_attention_triton_backward(
            q, k, v, out, lse, dout, causal=ctx.causal, sm_scale=ctx.sm_scale
        )
        return dq, dk, dv, None, None


def flash_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    sm_scale: float | None = None,
) -> torch.Tensor:
    """softmax(q k^T * sm_scale) v with Triton FlashAttention kernels, differentiable.

    q (B, H, Nq, d), k, v (B, H, Nk, d) torch tensors -> out (B, H, Nq, d); `.backward()`
    runs the Triton backward kernels. Matches
    torch.nn.functional.scaled_dot_product_attention (with bottom-right causal alignment
    when Nq != Nk). sm_scale defaults to 1/sqrt(d).
    """
    return FlashAttentionTriton.apply(q, k, v, causal, sm_scale)
