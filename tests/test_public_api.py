"""The public API: DESIGN.md's contract names exist with their signatures, and no module's
public name silently shadows another's in the flat `attnlab` namespace."""

from __future__ import annotations

import collections
import importlib
import inspect
import pkgutil

import attnlab

CONTRACT = {
    "softmax": ["x", "axis"],
    "scaled_dot_product_attention": ["q", "k", "v", "mask", "causal"],
    "causal_mask": ["n_q", "n_k"],
    "multi_head_attention": ["x", "w_q", "w_k", "w_v", "w_o", "n_heads", "causal"],
    "sinusoidal_positional_encoding": ["n_positions", "d_model"],
    "apply_rope": ["x", "positions", "base"],
    "alibi_slopes": ["n_heads"],
    "alibi_bias": ["n_heads", "n_q", "n_k"],
    "layer_norm": ["x", "gamma", "beta", "eps"],
    "rms_norm": ["x", "gamma", "eps"],
    "flash_attention_numpy": ["q", "k", "v", "causal", "block_size"],
    "selective_scan": ["u", "delta", "A", "B", "C", "D"],
    "flash_attention_triton": ["q", "k", "v", "causal", "sm_scale"],
}


def test_contract_names_and_signatures():
    for name, params in CONTRACT.items():
        fn = getattr(attnlab, name)
        assert list(inspect.signature(fn).parameters) == params, name
    assert hasattr(attnlab.GPT, "from_hf_gpt2") and hasattr(attnlab.GPT, "generate")
    assert "use_cache" in inspect.signature(attnlab.GPT.generate).parameters
    assert hasattr(attnlab.MambaBlock, "from_hf")
    assert attnlab.GPTConfig is not None


# Modules that import triton (loaded on demand by attnlab.load_triton_kernels, never star-imported).
TRITON_MODULES = {
    f"attnlab.flash.{name}" for name in ("triton_kernels", "triton_backward", "triton_autotune")
}


def _public_modules():
    for info in pkgutil.walk_packages(attnlab.__path__, prefix="attnlab."):
        name = info.name
        if name.split(".")[-1].startswith("_") or info.ispkg or name in TRITON_MODULES:
            continue
        yield importlib.import_module(name)


def test_no_public_name_is_exported_twice():
    owners = collections.defaultdict(list)
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            owners[name].append(module.__name__)
    clashes = {n: m for n, m in owners.items() if len(m) > 1}
    assert not clashes, f"names exported by several modules (one would shadow the other): {clashes}"
    missing = [n for n in owners if not hasattr(attnlab, n)]
    assert not missing, f"declared in __all__ but not reachable as attnlab.<name>: {missing}"
