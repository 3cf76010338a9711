"""ipywidgets explorers used by the notebooks; each falls back to a static figure (see core.live)."""

from .core import *  # noqa: F401,F403
from .zone1 import *  # noqa: F401,F403
from .zone2 import *  # noqa: F401,F403
from .zone3 import *  # noqa: F401,F403
from .zone3b import *  # noqa: F401,F403
from .zone4 import *  # noqa: F401,F403
from .zone5 import *  # noqa: F401,F403
from .zone6 import *  # noqa: F401,F403
