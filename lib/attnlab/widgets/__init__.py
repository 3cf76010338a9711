"""ipywidgets explorers used by the notebooks; each falls back to a static figure (see core.live)."""

from .core import *
from .zone1 import *
from .zone2 import *
from .zone3 import *
from .zone3b import *
from .zone4 import *
from .zone5 import *
from .zone6 import *
