"""Scaling laws measured: non-embedding parameters and a sweep of model sizes (Zone 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..nn import GPT, GPTConfig
from ..train import TrainConfig, Trainer

if TYPE_CHECKING:
    from ..data import CharCorpus

__all__ = ["model_size_sweep", "non_embedding_parameters"]


# ============================================================================ scaling
def non_embedding_parameters(model: GPT) -> int:
    """Parameters outside the token and position embeddings: the N of Kaplan et al. 2020.

    Kaplan et al. found that loss follows a power law in this count (embeddings excluded),
    across depths and widths. The tied output layer shares the token embedding, so it is
    excluded with it.
    """
    n = model.num_parameters() - model.tok_emb.weight.numel()
    table = getattr(model.pos_emb, "table", None)
    if isinstance(table, nn.Embedding):
        n -= table.weight.numel()
    return n


def model_size_sweep(
    corpus: CharCorpus,
    sizes: Sequence[tuple[int, int]] = ((8, 1), (16, 1), (32, 2), (48, 2), (64, 2)),
    steps: int = 200,
    batch_size: int = 16,
    block_size: int = 64,
    lr: float = 3e-3,
    n_heads: int = 4,
    eval_batches: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Train GPTs of several (d_model, n_layers) sizes for the same number of steps.

    Every model sees the same batches (D = steps * batch_size * block_size tokens); the number
    of heads is n_heads, or fewer so that each head is at least 8 wide. Returns one
    dict per size: d_model, n_layers, params, non_embedding_params (N), steps, tokens (D),
    flops (6 N D, Kaplan et al. 2020), val_loss (nats per character) and the training history.
    """
    rows = []
    for d_model, n_layers in sizes:
        torch.manual_seed(seed)
        heads = max(1, min(n_heads, d_model // 8))  # heads at least 8 wide
        while d_model % heads:
            heads -= 1
        config = GPTConfig(
            vocab_size=corpus.vocab_size,
            context_length=block_size,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=heads,
        )
        model = GPT(config)
        train = TrainConfig(
            steps=steps,
            lr=lr,
            warmup_steps=min(20, steps // 5),
            eval_every=0,
            eval_batches=eval_batches,
            seed=seed,
            progress=progress,
        )
        trainer = Trainer(
            model,
            lambda g: corpus.batch(batch_size, block_size, g),
            train,
            eval_batch=lambda g: corpus.batch(32, block_size, g, split="val"),
        )
        history = trainer.fit()
        n = non_embedding_parameters(model)
        tokens = steps * batch_size * block_size
        rows.append(
            {
                "d_model": d_model,
                "n_layers": n_layers,
                "params": model.num_parameters(),
                "non_embedding_params": n,
                "steps": steps,
                "tokens": tokens,
                "flops": 6.0 * n * tokens,
                "val_loss": trainer.evaluate(),
                "history": history,
            }
        )
    return rows
