"""Positional encodings measured: similarity of position vectors, RoPE's relative property, and
how models trained with each encoding extrapolate to longer inputs (Zones 3 and 5)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validate import require_positive_int
from ..nn import GPT, GPTConfig
from ..positional import alibi_bias, apply_rope, sinusoidal_positional_encoding
from ..train import TrainConfig, Trainer, masked_accuracy

if TYPE_CHECKING:
    from ..data import CharCorpus, Task

__all__ = [
    "attention_maps",
    "length_extrapolation",
    "positional_similarity",
    "relative_position_check",
    "task_accuracy",
]


POSITION_KINDS = ("sinusoidal", "rope", "alibi")


# ============================================================================ positions
def positional_similarity(
    kind: str,
    max_distance: int = 128,
    d_model: int = 64,
    base: float = 10000.0,
    n_heads: int = 8,
    position: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """How alike attention finds two positions k apart, for k = 0 .. max_distance.

    "sinusoidal": cosine similarity of PE[position] and PE[position + k] (base 10000, fixed
                  by Vaswani et al. 2017; `base` is ignored). It equals mean_i cos(k w_i).
    "rope":       score of one fixed random vector q (seeded) with itself k positions later,
                  rope(q, p) . rope(q, p + k) / |q|^2, using `base`. Depends on k only.
    "alibi":      the factor exp(-m_h k) that ALiBi's bias multiplies a weight by at distance
                  k, one row per head: shape (n_heads, max_distance + 1).
    Returns (distances, similarity).
    """
    if kind not in POSITION_KINDS:
        raise ValueError(f"kind must be one of {POSITION_KINDS}, got {kind!r}")
    max_distance = require_positive_int("max_distance", max_distance)
    position = int(position)
    if position < 0:
        raise ValueError(f"position must be >= 0, got {position}")
    distances = np.arange(max_distance + 1)
    if kind == "sinusoidal":
        pe = sinusoidal_positional_encoding(position + max_distance + 1, d_model)
        start = pe[position]
        later = pe[position + distances]
        similarity = later @ start / (np.linalg.norm(later, axis=-1) * np.linalg.norm(start))
        return distances, similarity
    if kind == "rope":
        d_model = require_positive_int("d_model", d_model)
        if d_model % 2:
            raise ValueError(f"RoPE needs an even d_model, got {d_model}")
        q = np.random.default_rng(seed).normal(size=d_model)
        positions = np.concatenate([[position], position + distances])
        rotated = apply_rope(np.tile(q, (len(positions), 1)), positions=positions, base=base)
        return distances, rotated[1:] @ rotated[0] / (q @ q)
    # ALiBi: one query at position max_distance looks back at keys 0 .. max_distance.
    bias = alibi_bias(n_heads, 1, max_distance + 1)[:, 0, :]  # (n_heads, max_distance + 1)
    return distances, np.exp(bias[:, ::-1])  # column k: the key k positions back


def relative_position_check(
    kind: str, n: int = 24, d: int = 16, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Scores S[m, n] of one query token at position m against one key token at position n.

    The same two token vectors (seeded) sit at every position, so any change of S along a
    diagonal (fixed m - n) comes from the positional encoding alone:
    "none":       q = x_a W_q, k = x_b W_k (no positions);
    "sinusoidal": positions added to the tokens first, (x + PE[p]) W;
    "rope":       q and k rotated by attnlab.apply_rope;
    "alibi":      attnlab.alibi_bias (one head) added to the scores.
    Returns (S (n, n), spread) with spread = the largest max - min of S over a diagonal:
    0 (up to rounding) when the score depends only on m - n.
    """
    kinds = ("none",) + POSITION_KINDS
    if kind not in kinds:
        raise ValueError(f"kind must be one of {kinds}, got {kind!r}")
    n = require_positive_int("n", n)
    d = require_positive_int("d", d)
    rng = np.random.default_rng(seed)
    x_a, x_b = rng.normal(size=(2, d))
    w_q, w_k = rng.normal(size=(2, d, d)) / math.sqrt(d)
    queries = np.tile(x_a, (n, 1))
    keys = np.tile(x_b, (n, 1))
    if kind == "sinusoidal":
        pe = sinusoidal_positional_encoding(n, d)
        queries, keys = queries + pe, keys + pe
    q, k = queries @ w_q, keys @ w_k
    if kind == "rope":
        q, k = apply_rope(q), apply_rope(k)
    scores = q @ k.T / math.sqrt(d)
    if kind == "alibi":
        scores = scores + alibi_bias(1, n)[0]
    offsets = np.arange(-(n - 1), n)
    spread = max(float(np.ptp(np.diagonal(scores, offset=o))) for o in offsets)
    return scores, spread


POSITIONAL_ENCODINGS = ("learned", "sinusoidal", "rope", "alibi", "none")


# ============================================================================ attention maps
@torch.no_grad()
def attention_maps(model: GPT, idx: torch.Tensor) -> np.ndarray:
    """Attention weights of every layer and head of `model` on one sequence idx (1, N).

    Returns an array (n_layers, n_heads, N, N): entry [l, h, i, j] is how much query i of
    head h in layer l takes from key j (each row sums to 1; causal, so j <= i).
    """
    if idx.ndim != 2 or idx.shape[0] != 1:
        raise ValueError(f"idx must have shape (1, N), got {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    _, weights = model(idx, return_weights=True)
    model.train(was_training)
    return torch.stack([w[0] for w in weights]).numpy()


# ============================================================================ positions
@torch.no_grad()
def _window_losses(model: GPT, corpus, length: int, n_windows: int, seed: int) -> torch.Tensor:
    """Per-position cross-entropy (n_windows, length) on the same validation windows every time."""
    g = torch.Generator().manual_seed(seed)
    x, y = corpus.batch(n_windows, length, g, split="val")
    logits = model(x)
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none")


def length_extrapolation(
    corpus: CharCorpus,
    encodings: Sequence[str] = POSITIONAL_ENCODINGS,
    train_len: int = 32,
    eval_lens: Sequence[int] = (32, 64, 128, 256),
    steps: int = 200,
    d_model: int = 32,
    n_layers: int = 2,
    n_heads: int = 4,
    batch_size: int = 16,
    lr: float = 1e-2,
    n_windows: int = 16,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train one GPT per positional encoding on windows of train_len characters, test longer.

    Every model has the same size, initial seed, batches and learning rate; only `pos` differs.
    The context length is max(eval_lens), so learned and sinusoidal tables have rows for the
    long positions, but training only ever shows positions < train_len. Evaluation uses the
    same n_windows validation windows for every model.
    Returns {"eval_lens", "train_len", "loss": {encoding: [mean loss at each eval length]},
    "position_loss": {encoding: (max_len,) mean loss at each position of the longest windows},
    "history": {encoding: the Trainer history}, "steps": steps}, and, when "learned" is among
    the encodings, "learned_table": the mean Euclidean length of the learned position vectors
    at the trained positions (< train_len, key "trained") and at the never-trained ones
    (key "untrained"), and of the token embeddings (key "tokens"), for scale.
    """
    train_len = require_positive_int("train_len", train_len)
    eval_lens = [require_positive_int("eval_lens", int(n)) for n in eval_lens]
    max_len = max(eval_lens)
    result = {
        "eval_lens": eval_lens,
        "train_len": train_len,
        "loss": {},
        "position_loss": {},
        "history": {},
        "steps": steps,
    }
    for pos in encodings:
        torch.manual_seed(seed)
        config = GPTConfig(
            vocab_size=corpus.vocab_size,
            context_length=max_len,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            pos=pos,
        )
        model = GPT(config)
        train = TrainConfig(
            steps=steps,
            lr=lr,
            warmup_steps=min(20, steps // 5),
            eval_every=0,
            seed=seed,
            progress=progress,
        )
        trainer = Trainer(model, lambda g: corpus.batch(batch_size, train_len, g), train)
        if progress:
            print(f"pos = {pos!r}")
        result["history"][pos] = trainer.fit()
        model.eval()
        result["loss"][pos] = [
            float(_window_losses(model, corpus, n, n_windows, seed + 1).mean()) for n in eval_lens
        ]
        result["position_loss"][pos] = (
            _window_losses(model, corpus, max_len, n_windows, seed + 1).mean(0).numpy()
        )
        if pos == "learned":
            with torch.no_grad():
                lengths = model.pos_emb.table.weight.norm(dim=-1)
                result["learned_table"] = {
                    "trained": float(lengths[:train_len].mean()),
                    "untrained": float(lengths[train_len:].mean())
                    if max_len > train_len
                    else float("nan"),
                    "tokens": float(model.tok_emb.weight.norm(dim=-1).mean()),
                }
    return result


# ============================================================================ Mamba vs attention
@torch.no_grad()
def task_accuracy(model: nn.Module, task: Task, n_eval: int = 512, seed: int = 1234) -> float:
    """Accuracy on the scored positions of n_eval fresh sequences of a token task."""
    g = torch.Generator().manual_seed(seed)
    x, y = task.batch(require_positive_int("n_eval", n_eval), g)
    was_training = model.training
    model.eval()
    accuracy = masked_accuracy(model(x), y)
    model.train(was_training)
    return accuracy
