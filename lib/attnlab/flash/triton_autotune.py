"""GPU autotuning of the FlashAttention kernels: candidate configurations and the autotuners.

The interpreter uses one small fixed configuration instead (see
attnlab.flash.triton_attention), so none of this runs on a CPU.
"""

from __future__ import annotations

import os

import triton
from triton.runtime import Autotuner

from .triton_backward import attn_bwd_dkdv_kernel, attn_bwd_dq_kernel
from .triton_kernels import attn_fwd_kernel

__all__ = ["CONFIGS", "autotuned", "config_class"]


def _cfg(block_m, block_n, warps, stages):
    return triton.Config(
        {"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps, num_stages=stages
    )


# Candidates per kernel, by head-dim class: "64" for d <= 64, "128" for 64 < d <= 128, and
# "fp32" for float32 inputs (4-byte tiles need half the shared memory per stage). Shapes suit
# Hopper (H100/H200): wgmma works on 64-row warpgroups, so the forward takes 128 query rows
# per program with 64 or 128 keys per step; a 128 x 128 score tile needs 8 warps to stay in
# registers, and at d = 128 a third stage of 128-key K/V tiles would not fit in shared
# memory. The backward follows the FlashAttention-2 split: dK/dV per 64..128-key block
# stepping over 32..64 queries, dQ per 64..128-query block stepping over 32..64 keys.
# Every candidate is compiled for sm_90 in tests/test_flash_triton.py, which checks that it
# fits Hopper's shared memory. Set ATTNLAB_TRITON_AUTOTUNE=wide to search the larger
# space in _WIDE instead (slow: to check on a new GPU that the winners are still listed).
CONFIGS = {
    "fwd": {
        "64": [
            _cfg(128, 64, 4, 3),
            _cfg(128, 64, 4, 4),
            _cfg(128, 128, 8, 3),
            _cfg(128, 128, 8, 4),
        ],
        "128": [
            _cfg(128, 64, 4, 2),
            _cfg(128, 64, 4, 3),
            _cfg(128, 64, 8, 3),
            _cfg(128, 128, 8, 2),
        ],
        "fp32": [_cfg(64, 64, 4, 2), _cfg(128, 32, 4, 2)],
    },
    "dkdv": {
        "64": [_cfg(32, 128, 4, 3), _cfg(64, 128, 8, 3), _cfg(64, 64, 4, 3)],
        "128": [_cfg(32, 128, 4, 2), _cfg(64, 128, 8, 2), _cfg(64, 64, 4, 2)],
        "fp32": [_cfg(32, 64, 4, 2), _cfg(64, 64, 4, 2)],
    },
    "dq": {
        "64": [_cfg(128, 32, 4, 3), _cfg(128, 64, 8, 3), _cfg(64, 64, 4, 3)],
        "128": [_cfg(128, 32, 4, 2), _cfg(128, 64, 8, 2), _cfg(64, 64, 4, 2)],
        "fp32": [_cfg(64, 32, 4, 2), _cfg(64, 64, 4, 2)],
    },
}

_WIDE = {
    kernel: [_cfg(bm, bn, w, s) for bm, bn in pairs for w in (4, 8) for s in (2, 3, 4)]
    for kernel, pairs in (
        ("fwd", [(64, 64), (64, 128), (128, 32), (128, 64), (128, 128)]),
        ("dkdv", [(32, 64), (32, 128), (64, 64), (64, 128)]),
        ("dq", [(64, 32), (64, 64), (128, 32), (128, 64)]),
    )
}


def config_class(head_dim: int, element_size: int) -> str:
    """The CONFIGS class for a head dim and an input element size in bytes."""
    if element_size >= 4:
        return "fp32"
    return "64" if head_dim <= 64 else "128"


def _pruner(kernel: str):
    """early_config_prune for one kernel: keep the candidates of the call's class."""

    def prune(configs, named_args, **kwargs):
        if os.environ.get("ATTNLAB_TRITON_AUTOTUNE", "").lower() == "wide":
            return _WIDE[kernel]
        return CONFIGS[kernel][config_class(kwargs["HEAD_DIM"], named_args["Q"].element_size())]

    return prune


# Tuned again for every new sequence length, head dim, causal flag and dtype (the autotuner
# adds the tensors' dtypes to the key).
_KEY = ["N_Q", "N_K", "HEAD_DIM", "CAUSAL"]


def autotuned() -> tuple[Autotuner, Autotuner, Autotuner]:
    """Autotuned versions of the three main kernels for a GPU: (forward, dkdv, dq).

    Built on demand (never under the interpreter). Each call tries only the CONFIGS
    candidates of its head-dim class. The timings are cached on disk (cache_results=True,
    under TRITON_CACHE_DIR, default ~/.triton/cache), next to the compiled kernels, so a
    later process on the same machine and Triton version skips both compiling and tuning.
    A configuration that does not fit the GPU is skipped by the autotuner.
    """
    global _AUTOTUNED
    if _AUTOTUNED is None:
        kernels = []
        for name, fn in (
            ("fwd", attn_fwd_kernel),
            ("dkdv", attn_bwd_dkdv_kernel),
            ("dq", attn_bwd_dq_kernel),
        ):
            candidates = [c for configs in CONFIGS[name].values() for c in configs]
            kernels.append(
                triton.autotune(
                    candidates + _WIDE[name],
                    key=_KEY,
                    cache_results=True,
                    prune_configs_by={"early_config_prune": _pruner(name)},
                )(fn)
            )
        _AUTOTUNED = tuple(kernels)
    return _AUTOTUNED


_AUTOTUNED = None
