"""In-context learning: a small transformer learning linear regression in context, compared with
least squares and one step of gradient descent by linear self-attention (Zone 5)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from .._validate import as_float_array, require_positive_int
from ..data import LinearRegressionTask
from ..nn import TransformerBlock, TransformerConfig
from ..train import TrainConfig, Trainer

__all__ = [
    "ICLTransformer",
    "icl_errors",
    "least_squares_predict",
    "train_icl_transformer",
    "train_linear_self_attention",
]


# ============================================================================ in-context learning
class ICLTransformer(nn.Module):
    """A small Transformer for in-context regression: tokens (B, T, d + 1) -> prediction (B,).

    Each token [x_i, y_i] (the last one [x_query, 0]) is projected to d_model, passes through
    n_layers bidirectional attnlab.TransformerBlocks without positional encoding (the examples
    form a set: their order carries no information), and the last token's output is read out
    as the prediction of y_query (Garg et al. 2022 use a GPT-2 backbone the same way).
    """

    def __init__(self, d: int, d_model: int = 32, n_layers: int = 2, n_heads: int = 4):
        super().__init__()
        self.d = require_positive_int("d", d)
        config = TransformerConfig(
            vocab_size=1,
            context_length=1,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            pos="none",
        )
        self.embed = nn.Linear(d + 1, d_model)
        self.blocks = nn.ModuleList(TransformerBlock(config, causal=False) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.readout = nn.Linear(d_model, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[-1] != self.d + 1:
            raise ValueError(
                f"tokens must have shape (batch, T, d + 1 = {self.d + 1}), got {tuple(tokens.shape)}"
            )
        h = self.embed(tokens)
        for block in self.blocks:
            h, _ = block(h)
        return self.readout(self.norm(h[:, -1]))[:, 0]

    @torch.no_grad()
    def predict(self, x: ArrayLike, y: ArrayLike, x_query: ArrayLike) -> np.ndarray:
        """Batched NumPy interface for icl_errors: x (B, k, d), y (B, k), x_query (B, d) -> (B,)."""
        x, y, x_query = (
            torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (x, y, x_query)
        )
        context = torch.cat([x, y[..., None]], dim=-1)
        query = torch.cat([x_query, torch.zeros_like(x_query[:, :1])], dim=-1)[:, None]
        was_training = self.training
        self.eval()
        out = self(torch.cat([context, query], dim=1)).double().numpy()
        self.train(was_training)
        return out


def _squared_error(model, batch) -> torch.Tensor:
    tokens, target = batch
    return ((model(tokens) - target) ** 2).mean()


def train_icl_transformer(
    task: LinearRegressionTask,
    steps: int = 400,
    batch_size: int = 64,
    lr: float = 2e-3,
    d_model: int = 32,
    n_layers: int = 2,
    n_heads: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> tuple[ICLTransformer, dict]:
    """Train an ICLTransformer on task's prompts, each batch with a random number of examples.

    Every batch keeps the last k of the task's n_points examples (k uniform in 1..n_points) and
    the query, so one model learns to predict from any number of examples. The loss is the mean
    squared error of the prediction. Returns (model, history).
    """
    torch.manual_seed(seed)
    model = ICLTransformer(task.d, d_model, n_layers, n_heads)
    n = task.n_points

    def get_batch(g):
        tokens, target = task.batch(batch_size, g)
        k = int(torch.randint(1, n + 1, (1,), generator=g))
        return torch.cat([tokens[:, n - k : n], tokens[:, n:]], dim=1), target

    config = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=min(50, steps // 5),
        weight_decay=0.0,
        eval_every=0,
        seed=seed,
        progress=progress,
    )
    history = Trainer(model, get_batch, config, loss_fn=_squared_error).fit()
    return model, history


class _TrainableLinearSelfAttention(nn.Module):
    """attnlab.linear_self_attention with trainable square weights, for training only.

    The prediction is the last slot of the query token's output (its y slot starts at 0).
    """

    def __init__(self, width: int, init_std: float = 0.1):
        super().__init__()
        self.w_q, self.w_k, self.w_v, self.w_o = (
            nn.Parameter(init_std * torch.randn(width, width)) for _ in range(4)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        scores = (z @ self.w_q) @ (z @ self.w_k).transpose(-1, -2)  # no softmax, no scaling
        out = z + scores @ (z @ self.w_v) @ self.w_o
        return out[:, -1, -1]


def train_linear_self_attention(
    task: LinearRegressionTask,
    steps: int = 500,
    batch_size: int = 256,
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], dict]:
    """Train one linear self-attention layer (random init) on task's full prompts.

    von Oswald et al. 2023 found that such a layer, trained by gradient descent, ends up
    computing one step of gradient descent on the examples in its context. Returns
    (weights, history), weights a dict w_q, w_k, w_v, w_o of float64 (d + 1, d + 1) arrays
    ready for attnlab.linear_self_attention.
    """
    torch.manual_seed(seed)
    layer = _TrainableLinearSelfAttention(task.token_dim)
    config = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=min(50, steps // 5),
        weight_decay=0.0,
        grad_clip=None,
        eval_every=0,
        seed=seed,
        progress=progress,
    )
    history = Trainer(
        layer, lambda g: task.batch(batch_size, g), config, loss_fn=_squared_error
    ).fit()
    weights = {
        name: getattr(layer, name).detach().double().numpy()
        for name in ("w_q", "w_k", "w_v", "w_o")
    }
    return weights, history


def least_squares_predict(x: ArrayLike, y: ArrayLike, x_query: ArrayLike) -> np.ndarray:
    """Predictions x_query @ w of the minimum-norm least-squares fit w of y ~ x @ w.

    x: (N, d), y: (N,), x_query: (M, d). With N >= d examples (and no noise) this recovers the
    true w; with fewer it picks the smallest w that fits them exactly (np.linalg.lstsq).
    """
    x, y, x_query = (as_float_array(n, a) for n, a in (("x", x), ("y", y), ("x_query", x_query)))
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    return x_query @ w


def icl_errors(
    predict: Callable[[np.ndarray, np.ndarray, np.ndarray], ArrayLike],
    tokens: ArrayLike,
    target: ArrayLike,
    ks: Sequence[int],
    batched: bool = False,
    return_sem: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean squared error / d of `predict` on in-context regression prompts, for each k in ks.

    tokens (B, n_points + 1, d + 1) and target (B,) come from LinearRegressionTask.batch; for a
    given k the prompt keeps the last k examples and the query. predict(x, y, x_query) gets one
    prompt at a time, x (k, d), y (k,), x_query (1, d) -> (1,) (batched=False), or all at once,
    x (B, k, d), y (B, k), x_query (B, d) -> (B,) (batched=True). Dividing by d makes
    "always predict 0" score about 1, since E[y^2] = E|w|^2 = d for w ~ N(0, I_d).
    Returns an array (len(ks),), and with return_sem=True also the standard error of each mean
    (std / sqrt(B)), the Monte-Carlo uncertainty from using B prompts.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    n, d = tokens.shape[1] - 1, tokens.shape[2] - 1
    errors, sems = [], []
    for k in ks:
        k = require_positive_int("k", int(k))
        if k > n:
            raise ValueError(f"k={k} exceeds the {n} examples in each prompt")
        x, y, x_query = tokens[:, n - k : n, :d], tokens[:, n - k : n, d], tokens[:, n, :d]
        if batched:
            pred = np.asarray(predict(x, y, x_query), dtype=np.float64).reshape(-1)
        else:
            pred = np.array(
                [
                    np.asarray(predict(x[b], y[b], x_query[b : b + 1]), dtype=float)[0]
                    for b in range(len(tokens))
                ]
            )
        squared = (pred - target) ** 2 / d
        errors.append(float(squared.mean()))
        sems.append(float(squared.std() / math.sqrt(len(squared))))
    return (np.array(errors), np.array(sems)) if return_sem else np.array(errors)
