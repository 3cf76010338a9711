"""Zone 2 measured demos: recall at growing distance (a GRU against self-attention), and the
attention maps of a real pretrained encoder (MiniLM) with a clearly labelled random fallback.

The recall task: a sequence of noise tokens hides one key token, d positions before a final
QUERY token; the model must output the key at the query. A recurrent network has to carry
the key through d steps of its state; self-attention reaches it in one step, whatever d is.
"""

from __future__ import annotations

import re
import time

import numpy as np
import torch
from torch import nn

from .._validate import require_positive_int
from ..data import IGNORE, Task
from ..i18n import tr
from ..nn import GPT, Encoder, EncoderConfig, GPTConfig, load_minilm
from ..train import TrainConfig, Trainer, masked_accuracy, torch_threads

__all__ = [
    "MODELS_INSTALL",
    "DistanceRecallTask",
    "GRUModel",
    "make_recall_model",
    "minilm_attention",
    "random_encoder_attention",
    "recall_accuracy",
    "recall_experiment",
    "sentence_attention",
]

MODELS_INSTALL = "pip install 'attnlab[models]'"


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
    model: nn.Module, task: DistanceRecallTask, distances, n_eval: int = 256, seed: int = 1234
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
    kinds=("gru", "attention"),
    max_distance: int = 64,
    steps: int = 150,
    widths: dict | None = None,
    batch_size: int = 64,
    lr: float = 3e-3,
    distances=None,
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


# ------------------------------------------------------------------------------------------
# Attention maps of a real encoder
# ------------------------------------------------------------------------------------------


@torch.no_grad()
def minilm_attention(sentence: str, model=None) -> tuple[list[str], np.ndarray]:
    """Tokens and attention weights of the pretrained MiniLM (Wang et al. 2020) on one sentence.

    model: (encoder, tokenizer) from attnlab.load_minilm(), loaded here if None. Returns the
    word-piece tokens (with [CLS] and [SEP]) and weights (n_layers, n_heads, N, N).
    Raises ModuleNotFoundError without the optional models extra.
    """
    encoder, tokenizer = load_minilm() if model is None else model
    encoding = tokenizer.encode(sentence)
    _, weights = encoder(torch.tensor([encoding.ids]), return_weights=True)
    return list(encoding.tokens), torch.stack([w[0] for w in weights]).numpy()


@torch.no_grad()
def random_encoder_attention(
    sentence: str, n_layers: int = 6, n_heads: int = 12, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """The fallback when MiniLM is not installed: the same shapes from an UNTRAINED encoder.

    Words and punctuation are split by a regular expression and numbered in order of first
    appearance (no real tokenizer); the encoder has random weights, so its maps show what
    attention looks like before any learning. Returns (tokens, weights (L, H, N, N)).
    """
    words = re.findall(r"\w+|[^\w\s]", sentence.lower())
    tokens = ["[CLS]", *words, "[SEP]"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    torch.manual_seed(seed)
    config = EncoderConfig(
        vocab_size=len(vocab),
        context_length=max(len(tokens), 8),
        d_model=8 * n_heads,
        n_layers=n_layers,
        n_heads=n_heads,
    )
    encoder = Encoder(config).eval()
    ids = torch.tensor([[vocab[t] for t in tokens]])
    _, weights = encoder(ids, return_weights=True)
    return tokens, torch.stack([w[0] for w in weights]).numpy()


def sentence_attention(sentence: str, model=None) -> tuple[list[str], np.ndarray, str]:
    """MiniLM's attention on a sentence if the models extra is installed, else the random fallback.

    Returns (tokens, weights (L, H, N, N), source), source naming which model produced them.
    """
    try:
        tokens, weights = minilm_attention(sentence, model)
        return tokens, weights, tr("pretrained MiniLM (all-MiniLM-L6-v2)")
    except ModuleNotFoundError:
        tokens, weights = random_encoder_attention(sentence)
        return tokens, weights, tr("RANDOM, UNTRAINED encoder (MiniLM not installed)")
