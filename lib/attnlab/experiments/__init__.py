"""Measured demos and experiments of the notebooks (training runs, sweeps), one module per zone."""

from .zone1 import *  # noqa: F401,F403
from .zone2 import *  # noqa: F401,F403
from .zone3 import *  # noqa: F401,F403
from .zone3b import *  # noqa: F401,F403
from .zone4 import *  # noqa: F401,F403
from .zone5 import *  # noqa: F401,F403
from .zone6 import *  # noqa: F401,F403
