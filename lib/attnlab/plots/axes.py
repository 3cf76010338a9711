"""Axis helpers shared by the figures: logarithmic axes with plain, readable tick labels."""

from __future__ import annotations

__all__ = []


def _plain_log_axis(ax, which: str = "y", ticks=None) -> None:
    """Log scale on ax's `which` ("x" or "y") axis with plain tick labels ("0.001", "256").

    Matplotlib's default log labels are mathtext ("$10^{-3}$"); typesetting them inside a
    redraw can fail (a ParseException from the layout step), so the explorers avoid them.
    `ticks`: the values to label, on a base-2 scale (default: powers of 10).
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{which}scale")("log", base=10 if ticks is None else 2)
    axis = ax.yaxis if which == "y" else ax.xaxis
    if ticks is not None:
        axis.set_ticks(list(ticks))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _length_axis(ax, lengths, label: str) -> None:
    """A log2 x axis with one labelled tick per measured length (no crowded minor labels)."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xticks(list(lengths), labels=[str(int(n)) for n in lengths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(label)
