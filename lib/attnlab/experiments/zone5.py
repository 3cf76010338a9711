"""Measured experiments of Zone 5: small models trained and timed on a CPU.

- attention_maps: every layer's and head's attention weights of a GPT on one text.
- length_extrapolation: the same GPT with five positional encodings, trained on short windows,
  evaluated on longer ones (Press et al. 2022 ran this comparison at scale).
- model_size_sweep, non_embedding_parameters: loss against model size for a few tiny GPTs.
- ICLTransformer, train_icl_transformer, train_linear_self_attention, least_squares_predict,
  icl_errors: in-context linear regression (Garg et al. 2022; von Oswald et al. 2023).
- kv_cache_speedup, kv_cache_memory: generation with and without the cache; MHA / GQA / MQA memory.
- attention_cost_vs_length: time and peak memory of standard vs tiled attention in NumPy.
- task_accuracy, decode_seconds_per_token, throughput_vs_length: Mamba against attention.

Every function computes its numbers when called: nothing here is a pasted result.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._validate import as_float_array, require_positive_int
from ..data import LinearRegressionTask
from ..flash import flash_attention_numpy
from ..functional import kv_cache_bytes, scaled_dot_product_attention
from ..i18n import tr
from ..measure import best_time, peak_memory
from ..nn import GPT, GPTConfig, TransformerBlock, TransformerConfig
from ..train import TrainConfig, Trainer, masked_accuracy
from .zone4 import generation_comparison

__all__ = [
    "ICLTransformer",
    "attention_cost_vs_length",
    "attention_maps",
    "decode_seconds_per_token",
    "icl_errors",
    "kv_cache_memory",
    "kv_cache_speedup",
    "least_squares_predict",
    "length_extrapolation",
    "model_size_sweep",
    "non_embedding_parameters",
    "task_accuracy",
    "throughput_vs_length",
    "train_icl_transformer",
    "train_linear_self_attention",
]

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
    corpus,
    encodings=POSITIONAL_ENCODINGS,
    train_len: int = 32,
    eval_lens=(32, 64, 128, 256),
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
    corpus,
    sizes=((8, 1), (16, 1), (32, 2), (48, 2), (64, 2)),
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
    def predict(self, x, y, x_query) -> np.ndarray:
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
):
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
):
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


def least_squares_predict(x, y, x_query) -> np.ndarray:
    """Predictions x_query @ w of the minimum-norm least-squares fit w of y ~ x @ w.

    x: (N, d), y: (N,), x_query: (M, d). With N >= d examples (and no noise) this recovers the
    true w; with fewer it picks the smallest w that fits them exactly (np.linalg.lstsq).
    """
    x, y, x_query = (as_float_array(n, a) for n, a in (("x", x), ("y", y), ("x_query", x_query)))
    w, *_ = np.linalg.lstsq(x, y, rcond=None)
    return x_query @ w


def icl_errors(predict, tokens, target, ks, batched: bool = False, return_sem: bool = False):
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


# ============================================================================ KV cache
def kv_cache_speedup(
    model: GPT,
    prompt: torch.Tensor,
    new_tokens=(32, 64, 128, 256),
    repeats: int = 2,
    progress: bool = True,
) -> list[dict]:
    """Greedy generation of each number of new tokens with and without the KV cache, timed.

    Uses attnlab.generation_comparison; the best of `repeats` runs is kept. Returns one dict per
    length: new_tokens, seconds_cached, seconds_uncached, speedup, same (identical tokens).
    """
    require_positive_int("repeats", repeats)
    rows = []
    for n in tqdm(list(new_tokens), desc=tr("generating"), disable=not progress):
        runs = [
            generation_comparison(model, prompt, int(n), temperature=0.0) for _ in range(repeats)
        ]
        cached = min(r["seconds_cached"] for r in runs)
        uncached = min(r["seconds_uncached"] for r in runs)
        rows.append(
            {
                "new_tokens": int(n),
                "seconds_cached": cached,
                "seconds_uncached": uncached,
                "speedup": uncached / cached,
                "same": all(r["same"] for r in runs),
            }
        )
    return rows


def kv_cache_memory(config: GPTConfig, seq_len: int, batch: int = 1, kv_heads=None) -> list[dict]:
    """The KV cache of one GPT per number of key/value heads: measured and by formula.

    For each n_kv_heads (default: n_heads (MHA), n_heads / 4 (GQA) if whole, and 1 (MQA)) a GPT
    is built (keep the config small: it is allocated), its preallocated cache for batch x
    seq_len is created (GPT.new_kv_cache) and its bytes are read; "formula" is
    attnlab.kv_cache_bytes with 4 bytes per float32 element. Also reports the attention
    parameters of one layer, which shrink with the key/value heads too.
    """
    seq_len = require_positive_int("seq_len", seq_len)
    if kv_heads is None:
        h = config.n_heads
        kv_heads = [h] + ([h // 4] if h % 4 == 0 and h >= 8 else []) + [1]
    rows = []
    for n_kv in kv_heads:
        cfg = config.replace(
            n_kv_heads=int(n_kv), context_length=max(config.context_length, seq_len)
        )
        model = GPT(cfg)
        measured = sum(layer_cache.nbytes for layer_cache in model.new_kv_cache(batch, seq_len))
        formula = kv_cache_bytes(
            cfg.n_layers, int(n_kv), cfg.head_dim, seq_len, batch, bytes_per_element=4
        )
        kind = "MHA" if n_kv == cfg.n_heads else ("MQA" if n_kv == 1 else "GQA")
        rows.append(
            {
                "kind": kind,
                "n_kv_heads": int(n_kv),
                "measured_bytes": measured,
                "formula_bytes": formula,
                "attention_params_per_layer": sum(
                    p.numel() for p in model.blocks[0].attn.parameters()
                ),
            }
        )
    return rows


# ============================================================================ FlashAttention
def attention_cost_vs_length(
    lengths=(256, 512, 1024, 2048),
    d: int = 64,
    block_size: int = 64,
    causal: bool = False,
    repeats: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Time and peak memory of standard vs tiled attention (NumPy) at each sequence length.

    Standard: attnlab.scaled_dot_product_attention, which builds the (N, N) scores and weights.
    Tiled: attnlab.flash_attention_numpy with block_size, which never does. Times are the best
    of `repeats`; peak memory is measured in a separate run with tracemalloc
    (attnlab.peak_memory), inputs excluded. Returns one dict per N: n, seconds_standard,
    seconds_tiled, peak_bytes_standard, peak_bytes_tiled, max_abs_diff.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in tqdm(list(lengths), desc=tr("attention"), disable=not progress):
        n = require_positive_int("lengths", int(n))
        q, k, v = (rng.standard_normal((n, d)) for _ in range(3))
        (standard, _), standard_peak = peak_memory(
            scaled_dot_product_attention, q, k, v, causal=causal
        )
        tiled, tiled_peak = peak_memory(
            flash_attention_numpy, q, k, v, causal=causal, block_size=block_size
        )
        rows.append(
            {
                "n": n,
                "seconds_standard": best_time(
                    scaled_dot_product_attention, q, k, v, causal=causal, repeats=repeats
                ),
                "seconds_tiled": best_time(
                    flash_attention_numpy,
                    q,
                    k,
                    v,
                    causal=causal,
                    block_size=block_size,
                    repeats=repeats,
                ),
                "peak_bytes_standard": standard_peak,
                "peak_bytes_tiled": tiled_peak,
                "max_abs_diff": float(np.abs(standard - tiled).max()),
            }
        )
    return rows


# ============================================================================ Mamba vs attention
@torch.no_grad()
def task_accuracy(model: nn.Module, task, n_eval: int = 512, seed: int = 1234) -> float:
    """Accuracy on the scored positions of n_eval fresh sequences of a token task."""
    g = torch.Generator().manual_seed(seed)
    x, y = task.batch(require_positive_int("n_eval", n_eval), g)
    was_training = model.training
    model.eval()
    accuracy = masked_accuracy(model(x), y)
    model.train(was_training)
    return accuracy


@torch.no_grad()
def decode_seconds_per_token(
    model: nn.Module,
    context_len: int,
    batch: int = 8,
    n_steps: int = 8,
    repeats: int = 2,
    seed: int = 0,
) -> float:
    """Seconds to generate one more token (per sequence of a batch) after context_len tokens.

    The prompt is read first (not timed); then n_steps single-token steps are timed and the
    best of `repeats` averages is returned. attnlab.GPT steps with its KV cache, so each step
    attends over everything cached; attnlab.MambaLM steps its fixed-size recurrent state.
    """
    context_len = require_positive_int("context_len", context_len)
    vocab = model.config.vocab_size if isinstance(model, GPT) else model.vocab_size
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab, (batch, context_len), generator=g)
    tokens = torch.randint(0, vocab, (batch, n_steps), generator=g)
    was_training = model.training
    model.eval()
    best = math.inf
    for _ in range(require_positive_int("repeats", repeats)):
        if isinstance(model, GPT):
            cache = model.new_kv_cache(batch, context_len + n_steps)
            model(prompt, kv_cache=cache)
            start = time.perf_counter()
            for t in range(n_steps):
                model(tokens[:, t : t + 1], kv_cache=cache)
        else:
            _, state = model(prompt, return_state=True)
            start = time.perf_counter()
            for t in range(n_steps):
                _, state = model.step(tokens[:, t], state)
        best = min(best, (time.perf_counter() - start) / n_steps)
    model.train(was_training)
    return best


@torch.no_grad()
def throughput_vs_length(
    models: dict,
    lengths=(256, 512, 1024, 2048, 4096),
    batch: int = 8,
    repeats: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Prefill throughput and per-token decoding time of each model at each sequence length.

    models: name -> attnlab.GPT or attnlab.MambaLM (a GPT needs context_length >= max(lengths)
    + 8). For each length L: "prefill_tokens_per_s", a forward pass over a batch of L-token
    sequences (tokens processed per second, best of `repeats`), and "decode_ms_per_token"
    (decode_seconds_per_token with batch sequences). Returns {name: {metric: [value per L]}}.
    """
    g = torch.Generator().manual_seed(seed)
    result = {}
    for name, model in models.items():
        vocab = model.config.vocab_size if isinstance(model, GPT) else model.vocab_size
        model.eval()
        prefill, decode = [], []
        for n in tqdm(list(lengths), desc=name, disable=not progress):
            idx = torch.randint(0, vocab, (batch, int(n)), generator=g)
            seconds = best_time(model, idx, repeats=repeats)
            prefill.append(batch * int(n) / seconds)
            decode.append(
                1e3
                * decode_seconds_per_token(model, int(n), batch=batch, repeats=repeats, seed=seed)
            )
        result[name] = {"prefill_tokens_per_s": prefill, "decode_ms_per_token": decode}
    return result
