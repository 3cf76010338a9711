"""Which tiles FlashAttention computes, skips or masks, with an explorer over block sizes."""

from __future__ import annotations

import numpy as np

from .._validate import require_positive_int
from ..functional import causal_mask
from ..i18n import tr
from .controls import live, subplots

__all__ = ["draw_flash_tiles", "flash_tile_counts", "flash_tile_explorer"]


SKIPPED, FULL, MASKED = 0, 1, 2


def flash_tile_counts(n_q: int, n_k: int, block_size: int, causal: bool = True) -> dict:
    """Classify the (block_size x block_size) tiles of an (n_q, n_k) score matrix.

    "skipped": no query of the tile may see any of its keys (never loaded); "full": every
    pair is visible (no mask needed, the kernel's fast path); "masked": some pairs are hidden
    (the causal diagonal), so the tile is computed and then masked. Causal masks are
    bottom-right aligned like attnlab.causal_mask. Returns the counts, the fraction of score
    entries actually computed, and the (row tiles, column tiles) grid of categories.
    """
    n_q, n_k, block = (
        require_positive_int(n, v)
        for n, v in (("n_q", n_q), ("n_k", n_k), ("block_size", block_size))
    )
    visible = causal_mask(n_q, n_k) if causal else np.ones((n_q, n_k), dtype=bool)
    rows, cols = -(-n_q // block), -(-n_k // block)
    grid = np.empty((rows, cols), dtype=int)
    computed = 0
    for i in range(rows):
        for j in range(cols):
            tile = visible[i * block : (i + 1) * block, j * block : (j + 1) * block]
            if not tile.any():
                grid[i, j] = SKIPPED
            else:
                grid[i, j] = FULL if tile.all() else MASKED
                computed += tile.size
    return {
        "skipped": int((grid == SKIPPED).sum()),
        "full": int((grid == FULL).sum()),
        "masked": int((grid == MASKED).sum()),
        "computed_fraction": computed / (n_q * n_k),
        "grid": grid,
    }


def draw_flash_tiles(
    n: int = 256, block_size: int = 32, causal: bool = True, n_k: int | None = None
) -> None:
    """Draw the tiles of an (n, n_k) attention matrix: skipped, full (fast path) and masked.

    Prints the counts and the share of score entries computed, so they update with the sliders.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    n_k = n if n_k is None else n_k
    counts = flash_tile_counts(n, n_k, block_size, causal)
    total = counts["grid"].size
    print(
        tr(
            "n_q={n_q}, n_k={n_k}, block_size={block_size}, causal={causal}: {total} tiles",
            n_q=n,
            n_k=n_k,
            block_size=block_size,
            causal=causal,
            total=total,
        )
    )
    print(
        tr(
            "  skipped {skipped}, full (no mask) {full}, masked {masked}",
            skipped=counts["skipped"],
            full=counts["full"],
            masked=counts["masked"],
        )
    )
    print(
        tr(
            "  score entries computed: {percent:.1f}% of {total}",
            percent=100 * counts["computed_fraction"],
            total=n * n_k,
        )
    )
    _, ax = subplots(figsize=(4.4, 4.4))
    cmap = ListedColormap(["#eeeeee", "#4c72b0", "#dd8452"])
    ax.imshow(counts["grid"], cmap=cmap, vmin=0, vmax=2, extent=(0, n_k, n, 0))
    ax.set_xlabel(tr("key j"))
    ax.set_ylabel(tr("query i"))
    ax.set_title(tr("grey: skipped, blue: full, orange: masked"), fontsize=9)
    plt.show()


def flash_tile_explorer(n: int = 256, block_size: int = 32, causal: bool = True) -> None:
    """Interactive tile map of a square (N, N) score matrix: sliders "N" (sequence length) and
    "block size", and a "causal" checkbox. n_k is not a control: keys = queries here."""
    import ipywidgets as w

    slow = {"continuous_update": False}  # redraw when the slider is released
    return live(
        draw_flash_tiles,
        n=w.IntSlider(value=n, min=16, max=1024, step=16, description="N", **slow),
        block_size=w.IntSlider(
            value=block_size, min=8, max=256, step=8, description=tr("block size"), **slow
        ),
        causal=w.Checkbox(value=causal, description=tr("causal")),
    )
