"""attnlab: the library behind the course "Attention and the Transformer".

NumPy reference functions (NumPy in, NumPy out, shapes (..., N, d)) and torch modules,
imported by every notebook, grader and benchmark. The public API is listed in docs/DESIGN.md;
each submodule declares its part in `__all__`.
"""

from . import (
    blocks,
    course,
    data,
    demos,
    efficient,
    flash,
    functional,
    i18n,
    kv_compress,
    mamba,
    mamba_scan,
    measure,
    nn,
    plots,
    positional,
    scaling,
    ssm,
    train,
    viz,
)
from .blocks import *
from .course import *
from .data import *
from .demos import *
from .efficient import *
from .flash import *
from .functional import *
from .i18n import *
from .kv_compress import *
from .mamba import *
from .mamba_scan import *
from .measure import *
from .nn import *
from .plots import *
from .positional import *
from .scaling import *
from .ssm import *
from .train import *
from .viz import *

__version__ = "0.1.0"

if i18n.language() == "ja":  # the Japanese edition's figures: a font with Japanese glyphs
    viz.use_japanese_font()
