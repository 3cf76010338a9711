"""The Transformer block (zone 3a): layer norm and a whole GPT-2 block in NumPy."""

from __future__ import annotations

import attnlab
import numpy as np
from attnlab.functional import _merge_heads, _split_heads

from ..registry import Case, Exercise, Mutant, register
from .multi_head import _split_no_transpose

# ============================================================================ layer_norm


def _ln_cases():
    rng = np.random.default_rng(33)
    d6 = rng.normal(size=6)
    return [
        Case("x (2, 4), gamma = 1, beta = 0", (rng.normal(size=(2, 4)), np.ones(4), np.zeros(4))),
        Case("x (3, 6) with random gamma and beta", (rng.normal(size=(3, 6)), 1 + 0.5 * d6, d6)),
        Case(
            "x (2, 5), eps = 0.1", (rng.normal(size=(2, 5)), np.ones(5), np.zeros(5)), {"eps": 0.1}
        ),
        Case(
            "a (2, 3, 4) batch: statistics over the last axis only",
            (np.random.default_rng(133).normal(size=(2, 3, 4)), np.ones(4), np.zeros(4)),
        ),
        Case(
            "a (2, 3, 8) batch, mean 5 and std 3",
            (5 + 3 * rng.normal(size=(2, 3, 8)), rng.normal(size=8), rng.normal(size=8)),
            hidden=True,
        ),
        Case(
            "a constant row (variance 0)",
            (np.full((1, 4), 2.0), np.ones(4), np.arange(4.0)),
            hidden=True,
        ),
        Case("one token x (8,)", (rng.normal(size=8), np.ones(8), np.zeros(8)), hidden=True),
        Case(
            "x (4, 3) with eps = 1.0",
            (rng.normal(size=(4, 3)), np.ones(3), np.zeros(3)),
            {"eps": 1.0},
            hidden=True,
        ),
        Case(
            "float32 x (3, 16)",
            (
                rng.normal(size=(3, 16)).astype(np.float32),
                np.ones(16, np.float32),
                np.zeros(16, np.float32),
            ),
            hidden=True,
            rtol=1e-4,
            atol=1e-5,
        ),
    ]


def _ln_variant(ddof=0, eps_outside=False, axis=-1, affine=True, centre=True, beta_inside=False):
    def ln(x, gamma, beta, eps=1e-5):
        x = np.asarray(x, dtype=float)
        ax = axis if x.ndim > 1 else -1
        mean = x.mean(axis=ax, keepdims=True) if centre else 0.0
        n = x.shape[ax]
        var = np.sum((x - mean) ** 2, axis=ax, keepdims=True) / max(n - ddof, 1)
        std = np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps)
        x_hat = (x - mean) / std
        if not affine:
            return x_hat
        return (x_hat + beta) * gamma if beta_inside else x_hat * gamma + beta

    return ln


register(
    Exercise(
        name="layer_norm",
        zone="03_derivations",
        reference=attnlab.layer_norm,
        points=2,
        cases=_ln_cases,
        description="(x - mean) / sqrt(var + eps) * gamma + beta over the last axis",
        mutants=[
            Mutant(
                "unbiased variance",
                _ln_variant(ddof=1),
                "the variance is divided by d - 1: LayerNorm uses the biased variance, "
                "np.mean((x - mean)**2, axis=-1) (np.var with the default ddof=0).",
            ),
            Mutant(
                "eps outside the square root",
                _ln_variant(eps_outside=True),
                "eps goes inside the square root: (x - mean) / np.sqrt(var + eps).",
            ),
            Mutant(
                "normalised over the wrong axis",
                _ln_variant(axis=0),
                "normalised over the wrong axis: each token (the last axis, "
                "axis=-1 with keepdims=True) gets its own mean and variance.",
            ),
            Mutant(
                "forgot gamma and beta",
                _ln_variant(affine=False),
                "gamma and beta are not applied: return x_hat * gamma + beta.",
            ),
            Mutant(
                "mean not subtracted",
                _ln_variant(centre=False),
                "the mean is not subtracted (that is RMSNorm): LayerNorm centres x first.",
            ),
            Mutant(
                "beta added before gamma",
                _ln_variant(beta_inside=True),
                "the order is x_hat * gamma + beta: scale first, then shift.",
            ),
        ],
    )
)


# ============================================================================ gpt2_block


def _block_cases():
    rng = np.random.default_rng(34)
    p16 = attnlab.random_gpt2_block_params(16, seed=1)
    p24 = attnlab.random_gpt2_block_params(24, d_ff=48, seed=2)
    p16_32 = attnlab.random_gpt2_block_params(16, seed=3, dtype=np.float32)
    return [
        Case("x (5, 16), random weights, 4 heads", (rng.normal(size=(5, 16)), p16, 4)),
        Case("a batch x (2, 6, 16), 2 heads", (rng.normal(size=(2, 6, 16)), p16, 2)),
        Case("one token x (1, 16), 4 heads", (rng.normal(size=(1, 16)), p16, 4), hidden=True),
        Case("x (4, 16), one head", (rng.normal(size=(4, 16)), p16, 1), hidden=True),
        Case("x (7, 24), 3 heads, d_ff = 48", (rng.normal(size=(7, 24)), p24, 3), hidden=True),
        Case(
            "a (2, 2, 5, 24) batch, 6 heads", (rng.normal(size=(2, 2, 5, 24)), p24, 6), hidden=True
        ),
        Case(
            "float32 x and weights (6, 16), 4 heads",
            (rng.normal(size=(6, 16)).astype(np.float32), p16_32, 4),
            hidden=True,
            rtol=1e-3,
            atol=1e-4,
        ),
    ]


def _block_variant(
    post_ln=False,
    act="tanh",
    causal=True,
    attn_residual=True,
    mlp_residual=True,
    qkv_order=(0, 1, 2),
    scale="head",
    split="ok",
):
    ln = attnlab.layer_norm

    def attention(z, p, n_heads):
        qkv = z @ p["attn.c_attn.weight"] + p["attn.c_attn.bias"]
        parts = np.split(qkv, 3, axis=-1)
        q, k, v = (parts[i] for i in qkv_order)
        split_fn = _split_heads if split == "ok" else _split_no_transpose
        q, k, v = (split_fn(t, n_heads) for t in (q, k, v))
        d = {"head": q.shape[-1], "model": z.shape[-1]}[scale]
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
        if causal:
            s = np.where(attnlab.causal_mask(s.shape[-2], s.shape[-1]), s, -np.inf)
        heads = attnlab.softmax(s, axis=-1) @ v
        return _merge_heads(heads) @ p["attn.c_proj.weight"] + p["attn.c_proj.bias"]

    def mlp(z, p):
        pre = z @ p["mlp.c_fc.weight"] + p["mlp.c_fc.bias"]
        hidden = {
            "tanh": lambda t: attnlab.gelu(t, approximate="tanh"),
            "exact": attnlab.gelu,
            "relu": lambda t: np.maximum(t, 0.0),
        }[act](pre)
        return hidden @ p["mlp.c_proj.weight"] + p["mlp.c_proj.bias"]

    def block(x, params, n_heads):
        x = np.asarray(x, dtype=float)
        p = {key: np.asarray(value, dtype=float) for key, value in params.items()}
        ln1 = (p["ln_1.weight"], p["ln_1.bias"])
        ln2 = (p["ln_2.weight"], p["ln_2.bias"])
        if post_ln:
            h = ln(x + attention(x, p, n_heads), *ln1)
            return ln(h + mlp(h, p), *ln2)
        a = attention(ln(x, *ln1), p, n_heads)
        h = x + a if attn_residual else a
        m = mlp(ln(h, *ln2), p)
        return h + m if mlp_residual else m

    return block


register(
    Exercise(
        name="gpt2_block",
        zone="03_derivations",
        reference=attnlab.gpt2_block,
        points=4,
        cases=_block_cases,
        description="h = x + Attn(LN_1(x)); y = h + MLP(LN_2(h)), causal, tanh-GELU",
        mutants=[
            Mutant(
                "Post-LN",
                _block_variant(post_ln=True),
                "that is Post-LN, LN(x + Attn(x)). GPT-2 normalises the input of each "
                "sub-layer and adds the result to the unnormalised stream: "
                "h = x + Attn(LN_1(x)), y = h + MLP(LN_2(h)).",
            ),
            Mutant(
                "exact GELU instead of tanh",
                _block_variant(act="exact"),
                "GPT-2 uses the tanh approximation of GELU: 0.5 u (1 + tanh(sqrt(2/pi) "
                "(u + 0.044715 u^3))) (attnlab.gelu(u, approximate='tanh')).",
            ),
            Mutant(
                "ReLU instead of GELU",
                _block_variant(act="relu"),
                "the MLP's activation is GELU (tanh form), not ReLU.",
            ),
            Mutant(
                "missing causal mask",
                _block_variant(causal=False),
                "the causal mask is missing: a GPT-2 token may only attend to itself and "
                "earlier tokens (attnlab.causal_mask, or your own causal_mask).",
            ),
            Mutant(
                "missing the attention residual",
                _block_variant(attn_residual=False),
                "the residual around attention is missing: h = x + Attn(LN_1(x)).",
            ),
            Mutant(
                "missing the MLP residual",
                _block_variant(mlp_residual=False),
                "the residual around the MLP is missing: y = h + MLP(LN_2(h)).",
            ),
            Mutant(
                "q, k, v in the wrong order",
                _block_variant(qkv_order=(1, 0, 2)),
                "c_attn's output holds [q | k | v] in that order along the last axis: "
                "q, k, v = np.split(qkv, 3, axis=-1).",
            ),
            Mutant(
                "scores scaled by sqrt(d_model)",
                _block_variant(scale="model"),
                "each head's scores are divided by sqrt(d_head) = sqrt(d_model // n_heads), "
                "not sqrt(d_model).",
            ),
            Mutant(
                "heads split by reshape without transpose",
                _block_variant(split="bad"),
                "the heads are split with a plain reshape to (..., n_heads, N, d_head): "
                "reshape to (..., N, n_heads, d_head), then swap axes -3 and -2.",
            ),
        ],
    )
)
