"""Measured demos of the notebooks (training runs, sweeps), one module per concept."""

from . import (
    efficiency,
    fossils,
    icl,
    kv_cache,
    kv_compression,
    positions,
    pretrained,
    residuals,
    scaling_laws,
    selective_scan,
    softmax_scale,
    triton_standin,
)
from .efficiency import *
from .fossils import *
from .icl import *
from .kv_cache import *
from .kv_compression import *
from .positions import *
from .pretrained import *
from .residuals import *
from .scaling_laws import *
from .selective_scan import *
from .softmax_scale import *
from .triton_standin import *

__all__ = [
    *efficiency.__all__,
    *fossils.__all__,
    *icl.__all__,
    *kv_cache.__all__,
    *kv_compression.__all__,
    *positions.__all__,
    *pretrained.__all__,
    *residuals.__all__,
    *scaling_laws.__all__,
    *selective_scan.__all__,
    *softmax_scale.__all__,
    *triton_standin.__all__,
]
