"""The course's exercises, one module per concept; importing this package registers them all.

    attention       scaled_dot_product_attention, qkv_attention, causal_mask
    softmax         softmax, softmax_jacobian
    scores          score_statistics, score_variance
    permutation     permutation_check
    multi_head      multi_head_attention
    positional      sinusoidal_positional_encoding, apply_rope, alibi_bias
    blocks          layer_norm, gpt2_block
    hbm             hbm_traffic
    flash           online_softmax_merge, flash_attention_numpy (and memory_limited)
    flash_triton    flash_attention_triton_forward (and forward_with_inner)
    efficient       sparse_mask, linear_attention
    ssm             ssm_discretize, ssm_kernel, selective_scan
    parallel_scan   parallel_scan (and loop_limited)
    kv_cache        kv_cache_bytes, kv_cache_attention_step, grouped_query_attention
    scaling         fit_power_law, chinchilla_optimal
    icl             gd_step_linear_attention
    quiz            quiz_mechanism, quiz_order, quiz_efficiency

Each `Exercise` names the notebook it appears in (`zone`). The notebooks' test cells import
the three grading wrappers from here: `from grader_tests.exercises import forward_with_inner,
loop_limited, memory_limited`.
"""

from . import (
    attention,
    blocks,
    efficient,
    flash,
    flash_triton,
    hbm,
    icl,
    kv_cache,
    multi_head,
    parallel_scan,
    permutation,
    positional,
    quiz,
    scaling,
    scores,
    softmax,
    ssm,
)
from .flash import NotTiledError, memory_limited
from .flash_triton import TritonNotInstalled, forward_with_inner
from .parallel_scan import TimeLoopError, loop_limited

__all__ = [
    "NotTiledError",
    "TimeLoopError",
    "TritonNotInstalled",
    "attention",
    "blocks",
    "efficient",
    "flash",
    "flash_triton",
    "forward_with_inner",
    "hbm",
    "icl",
    "kv_cache",
    "loop_limited",
    "memory_limited",
    "multi_head",
    "parallel_scan",
    "permutation",
    "positional",
    "quiz",
    "scaling",
    "scores",
    "softmax",
    "ssm",
]
