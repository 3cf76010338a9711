"""Figures and ipywidgets explorers of the notebooks, one module per concept; each explorer
falls back to a static figure when no widget frontend is present (see plots.controls)."""

from . import (
    attention_grid,
    axes,
    controls,
    curves,
    efficiency,
    flash_tiles,
    fossils,
    lecture_map,
    masks,
    positions,
    softmax_scale,
)
from .attention_grid import *
from .axes import *
from .controls import *
from .curves import *
from .efficiency import *
from .flash_tiles import *
from .fossils import *
from .lecture_map import *
from .masks import *
from .positions import *
from .softmax_scale import *

__all__ = [
    *attention_grid.__all__,
    *axes.__all__,
    *curves.__all__,
    *efficiency.__all__,
    *flash_tiles.__all__,
    *fossils.__all__,
    *lecture_map.__all__,
    *controls.__all__,
    *masks.__all__,
    *positions.__all__,
    *softmax_scale.__all__,
]
