"""Building blocks of the torch models: normalisation, the MLP, and positional information.

Each piece is chosen by a field of `TransformerConfig` (norm, mlp, pos).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import TransformerConfig

__all__ = ["MLP", "PositionalEmbedding", "apply_rope_torch", "make_norm"]


def make_norm(config: TransformerConfig) -> nn.Module:
    """LayerNorm (Ba et al. 2016) or RMSNorm (Zhang & Sennrich 2019) over the last axis, d_model wide."""
    if config.norm == "layernorm":
        return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)
    return nn.RMSNorm(config.d_model, eps=config.norm_eps)


class MLP(nn.Module):
    """The position-wise feed-forward network, (..., d_model) -> (..., d_model).

    gelu / gelu_tanh / relu: down(act(up(x))).
    swiglu: down(silu(gate(x)) * up(x)), i.e. attnlab.swiglu(x, w1, w2, w3) with
    w1 = gate, w3 = up, w2 = down (Shazeer 2020).
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.kind = config.mlp
        self.up = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        if self.kind == "swiglu":
            self.gate = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "swiglu":
            hidden = F.silu(self.gate(x)) * self.up(x)
        elif self.kind == "gelu":
            hidden = F.gelu(self.up(x))
        elif self.kind == "gelu_tanh":
            hidden = F.gelu(self.up(x), approximate="tanh")
        else:
            hidden = F.relu(self.up(x))
        return self.down(hidden)


def apply_rope_torch(
    x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0
) -> torch.Tensor:
    """Rotary position embedding (Su et al. 2021) on torch tensors, same convention as attnlab.apply_rope.

    x: (..., N, d) with d even; positions: (N,). Feature pair (2i, 2i+1) at position p is
    rotated by the angle p * base**(-2i/d). Angles are computed in float64, then cast.
    """
    d = x.shape[-1]
    if d % 2:
        raise ValueError(
            f"apply_rope_torch needs an even last dimension, got x of shape {tuple(x.shape)}"
        )
    if positions.shape != (x.shape[-2],):
        raise ValueError(
            f"positions must have shape ({x.shape[-2]},) to match x {tuple(x.shape)}, "
            f"got {tuple(positions.shape)}"
        )
    inv_freq = base ** (-torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]  # (N, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), dim=-1)
    return rotated.flatten(-2)


class PositionalEmbedding(nn.Module):
    """Adds absolute position information to the token embeddings (B, N, d_model).

    "learned": a trained table (GPT-2, BERT); "sinusoidal": the fixed table of
    attnlab.sinusoidal_positional_encoding (Vaswani et al. 2017). For "rope", "alibi" and
    "none" it adds nothing: RoPE and ALiBi act inside attention.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.kind = config.pos
        self.context_length = config.context_length
        if self.kind == "learned":
            self.table = nn.Embedding(config.context_length, config.d_model)
        elif self.kind == "sinusoidal":
            from ..positional import sinusoidal_positional_encoding

            table = sinusoidal_positional_encoding(config.context_length, config.d_model)
            self.register_buffer(
                "table", torch.as_tensor(table, dtype=torch.float32), persistent=False
            )

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x: (B, N, d_model) embeddings of positions start, ..., start + N - 1."""
        if self.kind == "learned":
            positions = torch.arange(start, start + x.shape[1], device=x.device)
            return x + self.table(positions)
        if self.kind == "sinusoidal":
            return x + self.table[start : start + x.shape[1]].to(x.dtype)
        return x


def init_weights(model: nn.Module, n_layers: int, std: float = 0.02) -> None:
    """GPT-2's initialisation (Radford et al. 2019): N(0, 0.02) weights, zero biases, and the
    projections that write into the residual stream scaled by 1/sqrt(2 * n_layers)."""
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            scale = (
                (2 * n_layers) ** -0.5
                if name.endswith(("attn.out.weight", "mlp.down.weight"))
                else 1.0
            )
            nn.init.normal_(p, mean=0.0, std=std * scale)
        elif name.endswith("bias"):
            nn.init.zeros_(p)


def check_token_ids(name: str, ids: torch.Tensor, vocab_size: int) -> None:
    """Raise unless `ids` is an integer tensor (batch, seq_len) of ids in [0, vocab_size)."""
    if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"{name} must be an integer torch tensor of token ids, got {got}")
    if ids.ndim != 2 or ids.numel() == 0:
        raise ValueError(
            f"{name} must have shape (batch, seq_len) with batch, seq_len >= 1, got {tuple(ids.shape)}"
        )
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} contains token id {bad} outside [0, vocab_size={vocab_size})")
