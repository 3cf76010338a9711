"""The lecture on one page pictured, and an explorer that follows one thread of it."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from ..course.lecture import THREADS, ZONE_TITLES, lecture_map
from ..i18n import tr
from .controls import live, subplots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["draw_lecture_map", "lecture_map_explorer", "plot_lecture_map"]


THREAD_COLORS = {
    "core": "tab:blue",
    "order": "tab:purple",
    "block": "tab:brown",
    "fast": "tab:orange",
    "memory": "tab:red",
    "recurrent": "tab:green",
    "scale": "tab:cyan",
    "review": "tab:gray",
}


FUNCTION_WIDTH = 26  # characters per line of function names inside a stop (names are never cut)


def _stops() -> dict[tuple[str, str], list[dict]]:
    """(zone, thread) -> the ideas of LECTURE_MAP at that stop, in course order."""
    stops: dict[tuple[str, str], list[dict]] = {}
    for row in lecture_map():
        stops.setdefault((row["zone"], row["thread"]), []).append(row)
    return stops


def _stop_text(ideas: list[dict]) -> tuple[list[str], list[str]]:
    """The lines of one stop: (tags, function lines), the functions wrapped to FUNCTION_WIDTH.

    Tags, thread names and zone titles are N_-marked data of attnlab.course.lecture, translated
    here, where they are shown."""
    lines, kinds = [], []
    for idea in ideas:
        lines.append(tr(idea["tag"]))
        kinds.append("tag")
        for part in textwrap.wrap(
            ", ".join(idea["functions"]),
            FUNCTION_WIDTH,
            break_long_words=False,
            break_on_hyphens=False,
        ):
            lines.append(part)
            kinds.append("fn")
    return lines, kinds


def plot_lecture_map(highlight: str | None = None) -> Figure:
    """The lecture as a metro map: zones left to right, one coloured line per thread.

    Each stop lists the zone's key ideas on that thread (bold) and the attnlab functions that
    implement them (monospace). highlight: a key of THREADS to show that thread alone in
    colour, or None for all. Returns the matplotlib figure.
    """
    from matplotlib.patches import FancyBboxPatch

    if highlight is not None and highlight not in THREADS:
        raise ValueError(f"highlight={highlight!r} is not a thread; known: {list(THREADS)}")
    zones = list(ZONE_TITLES)
    threads = list(THREADS)
    stops = _stops()
    line_height = 0.19  # in row units per text line
    # Each row is as tall as its tallest stop.
    heights = []
    for thread in threads:
        n_lines = max(
            (len(_stop_text(stops[(z, thread)])[0]) for z in zones if (z, thread) in stops),
            default=1,
        )
        heights.append(max(1.0, 0.35 + n_lines * line_height))
    tops = [sum(heights[:i]) for i in range(len(threads))]
    total = sum(heights)

    fig, ax = subplots(figsize=(16, 0.58 * total + 1.2))
    col_w = 1.0
    for j, zone in enumerate(zones):
        name, _, title = tr(ZONE_TITLES[zone]).partition(" — ")
        ax.text(
            j * col_w + 0.5,
            -0.15,
            f"{name}\n{title}",
            ha="center",
            va="bottom",
            fontsize=9,
            fontweight="bold",
        )
        ax.axvline(j * col_w, color="0.9", lw=0.8, zorder=0)
    for i, thread in enumerate(threads):
        color = THREAD_COLORS[thread]
        faded = highlight is not None and thread != highlight
        alpha = 0.12 if faded else 1.0
        y_mid = tops[i] + heights[i] / 2
        ax.text(
            -0.08,
            y_mid,
            textwrap.fill(tr(THREADS[thread]), 18),
            ha="right",
            va="center",
            fontsize=9,
            color=color,
            alpha=max(alpha, 0.35),
            fontweight="bold",
        )
        present = [j for j, z in enumerate(zones) if (z, thread) in stops]
        if len(present) > 1:
            ax.plot(
                [present[0] + 0.5, present[-1] + 0.5],
                [y_mid, y_mid],
                color=color,
                lw=5,
                alpha=0.45 * alpha,
                zorder=1,
                solid_capstyle="round",
            )
        for j in present:
            lines, kinds = _stop_text(stops[(zones[j], thread)])
            box_h = 0.12 + len(lines) * line_height
            ax.add_patch(
                FancyBboxPatch(
                    (j + 0.03, y_mid - box_h / 2),
                    0.94,
                    box_h,
                    boxstyle="round,pad=0.0,rounding_size=0.05",
                    facecolor="white",
                    edgecolor=color,
                    lw=1.6,
                    alpha=alpha,
                    zorder=2,
                )
            )
            y = y_mid - box_h / 2 + 0.06 + line_height / 2
            for text, kind in zip(lines, kinds):
                ax.text(
                    j + 0.5,
                    y,
                    text,
                    ha="center",
                    va="center",
                    zorder=3,
                    alpha=alpha,
                    fontsize=8 if kind == "tag" else 6.2,
                    fontweight="bold" if kind == "tag" else "normal",
                    family="sans-serif" if kind == "tag" else "monospace",
                    color="black" if kind == "tag" else color,
                )
                y += line_height
    ax.set_xlim(-1.45, len(zones) * col_w)
    ax.set_ylim(total, -0.75)
    ax.axis("off")
    title = tr(
        "The lecture on one page: zones, key ideas (bold) and the attnlab functions behind them"
    )
    if highlight is not None:
        title += tr(" — thread: {thread}", thread=tr(THREADS[highlight]))
    ax.set_title(title, fontsize=11)
    return fig


def draw_lecture_map(thread: str = "all") -> None:
    """Print the ideas of one thread (or of all), zone by zone, and draw the map highlighting it."""
    import matplotlib.pyplot as plt

    rows = [r for r in lecture_map() if thread == "all" or r["thread"] == thread]
    label = tr("the whole lecture") if thread == "all" else tr(THREADS[thread])
    zones = list(dict.fromkeys(r["zone"] for r in rows))
    n_functions = len({name for r in rows for name in r["functions"]})
    print(
        tr(
            "{label}: {ideas} key ideas in {zones} zones, {functions} attnlab functions",
            label=label,
            ideas=len(rows),
            zones=len(zones),
            functions=n_functions,
        )
    )
    if thread != "all":
        for r in rows:
            title, idea = tr(r["title"]), tr(r["idea"])
            print(f"  {title:<26s} {idea}\n  {'':<26s} -> {', '.join(r['functions'])}")
    plot_lecture_map(None if thread == "all" else thread)
    plt.show()  # returns nothing: ipywidgets would display a returned figure a second time


def lecture_map_explorer(thread: str = "all") -> None:
    """draw_lecture_map with a "thread" menu ("all threads" or one; static: the given thread)."""
    import ipywidgets as w

    options = [(tr("all threads"), "all")] + [(tr(label), key) for key, label in THREADS.items()]
    return live(
        draw_lecture_map, thread=w.Dropdown(options=options, value=thread, description=tr("thread"))
    )
