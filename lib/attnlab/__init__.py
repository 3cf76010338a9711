"""attnlab: the library behind the course "Attention and the Transformer".

NumPy reference functions (NumPy in, NumPy out, shapes (..., N, d)) and torch modules,
imported by every notebook, grader and benchmark. The public API is listed in DESIGN.md;
each submodule declares its part in `__all__`.
"""

from .functional import *  # noqa: F401,F403
from .positional import *  # noqa: F401,F403
from .efficient import *  # noqa: F401,F403
from .ssm import *  # noqa: F401,F403
from .flash import *  # noqa: F401,F403
from .nn import *  # noqa: F401,F403
from .mamba import *  # noqa: F401,F403
from .kv_compress import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .train import *  # noqa: F401,F403
from .scaling import *  # noqa: F401,F403
from .measure import *  # noqa: F401,F403
from .viz import *  # noqa: F401,F403
from .widgets import *  # noqa: F401,F403
from .experiments import *  # noqa: F401,F403

from . import (  # noqa: E402
    data,
    efficient,
    experiments,
    flash,
    functional,
    kv_compress,
    mamba,
    measure,
    nn,
    positional,
    scaling,
    ssm,
    train,
    viz,
    widgets,
)

__version__ = "0.1.0"
