"""Multi-head self-attention with grouped key/value heads (MHA, GQA, MQA) and a KV cache.

MHA: every query head has its own key/value head (Vaswani et al. 2017).
MQA: all query heads share one key/value head (Shazeer 2019).
GQA: groups of n_heads / n_kv_heads query heads share one (Ainslie et al. 2023).
The cache stores keys and values only, so its size scales with n_kv_heads, not n_heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..functional import causal_mask
from .config import TransformerConfig
from .layers import apply_rope_torch

__all__ = ["Attention", "KVCache"]


class KVCache:
    """Preallocated keys and values of one attention layer, (batch, n_kv_heads, max_len, head_dim).

    Decoding appends one position per step into the preallocated buffers instead of
    concatenating tensors; `length` counts the positions stored so far.
    """

    def __init__(
        self,
        batch_size: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held by the key and value buffers: 2 * batch * n_kv_heads * max_len * head_dim * itemsize."""
        return self.k.nbytes + self.v.nbytes

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (batch, n_kv_heads, n_new, head_dim); return all keys and values so far."""
        expected = (self.k.shape[0], self.k.shape[1], k.shape[2], self.k.shape[3])
        if k.shape != expected or v.shape != expected:
            raise ValueError(
                f"k and v must have shape {expected} to fit this cache, "
                f"got k {tuple(k.shape)} and v {tuple(v.shape)}"
            )
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"KV cache overflow: {self.length} cached + {k.shape[2]} new positions "
                f"exceeds max_len={self.max_len}"
            )
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reset(self) -> None:
        """Forget the stored positions (the buffers are kept for reuse)."""
        self.length = 0

    def __repr__(self) -> str:
        b, h, n, d = self.k.shape
        return (
            f"KVCache(batch={b}, n_kv_heads={h}, length={self.length}/{n}, head_dim={d}, "
            f"dtype={self.k.dtype}, nbytes={self.nbytes})"
        )


def _alibi_slopes(n_heads: int) -> torch.Tensor:
    from ..positional import alibi_slopes  # the NumPy rule of Press et al. 2022, one place

    return torch.as_tensor(alibi_slopes(n_heads), dtype=torch.float32)


class Attention(nn.Module):
    """Self-attention x (B, N, d_model) -> (B, N, d_model), causal or bidirectional.

    Queries get n_heads heads, keys and values n_kv_heads heads; query head h reads key/value
    head h // (n_heads / n_kv_heads). One fused linear layer computes q, k and v.
    forward(..., need_weights=True) computes softmax(q k^T / sqrt(head_dim)) explicitly and also
    returns the weights (B, n_heads, N, N_keys) for heatmaps; otherwise the computation goes
    through torch's fused scaled_dot_product_attention.
    """

    def __init__(self, config: TransformerConfig, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.head_dim = config.head_dim
        self.pos = config.pos
        self.rope_base = config.rope_base
        self.dropout = config.dropout
        kv_width = self.n_kv_heads * self.head_dim
        self.qkv = nn.Linear(config.d_model, config.d_model + 2 * kv_width, bias=config.bias)
        self.out = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        if self.pos == "alibi":
            self.register_buffer("alibi_slopes", _alibi_slopes(self.n_heads), persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: KVCache | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, N, d_model). kv_cache: append this call's keys/values and attend to all cached ones.

        mask: boolean, True = may attend, broadcastable to (B, n_heads, N, N_keys) (e.g. a
        padding mask of shape (B, 1, 1, N_keys)). Returns (out, weights or None).
        """
        if x.ndim != 3 or x.shape[-1] != self.out.in_features:
            raise ValueError(
                f"x must have shape (batch, seq_len, d_model={self.out.in_features}), got {tuple(x.shape)}"
            )
        batch, n_new, d_model = x.shape
        kv_width = self.n_kv_heads * self.head_dim
        q, k, v = self.qkv(x).split([d_model, kv_width, kv_width], dim=-1)
        q = q.view(batch, n_new, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, N, hd)
        k = k.view(batch, n_new, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, N, hd)
        v = v.view(batch, n_new, self.n_kv_heads, self.head_dim).transpose(1, 2)

        start = 0 if kv_cache is None else kv_cache.length  # absolute position of the first query
        if self.pos == "rope":
            positions = torch.arange(start, start + n_new, device=x.device)
            q = apply_rope_torch(q, positions, self.rope_base)
            k = apply_rope_torch(k, positions, self.rope_base)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)
        n_keys = k.shape[2]

        allowed = self._allowed(n_new, n_keys, mask, x.device)  # bool or None
        bias = self._alibi_bias(n_new, n_keys, x.device, q.dtype) if self.pos == "alibi" else None
        dropout_p = self.dropout if self.training else 0.0

        if need_weights:
            out, weights = self._explicit_attention(q, k, v, allowed, bias, dropout_p)
        else:
            plain_causal = self.causal and mask is None and bias is None and n_new == n_keys > 1
            out = self._fused_attention(q, k, v, allowed, bias, dropout_p, plain_causal)
            weights = None
        out = out.transpose(1, 2).reshape(batch, n_new, d_model)
        return self.out(out), weights

    def _allowed(self, n_q: int, n_k: int, mask, device):
        """Boolean mask of the visible keys (causal and/or given), or None if all are visible."""
        allowed = mask
        if self.causal and n_q > 1:  # a single query (cached decoding) sees every cached key
            causal = torch.from_numpy(causal_mask(n_q, n_k)).to(device)
            allowed = causal if allowed is None else allowed & causal
        return allowed

    def _alibi_bias(self, n_q: int, n_k: int, device, dtype) -> torch.Tensor:
        """ALiBi (Press et al. 2022): -slope_h * |i - j|, bottom-right aligned, shape (H, n_q, n_k)."""
        i = torch.arange(n_k - n_q, n_k, device=device)[:, None]
        j = torch.arange(n_k, device=device)[None, :]
        distance = (i - j).abs().to(dtype)
        return -self.alibi_slopes.to(dtype)[:, None, None] * distance

    def _explicit_attention(self, q, k, v, allowed, bias, dropout_p):
        """softmax(q k^T / sqrt(d) + bias) v with the weights kept: (B,H,N,hd), (B,H,N,Nk)."""
        group = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(group, dim=1)  # query head h reads kv head h // group
        v = v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if bias is not None:
            scores = scores + bias
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return F.dropout(weights, dropout_p) @ v, weights

    def _fused_attention(self, q, k, v, allowed, bias, dropout_p, plain_causal):
        """The same computation through torch's fused kernel (no weights kept)."""
        attn_mask = allowed
        if bias is not None:
            attn_mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
        if plain_causal:
            attn_mask = None  # the square causal triangle: let the kernel build it itself
        return F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=dropout_p,
            is_causal=plain_causal,
            enable_gqa=self.n_heads != self.n_kv_heads,
        )
