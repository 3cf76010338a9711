"""Every grader's variant machinery with no mistake switched on is the reference itself.

The catalogued mistakes (`Mutant`s) of most exercises are built by one builder from the
correct recipe with one step changed (`_mha_variant(split=...)`, `_flash_variant(merge=...)`,
`_triton_variant("no_rescale")`, ...). If the builder's correct recipe drifted from the
reference, its "mistakes" would name the wrong thing: so each builder, with no mistake, must
give the reference's output on every case of its exercise, visible and hidden. The grading
wrappers (memory_limited, loop_limited) around a correct function must not change it either.
"""

from __future__ import annotations

import importlib.util

import attnlab
import numpy as np
import pytest

from grader_tests import REGISTRY, compare
from grader_tests.exercises import (
    attention,
    blocks,
    efficient,
    flash,
    flash_triton,
    hbm,
    icl,
    kv_cache,
    memory_limited,
    multi_head,
    parallel_scan,
    positional,
    quiz,
    scaling,
    ssm,
)
from grader_tests.exercises import loop_limited as _loop_limited
from grader_tests.safe_call import _copy_args

HAS_TRITON = importlib.util.find_spec("triton") is not None


def _hbm_correct(n, d, sram_bytes, bytes_per_element=2):
    standard, flash_, _ = hbm._hbm_parts(n, d, sram_bytes, bytes_per_element)
    return standard * bytes_per_element, flash_ * bytes_per_element


# exercise -> {builder label: the builder with no mistake, called like the reference}
NO_MISTAKE = {
    "scaled_dot_product_attention": {"_sdpa_causal": attention._sdpa_causal(attnlab.causal_mask)},
    "qkv_attention": {"_qkv_variant": attention._qkv_variant()},
    "causal_mask": {"_cm_variant": attention._cm_variant("correct")},
    "multi_head_attention": {"_mha_variant": multi_head._mha_variant()},
    "sinusoidal_positional_encoding": {"_pe_variant": positional._pe_variant()},
    "apply_rope": {"_rope_variant": positional._rope_variant()},
    "alibi_bias": {"_alibi_variant": positional._alibi_variant()},
    "layer_norm": {"_ln_variant": blocks._ln_variant()},
    "gpt2_block": {"_block_variant": blocks._block_variant()},
    "hbm_traffic": {"_hbm_parts": _hbm_correct},
    "online_softmax_merge": {"_merge_variant": flash._merge_variant()},
    "flash_attention_numpy": {
        "_flash_variant": flash._flash_variant(),
        "memory_limited": memory_limited(lambda *a, **k: attnlab.flash_attention_numpy(*a, **k)),
    },
    "flash_attention_triton_forward": {"_triton_variant": flash_triton._triton_variant(None)},
    "sparse_mask": {"_sparse_variant": efficient._sparse_variant()},
    "linear_attention": {
        "_linear_generic": lambda q, k, v, causal=False: efficient._linear_generic(q, k, v, causal)
    },
    "ssm_kernel": {"_kernel_generic": ssm._kernel_generic},
    "selective_scan": {"_scan_generic": ssm._scan_generic},
    "parallel_scan": {
        "_scan": lambda a, b: parallel_scan._scan(a, b),
        "loop_limited": _loop_limited(lambda a, b: attnlab.parallel_scan(a, b)),
    },
    "kv_cache_bytes": {
        "_kv": lambda n_layers, n_kv_heads, head_dim, seq_len, batch=1, bytes_per_element=2: (
            kv_cache._kv(n_layers, n_kv_heads, head_dim, seq_len, batch, bytes_per_element)
        )
    },
    "kv_cache_attention_step": {"_kv_mutant": kv_cache._kv_mutant()},
    "grouped_query_attention": {"_gqa_mutant": kv_cache._gqa_mutant()},
    "chinchilla_optimal": {
        "_chinchilla": lambda flops, tokens_per_param=20.0: scaling._chinchilla(
            flops, tokens_per_param
        )
    },
    "gd_step_linear_attention": {"_gd": icl._gd},
    "quiz_mechanism": {"_answers_with": quiz._answers_with("quiz_mechanism")},
    "quiz_order": {"_answers_with": quiz._answers_with("quiz_order")},
    "quiz_efficiency": {"_answers_with": quiz._answers_with("quiz_efficiency")},
}
# Exercises whose mistakes are separate small functions, with no builder to switch off.
NO_BUILDER = {
    "softmax",
    "softmax_jacobian",
    "score_statistics",
    "score_variance",
    "permutation_check",
    "ssm_discretize",
    "fit_power_law",
}


def test_every_exercise_is_listed_here():
    assert set(NO_MISTAKE) | NO_BUILDER == set(REGISTRY), (
        "add the new exercise's variant builder (with no mistake) to NO_MISTAKE, or its name "
        "to NO_BUILDER"
    )
    assert not set(NO_MISTAKE) & NO_BUILDER


PARAMS = [
    pytest.param(
        name,
        label,
        marks=[pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")]
        if name == "flash_attention_triton_forward"
        else [],
        id=f"{name}::{label}",
    )
    for name, builders in NO_MISTAKE.items()
    for label in builders
]


@pytest.mark.parametrize(("name", "label"), PARAMS)
def test_the_variant_with_no_mistake_is_the_reference(name, label):
    ex = REGISTRY[name]
    variant = NO_MISTAKE[name][label]
    for case in ex.cases():
        args, kwargs = _copy_args(case.args, case.kwargs)
        expected = ex.reference(*args, **kwargs)
        args, kwargs = _copy_args(case.args, case.kwargs)
        with np.errstate(all="ignore"):
            got = variant(*args, **kwargs)
        rtol = ex.rtol if case.rtol is None else case.rtol
        atol = ex.atol if case.atol is None else case.atol
        problem = compare(expected, got, rtol, atol)
        assert problem is None, f"{name} {label} on {case.label}: {problem}"
