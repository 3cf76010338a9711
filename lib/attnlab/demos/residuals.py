"""Why residual connections: gradient norms layer by layer with and without them (Zone 3)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validate import require_positive_int
from ..nn import GPTConfig, TransformerBlock
from ..train import torch_threads

__all__ = ["gradient_norms_by_depth", "residual_gradient_demo"]


# ============================================================================ gradients
def residual_gradient_demo(
    n_layers: int = 30, width: int = 32, gain: float = 0.5, seed: int = 0
) -> dict:
    """Gradient norm reaching the input of a deep stack of tanh layers, with and without residuals.

    Plain: x_{l+1} = tanh(x_l W_l). Residual: x_{l+1} = x_l + tanh(x_l W_l). The same weights,
    W_l ~ N(0, gain^2 / width), in both. Returns {"plain": |d sum(x_L) / d x_0|, "residual": ...}.
    """
    n_layers = require_positive_int("n_layers", n_layers)
    width = require_positive_int("width", width)
    generator = torch.Generator().manual_seed(seed)
    weights = [
        torch.randn(width, width, generator=generator, dtype=torch.float64)
        * gain
        / math.sqrt(width)
        for _ in range(n_layers)
    ]
    x0 = torch.randn(1, width, generator=generator, dtype=torch.float64)
    norms = {}
    with torch_threads(1):
        for name in ("plain", "residual"):
            x = x0.clone().requires_grad_(True)
            h = x
            for w in weights:
                h = h + torch.tanh(h @ w) if name == "residual" else torch.tanh(h @ w)
            h.sum().backward()
            norms[name] = float(x.grad.norm())
    return norms


def gradient_norms_by_depth(
    prenorm: bool,
    n_layers: int = 12,
    d_model: int = 32,
    n_heads: int = 4,
    seq_len: int = 16,
    batch: int = 4,
    vocab_size: int = 64,
    seed: int = 0,
) -> np.ndarray:
    """|dL/dW_2| of every layer's FFN output matrix at initialisation, shape (n_layers,).

    A stack of attnlab TransformerBlocks (Pre-LN if prenorm else Post-LN), Xavier-initialised
    as in Xiong et al. 2020 ("On Layer Normalization in the Transformer Architecture"), a final
    LayerNorm for Pre-LN (as in GPT-2), a linear head and the cross-entropy against random
    targets, on random unit-variance inputs (batch, seq_len, d_model). One backward pass.
    Xiong et al.'s Theorem 1: the last layer's norm is O(d sqrt(ln d)) for Post-LN, whatever
    the depth, and O(d sqrt(ln d / L)) for Pre-LN.
    """
    n_layers = require_positive_int("n_layers", n_layers)
    with torch_threads(1), torch.random.fork_rng():  # seeded, leaving the global generator alone
        return _gradient_norms(
            prenorm, n_layers, d_model, n_heads, seq_len, batch, vocab_size, seed
        )


def _gradient_norms(prenorm, n_layers, d_model, n_heads, seq_len, batch, vocab_size, seed):
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=vocab_size,
        context_length=seq_len,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        prenorm=prenorm,
    )
    blocks = nn.ModuleList(TransformerBlock(config, causal=True) for _ in range(n_layers))
    for name, p in blocks.named_parameters():
        if p.ndim == 2:
            nn.init.xavier_normal_(p)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    final_norm = nn.LayerNorm(d_model) if prenorm else nn.Identity()
    head = nn.Linear(d_model, vocab_size)
    x = torch.randn(batch, seq_len, d_model)
    targets = torch.randint(0, vocab_size, (batch, seq_len))
    h = x
    for block in blocks:
        h, _ = block(h)
    loss = F.cross_entropy(head(final_norm(h)).reshape(-1, vocab_size), targets.reshape(-1))
    loss.backward()
    return np.array([float(block.mlp.down.weight.grad.norm()) for block in blocks])
