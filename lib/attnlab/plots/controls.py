"""Interactive controls that degrade to a static figure when no widget frontend is present."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["live", "widgets_available"]


def widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets, unless static output is asked for.

    Static: ATTNLAB_STATIC=1, or a kernel started by nbgrader (NBGRADER_EXECUTION is set by
    nbgrader validate/autograde) or by attnlab-grade (ATTNLAB_GRADING=1): no frontend there.
    """
    if os.environ.get("ATTNLAB_STATIC", "") not in ("", "0"):
        return False
    if os.environ.get("NBGRADER_EXECUTION") or os.environ.get("ATTNLAB_GRADING") == "1":
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


_DRAWING = threading.Lock()


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """plt.subplots(*args, **kwargs) for an explorer: constrained layout, fixed size.

    Returns (fig, axes) like plt.subplots. The inline backend crops each figure to what is
    drawn (bbox_inches="tight"), so a redraw with longer tick labels or a smaller image would
    give a picture of another size and the explorer's output would jump; counting the
    figure's background in that box keeps every redraw at the figsize given here.
    Constrained layout (instead of fig.tight_layout()) also leaves room for titles and labels.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*args, layout="constrained", **kwargs)
    fig.patch.set_in_layout(True)
    return fig, axes


def _split(controls: dict) -> tuple[dict, dict]:
    """(widgets, constants): the controls to show, and the fixed values passed as they are.

    A control is shown when it is an ipywidgets widget (slider, toggle, dropdown, ...);
    `ipywidgets.fixed(x)` and plain values are constants and show nothing.
    """
    try:
        from ipywidgets import Widget
    except ImportError:  # no ipywidgets: nothing can be shown anyway
        Widget = ()
    shown = {name: c for name, c in controls.items() if isinstance(c, Widget)}
    constants = {name: getattr(c, "value", c) for name, c in controls.items() if name not in shown}
    return shown, constants


def live(draw: Callable[..., object], **controls: Any) -> None:
    """Show `draw(**values)` with interactive `controls` (ipywidgets), or once, statically.

    `controls` maps each argument of `draw` to an ipywidgets control (slider, toggle, ...)
    or to a fixed value (`ipywidgets.fixed(x)` or plain `x`). Live, exactly the given widgets
    are shown, stacked above one Output area; every change clears that area and calls `draw`
    again, so the figure is replaced, never stacked. Arguments of `draw` that are not named
    here keep their defaults and get no control. The controls are displayed here, so this
    returns None (returning the widget would make Jupyter display it a second time).
    """
    shown, constants = _split(controls)
    if widgets_available():
        import ipywidgets
        from IPython.display import display

        def redraw(**values):
            with _DRAWING:  # pyplot is not thread-safe: one redraw at a time
                draw(**constants, **values)

        output = ipywidgets.interactive_output(redraw, shown)
        display(ipywidgets.VBox([*shown.values(), output]))
        return None
    draw(**constants, **{name: control.value for name, control in shown.items()})
    return None
