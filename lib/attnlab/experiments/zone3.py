"""Measured demos of Zone 3a (derivations): each one checks a claim of the lecture numerically.

- score_variance_monte_carlo: Var(q . k) = d_k sigma_q^2 sigma_k^2, by sampling;
- positional_similarity / relative_position_check: how each positional encoding makes
  attention see distance, and whether a score depends on the offset m - n only;
- residual_gradient_demo, gradient_norms_by_depth: gradients through deep stacks, with and
  without residual connections, Pre-LN vs Post-LN (Xiong et al. 2020);
- random_gpt2_block_params, gpt2_block_torch, gpt2_block_hf: the same GPT-2 block weights
  in NumPy, in attnlab's torch block and in Hugging Face's GPT2Block.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validate import require_positive_int
from ..functional import GPT2_BLOCK_KEYS, score_variance
from ..nn import GPTConfig, TransformerBlock
from ..nn.gpt import gpt2_block_state_dict
from ..positional import alibi_bias, apply_rope, sinusoidal_positional_encoding
from ..train import torch_threads

__all__ = [
    "gpt2_block_hf",
    "gpt2_block_torch",
    "gradient_norms_by_depth",
    "positional_similarity",
    "random_gpt2_block_params",
    "relative_position_check",
    "residual_gradient_demo",
    "score_variance_monte_carlo",
]

POSITION_KINDS = ("sinusoidal", "rope", "alibi")


# ============================================================================ Var(q . k)
def score_variance_monte_carlo(
    d_k: int,
    n_samples: int = 10_000,
    q_var: float = 1.0,
    k_var: float = 1.0,
    scaled: bool = False,
    distribution: str = "normal",
    seed: int = 0,
) -> dict:
    """Sample n_samples pairs (q, k) with i.i.d. zero-mean entries and measure Var(q . k).

    distribution: "normal" or "uniform" (uniform on [-a, a] with a = sqrt(3 var), which has
    the same variance): the derivation assumes independence and zero mean only, not a shape.
    scaled=True measures q . k / sqrt(d_k). Returns a dict with the empirical variance, the
    predicted one (attnlab.score_variance), the standard error of the empirical variance,
    sqrt((m4 - s^4) / n) with m4 the fourth central moment, and z = (empirical - predicted) / se.
    """
    d_k = require_positive_int("d_k", d_k)
    n_samples = require_positive_int("n_samples", n_samples)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 to estimate a variance, got {n_samples}")
    if distribution not in ("normal", "uniform"):
        raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")
    predicted = score_variance(d_k, q_var, k_var, scaled=scaled)
    rng = np.random.default_rng(seed)

    def draw(var, shape):
        if distribution == "normal":
            return rng.normal(0.0, math.sqrt(var), size=shape)
        half_width = math.sqrt(3.0 * var)
        return rng.uniform(-half_width, half_width, size=shape)

    scores = np.empty(n_samples)
    chunk = max(1, 2_000_000 // d_k)  # keep each (chunk, d_k) draw around 16 MB
    for start in range(0, n_samples, chunk):
        stop = min(n_samples, start + chunk)
        q = draw(q_var, (stop - start, d_k))
        k = draw(k_var, (stop - start, d_k))
        scores[start:stop] = np.sum(q * k, axis=-1)
    if scaled:
        scores /= math.sqrt(d_k)
    centred = scores - scores.mean()
    empirical = float(np.mean(centred**2))
    m4 = float(np.mean(centred**4))
    std_error = math.sqrt(max(m4 - empirical**2, 0.0) / n_samples)
    z = (empirical - predicted) / std_error if std_error > 0 else 0.0
    return {
        "d_k": d_k,
        "distribution": distribution,
        "scaled": scaled,
        "empirical": empirical,
        "predicted": predicted,
        "std_error": std_error,
        "z": z,
    }


# ============================================================================ positions
def positional_similarity(
    kind: str,
    max_distance: int = 128,
    d_model: int = 64,
    base: float = 10000.0,
    n_heads: int = 8,
    position: int = 0,
    seed: int = 0,
):
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


def relative_position_check(kind: str, n: int = 24, d: int = 16, seed: int = 0):
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


# ============================================================================ GPT-2 block
def random_gpt2_block_params(
    d_model: int, d_ff: int | None = None, seed: int = 0, dtype=np.float64
) -> dict:
    """Random weights for one GPT-2 block, keyed like Hugging Face's GPT2Block state_dict.

    Matrices use HF's Conv1D layout (in, out) with entries N(0, 1/in), so activations stay
    of order 1 and every part of the block matters; LayerNorm weights 1 + N(0, 0.1^2) and
    all biases N(0, 0.1^2). d_ff defaults to 4 * d_model. Returns a dict of NumPy arrays.
    """
    d = require_positive_int("d_model", d_model)
    d_ff = 4 * d if d_ff is None else require_positive_int("d_ff", d_ff)
    rng = np.random.default_rng(seed)
    shapes = {
        "ln_1.weight": (d,),
        "ln_1.bias": (d,),
        "attn.c_attn.weight": (d, 3 * d),
        "attn.c_attn.bias": (3 * d,),
        "attn.c_proj.weight": (d, d),
        "attn.c_proj.bias": (d,),
        "ln_2.weight": (d,),
        "ln_2.bias": (d,),
        "mlp.c_fc.weight": (d, d_ff),
        "mlp.c_fc.bias": (d_ff,),
        "mlp.c_proj.weight": (d_ff, d),
        "mlp.c_proj.bias": (d,),
    }
    params = {}
    for key in GPT2_BLOCK_KEYS:
        shape = shapes[key]
        if len(shape) == 2:
            value = rng.normal(size=shape) / math.sqrt(shape[0])
        elif key.startswith("ln") and key.endswith("weight"):
            value = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            value = 0.1 * rng.normal(size=shape)
        params[key] = value.astype(dtype)
    return params


def _block_shapes(params: dict, n_heads: int) -> tuple[int, int]:
    missing = [key for key in GPT2_BLOCK_KEYS if key not in params]
    if missing:
        raise ValueError(f"params is missing the keys {missing}")
    d_model, d_ff = np.shape(params["mlp.c_fc.weight"])
    require_positive_int("n_heads", n_heads)
    if d_model % n_heads:
        raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
    return d_model, d_ff


def gpt2_block_torch(params: dict, n_heads: int, eps: float = 1e-5) -> TransformerBlock:
    """attnlab's torch TransformerBlock (GPT-2 style, float64, eval mode) holding `params`.

    params: as for attnlab.gpt2_block. HF's Conv1D stores weights as (in, out) while
    nn.Linear stores (out, in), so every matrix is transposed on the way in.
    """
    d_model, d_ff = _block_shapes(params, n_heads)
    config = GPTConfig.gpt2_style(
        d_model=d_model, n_heads=n_heads, d_ff=d_ff, n_layers=1, norm_eps=eps
    )
    block = TransformerBlock(config, causal=True).double().eval()
    block.load_state_dict(
        gpt2_block_state_dict({k: np.asarray(v, dtype=np.float64) for k, v in params.items()})
    )
    return block


def gpt2_block_hf(params: dict, n_heads: int, eps: float = 1e-5):
    """Hugging Face's GPT2Block (float64, eval mode, eager attention) holding `params`.

    Needs the optional `transformers` package (in attnlab's dev extra): raises ImportError
    with the install command otherwise. HF's block takes the causal mask from its caller, as
    an additive (1, 1, N, N) tensor of 0 (may attend) and -inf (may not).
    """
    try:
        from transformers import GPT2Config
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block
    except ImportError as err:
        raise ImportError(
            "gpt2_block_hf needs Hugging Face transformers: pip install transformers "
            '(or pip install -e ".[dev]" in the attnlab repository)'
        ) from err
    d_model, d_ff = _block_shapes(params, n_heads)
    config = GPT2Config(
        n_embd=d_model,
        n_head=n_heads,
        n_inner=d_ff,
        n_layer=1,
        layer_norm_epsilon=eps,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    config._attn_implementation = "eager"
    block = GPT2Block(config, layer_idx=0).double().eval()
    state = {
        key: torch.as_tensor(np.asarray(params[key], dtype=np.float64)) for key in GPT2_BLOCK_KEYS
    }
    block.load_state_dict(state)
    return block
