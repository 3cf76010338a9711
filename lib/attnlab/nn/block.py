"""One Transformer block, Pre-LN or Post-LN, configured by TransformerConfig."""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention, KVCache
from .config import TransformerConfig
from .layers import MLP, make_norm

__all__ = ["TransformerBlock"]


class TransformerBlock(nn.Module):
    """Attention then MLP, each inside a residual connection, (B, N, d_model) -> (B, N, d_model).

    Pre-LN (GPT-2, LLaMA):  x = x + attn(norm1(x));  x = x + mlp(norm2(x))
    Post-LN (original Transformer, BERT):  x = norm1(x + attn(x));  x = norm2(x + mlp(x))
    Pre-LN keeps an identity path from the output back to the input, which is why deep
    Pre-LN stacks train without warmup tricks (Xiong et al. 2020).
    """

    def __init__(self, config: TransformerConfig, causal: bool = True):
        super().__init__()
        self.prenorm = config.prenorm
        self.norm1 = make_norm(config)
        self.attn = Attention(config, causal=causal)
        self.norm2 = make_norm(config)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        kv_cache: KVCache | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (x, attention weights (B, n_heads, N, N_keys) or None); see Attention.forward."""
        if self.prenorm:
            attn_out, weights = self.attn(self.norm1(x), kv_cache, mask, need_weights)
            x = x + self.drop(attn_out)
            x = x + self.drop(self.mlp(self.norm2(x)))
        else:
            attn_out, weights = self.attn(x, kv_cache, mask, need_weights)
            x = self.norm1(x + self.drop(attn_out))
            x = self.norm2(x + self.drop(self.mlp(x)))
        return x, weights
