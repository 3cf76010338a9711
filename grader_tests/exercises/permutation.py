"""Zone 2 exercise: measuring permutation equivariance."""

from __future__ import annotations

import attnlab
import numpy as np

from ..registry import Case, Exercise, Mutant, register

# ---------------------------------------------------------------- the functions being tested

_RNG = np.random.default_rng(21)
_W_Q, _W_K, _W_V = (_RNG.normal(size=(4, 4)) for _ in range(3))
_W_1, _W_2 = _RNG.normal(size=(4, 8)), _RNG.normal(size=(8, 4))


def self_attention(x: np.ndarray) -> np.ndarray:
    """Self-attention with fixed weights and no positions: (..., N, 4) -> (..., N, 4)."""
    return attnlab.qkv_attention(x, _W_Q, _W_K, _W_V)[0]


def attention_with_positions(x: np.ndarray) -> np.ndarray:
    """The same attention after adding sinusoidal position encodings to the tokens."""
    x = np.asarray(x, dtype=float)
    return self_attention(x + attnlab.sinusoidal_positional_encoding(x.shape[-2], x.shape[-1]))


def causal_self_attention(x: np.ndarray) -> np.ndarray:
    """The same attention with a causal mask: token i sees tokens 0..i only."""
    return attnlab.qkv_attention(x, _W_Q, _W_K, _W_V, causal=True)[0]


def token_mlp(x: np.ndarray) -> np.ndarray:
    """The same small MLP applied to each token on its own (a Transformer's feed-forward layer)."""
    return np.tanh(np.asarray(x, dtype=float) @ _W_1) @ _W_2


def running_sum(x: np.ndarray) -> np.ndarray:
    """Token i becomes the sum of tokens 0..i (np.cumsum over the token axis)."""
    return np.cumsum(np.asarray(x, dtype=float), axis=-2)


def _perm_cases():
    rng = np.random.default_rng(22)
    x = rng.normal(size=(6, 4))
    shift = np.array([1, 2, 3, 4, 5, 0])
    swap = np.array([2, 0, 1, 5, 3, 4])
    batch = rng.normal(size=(6, 6, 4))
    batch4 = rng.normal(size=(2, 3, 6, 4))
    return [
        Case(
            "fn = self-attention without positions, x (6, 4), perm = [1, 2, 3, 4, 5, 0]",
            (self_attention, x, shift),
        ),
        Case(
            "fn = the same attention after adding sinusoidal positions, x (6, 4), perm = [1, 2, 3, 4, 5, 0]",
            (attention_with_positions, x, shift),
        ),
        Case(
            "fn = running sum over the tokens (np.cumsum), perm = [2, 0, 1, 5, 3, 4]",
            (running_sum, x, swap),
        ),
        Case(
            "a batch of 3 sequences x (3, 6, 4): permute the token axis (-2), not the batch axis",
            (attention_with_positions, np.random.default_rng(122).normal(size=(3, 6, 4)), swap),
        ),
        Case(
            "a batch of 6 sequences x (6, 6, 4): permute the token axis (-2), not the batch axis",
            (attention_with_positions, batch, shift),
            hidden=True,
        ),
        Case(
            "fn = causal self-attention, perm = [2, 0, 1, 5, 3, 4]",
            (causal_self_attention, x, swap),
            hidden=True,
        ),
        Case("fn = a per-token MLP, x (2, 3, 6, 4)", (token_mlp, batch4, swap), hidden=True),
        Case("the identity permutation", (running_sum, x, np.arange(6)), hidden=True),
        Case(
            "float32 tokens, fn = self-attention",
            (self_attention, x.astype(np.float32), shift),
            hidden=True,
            atol=1e-5,
        ),
    ]


# ---------------------------------------------------------------- typical mistakes


def _parts(fn, x, perm):
    x = np.asarray(x, dtype=float)
    perm = np.asarray(perm)
    return np.asarray(fn(x[..., perm, :])), np.asarray(fn(x))


def _output_not_permuted(fn, x, perm):
    permuted_then_fn, fn_x = _parts(fn, x, perm)
    return float(np.max(np.abs(permuted_then_fn - fn_x)))


def _inverse_permutation(fn, x, perm):
    permuted_then_fn, fn_x = _parts(fn, x, perm)
    return float(np.max(np.abs(permuted_then_fn - fn_x[..., np.argsort(perm), :])))


def _mean_not_max(fn, x, perm):
    permuted_then_fn, fn_x = _parts(fn, x, perm)
    return float(np.mean(np.abs(permuted_then_fn - fn_x[..., perm, :])))


def _no_abs(fn, x, perm):
    permuted_then_fn, fn_x = _parts(fn, x, perm)
    return float(np.max(permuted_then_fn - fn_x[..., perm, :]))


def _frobenius(fn, x, perm):
    permuted_then_fn, fn_x = _parts(fn, x, perm)
    return float(np.linalg.norm(permuted_then_fn - fn_x[..., perm, :]))


def _first_axis(fn, x, perm):
    x = np.asarray(x, dtype=float)
    perm = np.asarray(perm)
    return float(np.max(np.abs(np.asarray(fn(x[perm])) - np.asarray(fn(x))[perm])))


register(
    Exercise(
        name="permutation_check",
        zone="02_intuition",
        reference=attnlab.permutation_check,
        points=2,
        cases=_perm_cases,
        description="max |fn(x[..., perm, :]) - fn(x)[..., perm, :]|",
        mutants=[
            Mutant(
                "output not permuted",
                _output_not_permuted,
                "you compared fn(x[perm]) with fn(x) itself; equivariance says fn(x[perm]) equals "
                "fn(x) with its rows permuted the same way: fn(x)[..., perm, :].",
            ),
            Mutant(
                "inverse permutation on the output",
                _inverse_permutation,
                "the output is permuted with the inverse permutation (np.argsort(perm)); apply the "
                "same perm to both: fn(x[..., perm, :]) against fn(x)[..., perm, :].",
            ),
            Mutant(
                "mean instead of max",
                _mean_not_max,
                "you averaged the differences; return the largest one, np.max(np.abs(...)).",
            ),
            Mutant(
                "max without abs",
                _no_abs,
                "the differences are not made positive: take np.max(np.abs(difference)), or a "
                "large negative difference goes unnoticed.",
            ),
            Mutant(
                "Frobenius norm instead of max",
                _frobenius,
                "you returned the norm of the whole difference; return the largest absolute entry, "
                "np.max(np.abs(...)).",
            ),
            Mutant(
                "permuted the first axis",
                _first_axis,
                "x[perm] permutes the first axis (a batch axis when x has more than 2 dimensions); "
                "the tokens are on axis -2: use x[..., perm, :] and fn(x)[..., perm, :].",
            ),
        ],
    )
)
