"""Interactive controls that degrade to a static figure when no widget frontend is present.

In JupyterLab `live(draw, d_k=IntSlider(...))` shows sliders and redraws on every change.
Run headless (nbgrader, nbconvert, CI: environment variable ATTNLAB_STATIC=1) or outside
a Jupyter kernel, it calls `draw` once with each control's current value, so the notebook
still carries a figure.
"""

from __future__ import annotations

import os

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


def live(draw, **controls):
    """Show `draw(**values)` with interactive `controls` (ipywidgets), or once, statically.

    `controls` maps each argument of `draw` to an ipywidgets control (slider, toggle, ...)
    or to a fixed value. The controls are displayed here, so this returns None (returning
    the widget would make Jupyter display it a second time as the cell's result).
    """
    if widgets_available():
        import ipywidgets
        from IPython.display import display

        display(ipywidgets.interactive(draw, **controls))
        return None
    values = {name: getattr(control, "value", control) for name, control in controls.items()}
    draw(**values)
    return None
