"""FlashAttention: NumPy tiled reference (forward and backward), HBM traffic model, Triton kernels.

The Triton side (`triton_attention`) imports triton only when called, so this package imports
without it; the kernels themselves are in `triton_kernels` (which does import triton).
"""

from .hbm import *  # noqa: F401,F403
from .hbm import __all__ as _hbm_all
from .numpy_tiled import *  # noqa: F401,F403
from .numpy_tiled import __all__ as _numpy_all
from .triton_attention import *  # noqa: F401,F403
from .triton_attention import __all__ as _triton_all

__all__ = [*_numpy_all, *_hbm_all, *_triton_all]
