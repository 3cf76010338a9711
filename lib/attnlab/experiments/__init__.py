"""Measured demos and experiments of the notebooks (training runs, sweeps), one module per zone."""

from .zone1 import *
from .zone2 import *
from .zone3 import *
from .zone3b import *
from .zone4 import *
from .zone5 import *
from .zone6 import *
