"""Measured demos of Zone 4 (implementation): decoding with a KV cache, the torch attention module
against the NumPy formula, cached vs uncached generation, peak memory and timings, Mamba's
selective scan written as a first-order scan, and small Hugging Face models built from a config.

Every function computes its numbers when called; nothing here is a pasted result. Hugging Face
models are built from a configuration with random weights (nothing is downloaded).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from .._validate import as_float_array, require_ndim, require_positive_int
from ..functional import grouped_query_attention

__all__ = [
    "attention_module_numpy",
    "generation_comparison",
    "incremental_attention",
    "missing_triton",
    "random_hf_gpt2",
    "random_hf_mamba_mixer",
    "scan_loop",
    "selective_scan_with",
    "transformers_available",
]


# ============================================================================ KV cache
def incremental_attention(step, q, k, v):
    """Decode token by token with a KV-cache step function, as a language model generates.

    step(q_new, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache) is
    attnlab.kv_cache_attention_step or the learner's version. q, k, v: (..., H, N, d); the
    caches start empty, (..., H, 0, d). Returns (out (..., H, N, d_v), k_cache, v_cache):
    row t of out is what token t saw with only tokens 0..t cached, so it must equal causal
    attention over the whole sequence.
    """
    q, k, v = (as_float_array(n, a) for n, a in (("q", q), ("k", k), ("v", v)))
    for name, a in (("q", q), ("k", k), ("v", v)):
        require_ndim(name, a, 3)
    k_cache = np.zeros(k.shape[:-2] + (0, k.shape[-1]), dtype=k.dtype)
    v_cache = np.zeros(v.shape[:-2] + (0, v.shape[-1]), dtype=v.dtype)
    outs = []
    for t in range(q.shape[-2]):
        token = slice(t, t + 1)
        out, k_cache, v_cache = step(
            q[..., token, :], k[..., token, :], v[..., token, :], k_cache, v_cache
        )
        outs.append(np.asarray(out))
    return np.concatenate(outs, axis=-2), k_cache, v_cache


def attention_module_numpy(module, x, gqa=grouped_query_attention):
    """The output of an attnlab.Attention module recomputed in NumPy with `gqa`.

    Takes the module's fused qkv and output weights, splits the heads exactly as the module
    does, and calls gqa(q, k, v, causal=module.causal) (attnlab.grouped_query_attention or the
    learner's). x: (B, N, d_model) array. Only modules with absolute positions (learned,
    sinusoidal, none) qualify: RoPE and ALiBi act inside the attention.
    """
    if module.pos in ("rope", "alibi"):
        raise ValueError(
            f"attention_module_numpy needs a module without RoPE/ALiBi, got pos={module.pos!r}"
        )
    x = as_float_array("x", x)
    if x.ndim != 3:
        raise ValueError(f"x must have shape (batch, seq_len, d_model), got {x.shape}")
    batch, n, d_model = x.shape
    hd, n_heads, n_kv = module.head_dim, module.n_heads, module.n_kv_heads

    def linear(layer, inp):  # nn.Linear computes inp @ W^T + b
        out = inp @ layer.weight.detach().double().numpy().T
        if layer.bias is not None:
            out = out + layer.bias.detach().double().numpy()
        return out

    qkv = linear(module.qkv, x)
    q, k, v = np.split(qkv, [d_model, d_model + n_kv * hd], axis=-1)
    q = q.reshape(batch, n, n_heads, hd).transpose(0, 2, 1, 3)  # (B, H, N, hd)
    k = k.reshape(batch, n, n_kv, hd).transpose(0, 2, 1, 3)  # (B, H_kv, N, hd)
    v = v.reshape(batch, n, n_kv, hd).transpose(0, 2, 1, 3)
    heads = np.asarray(gqa(q, k, v, causal=module.causal))
    return linear(module.out, heads.transpose(0, 2, 1, 3).reshape(batch, n, d_model))


# ============================================================================ generation
def generation_comparison(
    model,
    prompt,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
) -> dict:
    """Generate with and without the KV cache from the same seed; compare tokens and time.

    Returns a dict: tokens_cached, tokens_uncached (B, N + max_new_tokens), same (bool),
    seconds_cached, seconds_uncached, speedup. With temperature > 0 both runs draw from the
    same random stream, so they must still pick the same tokens.
    """
    require_positive_int("max_new_tokens", max_new_tokens)
    result = {}
    for name, use_cache in (("cached", True), ("uncached", False)):
        torch.manual_seed(seed)
        start = time.perf_counter()
        tokens = model.generate(
            prompt, max_new_tokens, temperature=temperature, top_k=top_k, use_cache=use_cache
        )
        result[f"seconds_{name}"] = time.perf_counter() - start
        result[f"tokens_{name}"] = tokens
    result["same"] = bool(torch.equal(result["tokens_cached"], result["tokens_uncached"]))
    result["speedup"] = result["seconds_uncached"] / result["seconds_cached"]
    return result


# ============================================================================ scans
def scan_loop(a, b) -> np.ndarray:
    """h_t = a_t h_{t-1} + b_t along the last axis (h_{-1} = 0), one time step after the other.

    The sequential baseline for attnlab.parallel_scan: L dependent steps, each a small
    vectorised operation over the leading axes.
    """
    a, b = np.broadcast_arrays(as_float_array("a", a), as_float_array("b", b))
    if a.ndim < 1:
        raise ValueError(f"a and b need a time axis (..., L), got shape {a.shape}")
    h = np.zeros(a.shape, dtype=np.result_type(a, b))
    previous = np.zeros(a.shape[:-1], dtype=h.dtype)
    for t in range(a.shape[-1]):
        previous = a[..., t] * previous + b[..., t]
        h[..., t] = previous
    return h


def selective_scan_with(scan, u, delta, A, B, C, D=None) -> np.ndarray:
    """Mamba's selective scan (attnlab.selective_scan) computed by a first-order scan `scan`.

    For each channel d and state n the recurrence h_t = exp(delta_t A_dn) h_{t-1}
    + delta_t B_nt u_t is h_t = a_t h_{t-1} + b_t with a_t = exp(delta_t A_dn) and
    b_t = delta_t B_nt u_t, so scan(a, b) (attnlab.parallel_scan or the learner's) runs every
    (batch, channel, state) sequence at once; then y_t = sum_n C_nt h_t (+ D u_t).
    Shapes as attnlab.selective_scan: u, delta (batch, d_inner, L), A (d_inner, d_state),
    B, C (batch, d_state, L), D (d_inner,).
    """
    u, delta, A, B, C = (
        as_float_array(n, x) for n, x in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C))
    )
    if u.ndim != 3 or delta.shape != u.shape or A.ndim != 2 or B.ndim != 3 or C.shape != B.shape:
        raise ValueError(
            "expected u, delta (batch, d_inner, L), A (d_inner, d_state), B, C (batch, d_state, L); "
            f"got u {u.shape}, delta {delta.shape}, A {A.shape}, B {B.shape}, C {C.shape}"
        )
    a = np.exp(delta[:, :, None, :] * A[None, :, :, None])  # (batch, d_inner, d_state, L)
    b = (delta * u)[:, :, None, :] * B[:, None, :, :]
    h = np.asarray(scan(a, b))
    y = np.einsum("bdnl,bnl->bdl", h, C)
    if D is not None:
        y = y + as_float_array("D", D)[None, :, None] * u
    return y


# ============================================================================ Hugging Face
def transformers_available() -> bool:
    """True when Hugging Face transformers can be imported (it is in the dev extra only)."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def random_hf_gpt2(seed: int = 0, **config):
    """A transformers GPT2LMHeadModel with random weights built from GPT2Config(**config), in eval mode.

    Nothing is downloaded. Returns None when transformers is not installed.
    """
    if not transformers_available():
        return None
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(bos_token_id=0, eos_token_id=0, **config)
    return transformers.GPT2LMHeadModel(cfg).eval()


def random_hf_mamba_mixer(seed: int = 0, **config):
    """A transformers MambaMixer (one Mamba block) with random weights from MambaConfig(**config).

    Nothing is downloaded; on a CPU transformers runs its reference PyTorch path (no CUDA
    kernels). Returns None when transformers is not installed.
    """
    if not transformers_available():
        return None
    import logging

    import transformers
    from transformers.models.mamba.modeling_mamba import MambaMixer

    # transformers warns once that the fused CUDA kernels are missing; on a CPU that is expected.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.manual_seed(seed)
    return MambaMixer(transformers.MambaConfig(**config), layer_idx=0).eval()


# ============================================================================ Triton
class _Placeholder:
    """Any attribute, any call: enough for `@triton.jit` and `tl.constexpr` annotations to load."""

    def __getattr__(self, name):
        return _Placeholder()

    def __call__(self, *args, **kwargs):
        return _Placeholder()


class _TritonStandIn:
    """Stands for the triton module when it is not installed: `jit` returns the function unchanged."""

    available = False

    @staticmethod
    def jit(fn=None, **kwargs):
        if fn is None:
            return lambda f: f
        return fn

    def __getattr__(self, name):
        return _Placeholder()


def missing_triton():
    """Stand-ins (triton, tl) for a notebook without Triton, so cells that define kernels still run.

    `@triton.jit` leaves the function as plain Python and `tl.constexpr` annotations load;
    nothing can be launched. Install Triton with: pip install 'attnlab[triton]' (Linux).
    """
    return _TritonStandIn(), _Placeholder()
