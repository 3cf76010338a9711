"""FlashAttention: NumPy tiled reference (forward and backward), HBM traffic model, Triton kernels,
and the kernels' measured GPU speed (`gpu_measurements`, data in measurements/).

The Triton side (`triton_attention`) imports triton only when called, so this package imports
without it; the kernels themselves are in `triton_kernels` (forward), `triton_backward` and
`triton_autotune` (GPU configurations), which do import triton.
"""

from .gpu_results import format_gpu_measurements, gpu_measurement_ratios, gpu_measurements
from .hbm import HBMCount, count_hbm_traffic, flash_block_sizes, hbm_traffic
from .numpy_tiled import (
    flash_attention_numpy,
    flash_attention_numpy_backward,
    flash_attention_numpy_forward,
    online_softmax_merge,
)
from .triton_attention import (
    FlashAttentionTriton,
    flash_attention_triton,
    flash_attention_triton_backward,
    flash_attention_triton_forward,
    load_triton_kernels,
)

__all__ = [
    "FlashAttentionTriton",
    "HBMCount",
    "count_hbm_traffic",
    "flash_attention_numpy",
    "flash_attention_numpy_backward",
    "flash_attention_numpy_forward",
    "flash_attention_triton",
    "flash_attention_triton_backward",
    "flash_attention_triton_forward",
    "flash_block_sizes",
    "format_gpu_measurements",
    "gpu_measurement_ratios",
    "gpu_measurements",
    "hbm_traffic",
    "load_triton_kernels",
    "online_softmax_merge",
]
