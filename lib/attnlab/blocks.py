"""NumPy reference implementations of the rest of a Transformer block, around attention.

LayerNorm and RMSNorm, the GELU and SiLU activations, the SwiGLU feed-forward, and a whole
GPT-2 block that loads Hugging Face's weights (gpt2_block_params). Attention itself (softmax,
masks, multi-head attention) is in attnlab.functional. Shapes follow the course convention
`(..., N, d)`; float32 and float64 both work and the result keeps the input's floating dtype.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ._validate import (
    as_float_array,
    require_divides,
    require_finite,
    require_matrix,
    require_ndim,
    require_positive_int,
)
from .functional import _merge_heads, _split_heads, scaled_dot_product_attention

if TYPE_CHECKING:
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block

__all__ = [
    "gelu",
    "gpt2_block",
    "gpt2_block_params",
    "layer_norm",
    "rms_norm",
    "silu",
    "swiglu",
]


def _norm_params(x: np.ndarray, **params) -> list:
    """Check that each per-feature parameter (gamma, beta) has shape (d,) with d = x.shape[-1]."""
    out = []
    for name, p in params.items():
        p = as_float_array(name, p)
        if p.shape != (x.shape[-1],):
            raise ValueError(
                f"{name} must have shape ({x.shape[-1]},) to match the last axis of x {x.shape}, "
                f"got {p.shape}"
            )
        out.append(p)
    return out


def layer_norm(x: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta.

    Ba et al. 2016. The variance is the biased one (divide by d), as in torch.nn.LayerNorm.
    x: (..., d); gamma, beta: (d,). Returns (..., d).
    """
    x = as_float_array("x", x)
    require_ndim("x", x, 1)
    gamma, beta = _norm_params(x, gamma=gamma, beta=beta)
    require_finite("x", x)
    if not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps}")
    dtype = np.result_type(x, gamma, beta)
    # Like the max-subtraction in softmax: divide each row by its largest |x| first, so that
    # squaring cannot overflow. Scaling x by s leaves LayerNorm unchanged if eps is scaled too:
    # var(x) + eps = s**2 * (var(x / s) + eps / s**2).
    scale = np.max(np.abs(x), axis=-1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    xs = x / scale
    mean = np.mean(xs, axis=-1, keepdims=True)
    var = np.mean((xs - mean) ** 2, axis=-1, keepdims=True)
    with np.errstate(over="ignore"):  # eps / tiny**2 may be inf: the output is then 0
        std = np.sqrt(var + eps / scale / scale)
    # std == 0 only for a constant row (when eps is 0 or lost to underflow): x_hat is then 0.
    x_hat = np.divide(xs - mean, std, out=np.zeros_like(xs), where=std > 0)
    return (x_hat * gamma + beta).astype(dtype, copy=False)


def rms_norm(x: ArrayLike, gamma: ArrayLike, eps: float = 1e-6) -> np.ndarray:
    """RMSNorm over the last axis: x / sqrt(mean(x**2) + eps) * gamma (no mean, no bias).

    Zhang & Sennrich 2019. x: (..., d); gamma: (d,). Returns (..., d).
    """
    x = as_float_array("x", x)
    require_ndim("x", x, 1)
    (gamma,) = _norm_params(x, gamma=gamma)
    require_finite("x", x)
    if not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps}")
    dtype = np.result_type(x, gamma)
    # Divide by the largest |x| first so the squares cannot overflow (see layer_norm).
    scale = np.max(np.abs(x), axis=-1, keepdims=True)
    scale = np.where(scale > 0, scale, 1.0)
    xs = x / scale
    with np.errstate(over="ignore"):  # eps / tiny**2 may be inf: the output is then 0
        rms = np.sqrt(np.mean(xs**2, axis=-1, keepdims=True) + eps / scale / scale)
    # rms == 0 only for an all-zero row with eps = 0: the output is then 0.
    y = np.divide(xs, rms, out=np.zeros_like(xs), where=rms > 0)
    return (y * gamma).astype(dtype, copy=False)


_erf = np.vectorize(math.erf, otypes=[np.float64])  # exact erf without a SciPy dependency


def gelu(x: ArrayLike, approximate: str = "none") -> np.ndarray:
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016).

    approximate="none": exact, 0.5 x (1 + erf(x / sqrt 2)).
    approximate="tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3))), GPT-2's "gelu_new".
    """
    x = as_float_array("x", x)
    if approximate == "none":
        out = 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    elif approximate == "tanh":
        with np.errstate(over="ignore"):  # x**3 -> inf for huge |x| gives tanh = +-1, as it should
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        out = 0.5 * x * (1.0 + np.tanh(inner))
    else:
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return out.astype(x.dtype, copy=False)


def silu(x: ArrayLike) -> np.ndarray:
    """SiLU / swish: x * sigmoid(x) (Elfwing et al. 2018; Ramachandran et al. 2017)."""
    x = as_float_array("x", x)
    # sigmoid through exp(-|x|) never overflows: 1/(1+z) for x >= 0, z/(1+z) for x < 0.
    z = np.exp(-np.abs(x))
    sigmoid = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    return (x * sigmoid).astype(x.dtype, copy=False)


def swiglu(x: ArrayLike, w1: ArrayLike, w2: ArrayLike, w3: ArrayLike) -> np.ndarray:
    """SwiGLU feed-forward (Shazeer 2020): (silu(x @ w1) * (x @ w3)) @ w2.

    x: (..., d); w1, w3: (d, d_ff) (gate and up projections); w2: (d_ff, d_out).
    """
    x = as_float_array("x", x)
    require_ndim("x", x, 1)
    w1, w2, w3 = (as_float_array(n, w) for n, w in (("w1", w1), ("w2", w2), ("w3", w3)))
    for name, w in (("w1", w1), ("w2", w2), ("w3", w3)):
        if w.ndim != 2:
            raise ValueError(f"{name} must be a matrix, got shape {w.shape}")
    d = x.shape[-1]
    require_matrix("w1", w1, (d, w1.shape[1]))
    require_matrix("w3", w3, (d, w1.shape[1]))
    require_matrix("w2", w2, (w1.shape[1], w2.shape[1]))
    return (silu(x @ w1) * (x @ w3)) @ w2


GPT2_BLOCK_KEYS = (
    "ln_1.weight",
    "ln_1.bias",
    "attn.c_attn.weight",
    "attn.c_attn.bias",
    "attn.c_proj.weight",
    "attn.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
)


def gpt2_block(x: ArrayLike, params: dict, n_heads: int) -> np.ndarray:
    """One GPT-2 block (Radford et al. 2019): Pre-LN, causal multi-head attention, GELU MLP.

        h = x + Attn(LN_1(x))        Attn: causal, n_heads heads, qkv = z @ W_attn + b_attn
        y = h + MLP(LN_2(h))         MLP: gelu_tanh(z @ W_fc + b_fc) @ W_proj + b_proj

    x: (..., N, d). params: NumPy arrays named as Hugging Face's GPT2Block state_dict
    (see GPT2_BLOCK_KEYS; weights use HF's Conv1D convention y = x @ W + b, so
    "attn.c_attn.weight" is (d, 3d) holding [W_q | W_k | W_v]). LayerNorm eps is 1e-5.
    Returns y (..., N, d).
    """
    x = as_float_array("x", x)
    require_ndim("x", x, 2)
    d = x.shape[-1]
    n_heads = require_positive_int("n_heads", n_heads)
    require_divides("n_heads", n_heads, "d_model", d)
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
    missing = [key for key in GPT2_BLOCK_KEYS if key not in params]
    if missing:
        raise ValueError(f"params is missing the keys {missing}")
    p = {key: as_float_array(f"params[{key!r}]", params[key]) for key in GPT2_BLOCK_KEYS}
    d_ff = p["mlp.c_fc.weight"].shape[-1]
    expected = {
        "ln_1.weight": (d,),
        "ln_1.bias": (d,),
        "ln_2.weight": (d,),
        "ln_2.bias": (d,),
        "attn.c_attn.weight": (d, 3 * d),
        "attn.c_attn.bias": (3 * d,),
        "attn.c_proj.weight": (d, d),
        "attn.c_proj.bias": (d,),
        "mlp.c_fc.weight": (d, d_ff),
        "mlp.c_fc.bias": (d_ff,),
        "mlp.c_proj.weight": (d_ff, d),
        "mlp.c_proj.bias": (d,),
    }
    for key, shape in expected.items():
        require_matrix(f"params[{key!r}]", p[key], shape)

    # Attention sub-layer, with the residual around it.
    z = layer_norm(x, p["ln_1.weight"], p["ln_1.bias"], eps=1e-5)
    qkv = z @ p["attn.c_attn.weight"] + p["attn.c_attn.bias"]
    q, k, v = (_split_heads(part, n_heads) for part in np.split(qkv, 3, axis=-1))
    heads, _ = scaled_dot_product_attention(q, k, v, causal=True)
    h = x + _merge_heads(heads) @ p["attn.c_proj.weight"] + p["attn.c_proj.bias"]

    # Feed-forward sub-layer, with the residual around it.
    z = layer_norm(h, p["ln_2.weight"], p["ln_2.bias"], eps=1e-5)
    hidden = gelu(z @ p["mlp.c_fc.weight"] + p["mlp.c_fc.bias"], approximate="tanh")
    return h + hidden @ p["mlp.c_proj.weight"] + p["mlp.c_proj.bias"]


def gpt2_block_params(hf_block: GPT2Block) -> dict:
    """The weights of a Hugging Face `GPT2Block` as float64 NumPy arrays, keyed for gpt2_block."""
    state = hf_block.state_dict()
    missing = [key for key in GPT2_BLOCK_KEYS if key not in state]
    if missing:
        raise ValueError(f"hf_block has no parameters {missing}; is it a transformers GPT2Block?")
    return {key: state[key].detach().cpu().double().numpy() for key in GPT2_BLOCK_KEYS}
