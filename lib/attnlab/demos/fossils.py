"""The fossils (RNNs, CNNs) against attention: path lengths between tokens, and the recall race
of a GRU and a small attention model at growing distance (Zones 1 and 2)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .._validate import require_positive_int
from ..data import IGNORE, Task
from ..i18n import tr
from ..nn import GPT, GPTConfig
from ..train import TrainConfig, Trainer, masked_accuracy, torch_threads

__all__ = [
    "DistanceRecallTask",
    "GRUModel",
    "fossil_table",
    "make_recall_model",
    "recall_accuracy",
    "recall_experiment",
]


def _cnn_path_length(n: int, k: int, dilated: bool) -> int:
    """Layers a causal convolution stack needs before the last output sees the first input.

    Contiguous kernels reach k - 1 positions further back per layer: ceil((n - 1) / (k - 1)).
    Dilated kernels (dilation 1, k, k^2, ...) multiply the reach by k per layer: ceil(log_k n).
    Integer arithmetic, so no floating-point log rounds the wrong way.
    """
    if not dilated:
        return -(-(n - 1) // (k - 1))
    layers, receptive_field = 0, 1
    while receptive_field < n:
        receptive_field *= k
        layers += 1
    return layers


def fossil_table(n: int, d: int = 512, k: int = 3) -> list[dict]:
    """Table 1 of Vaswani et al. 2017, evaluated for n tokens of width d (convolution width k).

    One row per layer type, each a dict with
      "layer": name, "complexity": the paper's O(.) per layer,
      "ops": multiply-adds of one layer on the whole sequence,
      "ops_with_projections": the same, counting everything the layer computes: for
              self-attention 2 n^2 d plus the 4 n d^2 of the projections W_Q, W_K, W_V, W_O
              (equal to "ops" for the other layers, whose counts already hold all their work),
      "sequential": operations that must run one after another,
      "path": maximum path length, the number of layers (or recurrent steps) a signal
              crosses to connect the first and the last token.
    Counts: RNN h_t = tanh(x_t W_x + h_{t-1} W_h) is 2 d^2 per token; a causal convolution
    is k d^2 per token; self-attention is Q K^T plus A V, 2 n^2 d (the projections W_Q, W_K,
    W_V, W_O, 4 n d^2 more, are left out of "ops" as in the paper's table, and counted in
    "ops_with_projections"). So attention / RNN is n / d in "ops" and n / d + 2 with the
    projections. n >= 2, k >= 2.
    """
    n = require_positive_int("n", n)
    d = require_positive_int("d", d)
    k = require_positive_int("k", k)
    if n < 2:
        raise ValueError(f"n must be >= 2 (a path joins two different tokens), got n={n}")
    if k < 2:
        raise ValueError(f"k must be >= 2 (a width-1 convolution never mixes tokens), got k={k}")
    rows = [
        {
            "layer": "RNN",
            "complexity": "O(n·d²)",
            "ops": 2 * n * d * d,
            "sequential": n,
            "path": n - 1,
        },
        {
            "layer": f"CNN (k={k})",
            "complexity": "O(k·n·d²)",
            "ops": k * n * d * d,
            "sequential": 1,
            "path": _cnn_path_length(n, k, dilated=False),
        },
        {
            "layer": f"CNN (k={k}, dilated)",
            "complexity": "O(k·n·d²)",
            "ops": k * n * d * d,
            "sequential": 1,
            "path": _cnn_path_length(n, k, dilated=True),
        },
        {
            "layer": "self-attention",
            "complexity": "O(n²·d)",
            "ops": 2 * n * n * d,
            "sequential": 1,
            "path": 1,
        },
    ]
    for row in rows:
        row["ops_with_projections"] = row["ops"]
    rows[-1]["ops_with_projections"] += 4 * n * d * d  # W_Q, W_K, W_V, W_O on n tokens
    return rows


class DistanceRecallTask(Task):
    """Recall a key token seen d positions before the query.

    Tokens 0..n_noise-1 are noise, n_noise..n_noise+n_keys-1 are keys, QUERY = n_noise + n_keys.
    Each sequence (length max_distance + 1) is noise with one key at position N-1-d, and QUERY
    at the last position N-1; only the last position is scored, its target is the key. d is
    drawn uniformly from 1..max_distance, or fixed with `distance` (for evaluation).
    """

    def __init__(
        self,
        max_distance: int = 64,
        n_noise: int = 8,
        n_keys: int = 8,
        distance: int | None = None,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.max_distance = require_positive_int("max_distance", max_distance)
        self.n_noise = require_positive_int("n_noise", n_noise)
        self.n_keys = require_positive_int("n_keys", n_keys)
        if distance is not None and not 1 <= distance <= max_distance:
            raise ValueError(f"distance must be in 1..max_distance={max_distance}, got {distance}")
        self.distance = distance
        self.query = n_noise + n_keys
        self.vocab_size = n_noise + n_keys + 1
        self.seq_len = max_distance + 1

    def _make(self, batch_size, g):
        n = self.seq_len
        x = torch.randint(0, self.n_noise, (batch_size, n), generator=g)
        key = self.n_noise + torch.randint(0, self.n_keys, (batch_size,), generator=g)
        if self.distance is None:
            d = torch.randint(1, self.max_distance + 1, (batch_size,), generator=g)
        else:
            d = torch.full((batch_size,), self.distance)
        x[torch.arange(batch_size), n - 1 - d] = key
        x[:, -1] = self.query
        y = torch.full_like(x, IGNORE)
        y[:, -1] = key
        return x, y


class GRUModel(nn.Module):
    """Token embedding -> one GRU layer (Cho et al. 2014) -> linear head: (B, N) -> logits (B, N, V)."""

    def __init__(self, vocab_size: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.embed(x))
        return self.head(states)


def make_recall_model(kind: str, task: DistanceRecallTask, width: int, seed: int = 0) -> nn.Module:
    """A small model for the task: kind "gru" (GRUModel) or "attention" (a 1-layer, 2-head GPT)."""
    torch.manual_seed(seed)
    if kind == "gru":
        return GRUModel(task.vocab_size, width)
    if kind == "attention":
        config = GPTConfig(
            vocab_size=task.vocab_size,
            context_length=task.seq_len,
            d_model=width,
            n_layers=1,
            n_heads=2,
        )
        return GPT(config)
    raise ValueError(f"kind must be 'gru' or 'attention', got {kind!r}")


@torch.no_grad()
def recall_accuracy(
    model: nn.Module,
    task: DistanceRecallTask,
    distances: Iterable[int],
    n_eval: int = 256,
    seed: int = 1234,
) -> np.ndarray:
    """Accuracy of the model's answer at the query, for keys at each distance (fresh sequences)."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    accuracy = []
    for d in distances:
        probe = DistanceRecallTask(task.max_distance, task.n_noise, task.n_keys, distance=int(d))
        x, y = probe.batch(n_eval, g)
        accuracy.append(masked_accuracy(model(x), y))
    model.train(was_training)
    return np.array(accuracy)


def recall_experiment(
    kinds: Sequence[str] = ("gru", "attention"),
    max_distance: int = 64,
    steps: int = 150,
    widths: dict | None = None,
    batch_size: int = 64,
    lr: float = 3e-3,
    distances: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = True,
    n_threads: int | None = 1,
) -> dict:
    """Train each kind of model on DistanceRecallTask for `steps` steps; measure accuracy by distance.

    Both models see the same batches (same seed), optimizer (AdamW, attnlab.train) and number
    of steps. widths: hidden width per kind (default: GRU 48, attention 32, about the same
    number of parameters). Returns {kind: {"distances", "accuracy", "seconds", "parameters",
    "loss" (per step), "chance" (1 / n_keys, the accuracy of a guess), "model"}}.
    """
    steps = require_positive_int("steps", steps)
    widths = {"gru": 48, "attention": 32, **(widths or {})}
    task = DistanceRecallTask(max_distance=max_distance, seed=seed)
    if distances is None:
        distances = sorted(
            {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256} & set(range(1, max_distance + 1))
            | {max_distance}
        )
    config = TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=min(20, steps // 5),
        weight_decay=0.0,
        eval_every=0,
        seed=seed,
        progress=progress,
    )
    results = {}
    with torch_threads(n_threads):
        for kind in kinds:
            model = make_recall_model(kind, task, widths[kind], seed=seed)
            if progress:
                print(
                    tr(
                        "training the {kind} model ({parameters:,d} parameters)",
                        kind=kind,
                        parameters=sum(p.numel() for p in model.parameters()),
                    )
                )
            trainer = Trainer(model, lambda g: task.batch(batch_size, g), config)
            start = time.perf_counter()
            history = trainer.fit()
            seconds = time.perf_counter() - start
            results[kind] = {
                "distances": np.array(distances),
                "accuracy": recall_accuracy(model, task, distances, seed=seed + 1234),
                "seconds": seconds,
                "parameters": sum(p.numel() for p in model.parameters()),
                "loss": np.array(history["loss"]),
                "chance": 1.0 / task.n_keys,
                "model": model,
            }
    return results
