"""Pictures for the notebooks: matplotlib figures returned to the caller, never shown implicitly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .i18n import tr

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_attention", "use_japanese_font"]

# Fonts with Japanese glyphs, best first: Debian's fonts-noto-cjk, then IPA's.
JAPANESE_FONTS = ("Noto Sans CJK JP", "IPAexGothic", "IPAGothic")
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")


def use_japanese_font() -> str | None:
    """Let figures draw Japanese: a CJK font becomes the first font family in rcParams. It has
    Latin glyphs too, and it must come first: mathtext draws the words around $...$ in the
    first family's font only. Returns its name, or None when no such font is installed
    (`sudo apt-get install fonts-noto-cjk`)."""
    import matplotlib
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist}
    if not known.intersection(JAPANESE_FONTS):  # installed after matplotlib cached its font list
        for folder in FONT_FOLDERS:
            for path in sorted(Path(folder).expanduser().glob("**/NotoSansCJK-Regular.tt[cf]")):
                font_manager.fontManager.addfont(str(path))
        known = {f.name for f in font_manager.fontManager.ttflist}
    name = next((n for n in JAPANESE_FONTS if n in known), None)
    families = list(matplotlib.rcParams["font.family"])
    if name is not None and name not in families:
        matplotlib.rcParams["font.family"] = [name, *families]
    return name


def plot_attention(
    weights: ArrayLike,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool | None = None,
) -> Axes:
    """Heatmap of an attention matrix (Nq, Nk): rows are queries, columns keys.

    Values are written in the cells when the matrix is small (annotate=None means <= 12x12).
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    w = np.asarray(weights, dtype=float)
    if w.ndim != 2:
        raise ValueError(f"weights must be a 2-D (Nq, Nk) matrix, got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.6 * w.shape[1], 0.8 + 0.6 * w.shape[0]))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-12, float(w.max())))
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel(tr("key"))
    ax.set_ylabel(tr("query"))
    if x_labels is not None:
        ax.set_xticks(range(w.shape[1]), labels=list(x_labels), rotation=45, ha="right")
    if y_labels is not None:
        ax.set_yticks(range(w.shape[0]), labels=list(y_labels))
    if annotate is None:
        annotate = max(w.shape) <= 12
    if annotate:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                color = "black" if w[i, j] > 0.6 * w.max() else "white"
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", color=color, fontsize=8)
    if title:
        ax.set_title(title)
    return ax
