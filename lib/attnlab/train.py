"""A small, complete training loop: AdamW, warmup + cosine learning rate, gradient clipping,
evaluation loss, a tqdm progress bar, and checkpoints that resume bit-exactly.

A batch source is any function get_batch(generator) -> batch; the trainer owns the
torch.Generator it passes, so saving the generator state makes resuming exact.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ._validate import require_positive_int
from .data import IGNORE
from .i18n import tr


@contextmanager
def torch_threads(n: int | None = 1) -> Iterator[None]:
    """Run torch on n threads inside the block, then restore the caller's setting (None: leave it).

    Tiny models are fastest on one thread: more only wait on each other, and on a busy
    2-core machine they oversubscribe the cores and run many times slower.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(require_positive_int("n", n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = [
    "TrainConfig",
    "Trainer",
    "lr_at_step",
    "masked_accuracy",
    "next_token_loss",
    "torch_threads",
    "train_model",
]


@dataclass
class TrainConfig:
    """Hyper-parameters of the loop.

    steps: total optimizer steps (the cosine schedule spans them); lr: peak learning rate;
    min_lr: final learning rate (None = lr / 10); warmup_steps: linear warmup length;
    weight_decay: AdamW decay on matrices only (not on biases or norm gains);
    grad_clip: maximum global gradient norm (None = no clipping); eval_every: evaluate every
    this many steps and at the end (0 = never); eval_batches: batches averaged per evaluation;
    seed: seeds the batch generator; progress: show a tqdm bar.
    """

    steps: int = 1000
    lr: float = 3e-3
    min_lr: float | None = None
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_batches: int = 4
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        require_positive_int("steps", self.steps)
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        require_positive_int("eval_batches", self.eval_batches)


def lr_at_step(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based).

    Linear warmup to config.lr over warmup_steps (Goyal et al. 2017), then a cosine decay to
    min_lr at the last step (Loshchilov & Hutter 2017).
    """
    min_lr = config.lr / 10 if config.min_lr is None else config.min_lr
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_steps = max(config.steps - config.warmup_steps - 1, 1)
    progress = min((step - config.warmup_steps) / decay_steps, 1.0)
    return min_lr + 0.5 * (config.lr - min_lr) * (1 + math.cos(math.pi * progress))


def next_token_loss(
    model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Mean cross-entropy of model(x) (B, N, V) against y (B, N); IGNORE targets are skipped."""
    x, y = batch
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)


@torch.no_grad()
def masked_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of scored positions (y != IGNORE) where argmax(logits) equals y."""
    scored = y != IGNORE
    if not scored.any():
        raise ValueError("y has no scored position (all entries are IGNORE)")
    return float((logits.argmax(-1)[scored] == y[scored]).float().mean())


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay the matrices (ndim >= 2); leave biases and normalisation gains alone."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    """Trains `model` on batches from get_batch(generator), minimising loss_fn(model, batch).

    fit(n) runs n more steps (default: up to config.steps) and returns the history, a dict of
    lists: step, loss, lr, grad_norm (one entry per step) and eval_step, eval_loss.
    save(path) / load(path) store everything needed to continue exactly where it stopped:
    weights, optimizer moments, step, batch-generator state and torch's global RNG (dropout).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        get_batch: Callable,
        config: TrainConfig | None = None,
        eval_batch: Callable | None = None,
        loss_fn: Callable = next_token_loss,
    ):
        self.model = model
        self.get_batch = get_batch
        self.eval_batch = eval_batch
        self.loss_fn = loss_fn
        self.config = TrainConfig() if config is None else config
        cfg = self.config
        self.optimizer = torch.optim.AdamW(
            _param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas
        )
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.history = {
            "step": [],
            "loss": [],
            "lr": [],
            "grad_norm": [],
            "eval_step": [],
            "eval_loss": [],
        }

    def train_step(self) -> float:
        """One optimizer step on one batch; returns the batch loss."""
        lr = lr_at_step(self.step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        loss = self.loss_fn(self.model, self.get_batch(self.generator))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = math.inf if self.config.grad_clip is None else self.config.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        self.step += 1
        h = self.history
        h["step"].append(self.step)
        h["loss"].append(loss.item())
        h["lr"].append(lr)
        h["grad_norm"].append(float(grad_norm))
        return h["loss"][-1]

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss over eval_batches batches from eval_batch, the same batches every time."""
        if self.eval_batch is None:
            raise ValueError("evaluate() needs an eval_batch function; pass eval_batch= to Trainer")
        generator = torch.Generator().manual_seed(self.config.seed + 1)
        was_training = self.model.training
        self.model.eval()
        losses = [
            float(self.loss_fn(self.model, self.eval_batch(generator)))
            for _ in range(self.config.eval_batches)
        ]
        self.model.train(was_training)
        return sum(losses) / len(losses)

    def fit(self, n_steps: int | None = None) -> dict:
        """Run n_steps more steps (default: the remaining ones up to config.steps)."""
        cfg = self.config
        end = cfg.steps if n_steps is None else self.step + require_positive_int("n_steps", n_steps)
        bar = tqdm(range(self.step, end), disable=not cfg.progress, desc=tr("training"))
        for _ in bar:
            loss = self.train_step()
            at_eval = cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps)
            if self.eval_batch is not None and at_eval:
                self.history["eval_step"].append(self.step)
                self.history["eval_loss"].append(self.evaluate())
                bar.set_postfix(loss=f"{loss:.3f}", eval=f"{self.history['eval_loss'][-1]:.3f}")
            elif self.step % 10 == 0 or self.step == end:
                bar.set_postfix(loss=f"{loss:.3f}")
        bar.close()
        return self.history

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.history = {k: list(v) for k, v in state["history"].items()}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint (torch.save) that load() resumes from bit-exactly."""
        torch.save(self.state_dict(), path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by save() into this trainer (same model architecture)."""
        self.load_state_dict(torch.load(path, weights_only=True))


def train_model(
    model: torch.nn.Module,
    get_batch: Callable,
    config: TrainConfig | None = None,
    eval_batch: Callable | None = None,
    loss_fn: Callable = next_token_loss,
) -> dict:
    """Train for config.steps steps and return the history (see Trainer)."""
    return Trainer(model, get_batch, config, eval_batch, loss_fn).fit()
