"""Attention masks drawn: causal, sliding-window and sparse patterns, and their explorers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..efficient import SPARSE_PATTERNS, sparse_mask, sparse_mask_nnz
from ..functional import causal_mask, softmax
from ..i18n import tr
from ..viz import plot_attention
from .controls import live, subplots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MASK_PATTERNS",
    "draw_mask",
    "mask_explorer",
    "mask_for_pattern",
    "plot_sparse_patterns",
]


# ============================================================================ masks
MASK_PATTERNS = ("full", *SPARSE_PATTERNS)


def _pattern_options(patterns: Sequence[str]) -> list[tuple[str, str]]:
    """(label, pattern) pairs for a menu of mask patterns: the label in the reader's language,
    the value the pattern's name as the code expects it ("bigbird", a name, stays as it is)."""
    labels = {
        "full": tr("full"),
        "local": tr("local"),
        "strided": tr("strided"),
        "fixed": tr("fixed"),
        "random": tr("random"),
    }
    return [(labels.get(p, p), p) for p in patterns]


def _require_pattern(pattern: str) -> None:
    if pattern not in MASK_PATTERNS:
        raise ValueError(f"pattern must be one of {MASK_PATTERNS}, got {pattern!r}")


def mask_for_pattern(
    pattern: str,
    n: int,
    causal: bool = True,
    window: int = 3,
    stride: int = 4,
    n_global: int = 1,
    n_random: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Boolean (n, n) mask: "full" (every key; with causal, attnlab.causal_mask) or one of
    attnlab.sparse_mask's patterns (local window, strided, fixed global tokens, random, BigBird)."""
    _require_pattern(pattern)
    if pattern == "full":
        return causal_mask(n) if causal else np.ones((n, n), dtype=bool)
    return sparse_mask(
        n,
        pattern,
        window=window,
        stride=stride,
        n_global=n_global,
        n_random=n_random,
        seed=seed,
        causal=causal,
    )


def draw_mask(
    pattern: str = "full",
    n: int = 12,
    causal: bool = True,
    window: int = 3,
    stride: int = 4,
    n_global: int = 1,
    n_random: int = 2,
    seed: int = 0,
) -> None:
    """Three views of one mask: boolean, additive (0 / -inf), and the weights it produces.

    The weights are softmax(S + additive mask) for random scores S (seeded). Prints what the
    mask costs (entries counted in it, and attnlab.sparse_mask_nnz's closed form, which must
    agree), the keys each query sees, and the largest weight on a forbidden key (always 0).
    `seed` draws both the random keys ("random", "bigbird") and the scores.
    """
    import matplotlib.pyplot as plt

    shape = {"window": window, "stride": stride, "n_global": n_global, "n_random": n_random}
    mask = mask_for_pattern(pattern, n, causal=causal, seed=seed, **shape)
    counted = int(mask.sum())
    full = n * (n + 1) // 2 if causal else n * n
    formula = (
        full
        if pattern == "full"
        else sparse_mask_nnz(n, pattern, seed=seed, causal=causal, **shape)
    )
    additive = np.where(mask, 0.0, -np.inf)
    scores = np.random.default_rng(seed).normal(size=(n, n))
    weights = softmax(scores + additive)
    seen = mask.sum(axis=1)
    print(
        tr(
            "pattern={pattern!r}, causal={causal}, n={n}: {counted} (query, key) pairs computed "
            "(closed form {formula}) of {full} for full attention, density {density:.3f}",
            pattern=pattern,
            causal=causal,
            n=n,
            counted=counted,
            formula=formula,
            full=full,
            density=counted / full,
        )
    )
    print(
        tr(
            "  keys per query: min {least}, max {most}; "
            "largest weight on a forbidden key: {forbidden:.1f}; "
            "row sums: {low:.3f} .. {high:.3f}",
            least=seen.min(),
            most=seen.max(),
            forbidden=weights[~mask].max(initial=0.0),
            low=weights.sum(axis=1).min(),
            high=weights.sum(axis=1).max(),
        )
    )

    fig, axes = subplots(1, 3, figsize=(12.5, 3.9))
    fig.suptitle(
        tr(
            "{pattern}, n = {n}, causal = {causal}  (window {window}, stride {stride}, "
            "n_global {n_global}, n_random {n_random}, seed {seed})",
            pattern=pattern,
            n=n,
            causal=causal,
            seed=seed,
            **shape,
        ),
        fontsize=10,
    )
    axes[0].imshow(mask, cmap="viridis", vmin=0, vmax=1)
    axes[0].set_title(tr("boolean mask (yellow = may attend)"))
    axes[1].imshow(np.where(mask, 0.0, 1.0), cmap="Greys", vmin=0, vmax=1)
    axes[1].set_title(tr("additive mask (white = 0, black = -inf)"))
    plot_attention(weights, ax=axes[2], title="softmax(S + mask)", annotate=False)
    for ax in axes[:2]:
        ax.set_xlabel(tr("key j"))
        ax.set_ylabel(tr("query i"))
    plt.show()  # returns nothing: ipywidgets would display a returned figure a second time


def mask_explorer(n: int = 12, pattern: str = "full", causal: bool = True) -> None:
    """The mask explorer (attnlab.live) over draw_mask: "pattern" (full or a sparse pattern),
    "n" tokens, "causal", "window" (local keys), "stride" (strided / fixed), "n_global" (global
    tokens), "n_random" (random keys per query) and "seed" (which random keys and scores).

    In JupyterLab every control redraws the views and reprints the counts; headless it draws
    the starting mask once.
    """
    import ipywidgets as w

    _require_pattern(pattern)
    slow = {"continuous_update": False}  # redraw when the slider is released
    return live(
        draw_mask,
        pattern=w.Dropdown(
            options=_pattern_options(MASK_PATTERNS), value=pattern, description=tr("pattern")
        ),
        n=w.IntSlider(value=n, min=4, max=max(64, n), description="n", **slow),
        causal=w.Checkbox(value=causal, description=tr("causal")),
        window=w.IntSlider(value=3, min=0, max=16, description=tr("window"), **slow),
        stride=w.IntSlider(value=4, min=1, max=16, description=tr("stride"), **slow),
        n_global=w.IntSlider(value=1, min=0, max=8, description="n_global", **slow),
        n_random=w.IntSlider(value=2, min=0, max=8, description="n_random", **slow),
        seed=w.IntSlider(value=0, min=0, max=9, description=tr("seed"), **slow),
    )


def plot_sparse_patterns(
    n: int = 32,
    patterns: Sequence[str] = ("local", "strided", "fixed", "bigbird"),
    window: int = 2,
    stride: int = 4,
    n_global: int = 1,
    n_random: int = 2,
    seed: int = 0,
) -> Figure:
    """The sparse patterns side by side, each titled with its number of computed entries."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(patterns), figsize=(3.2 * len(patterns), 3.4))
    for ax, pattern in zip(np.atleast_1d(axes), patterns):
        mask = sparse_mask(
            n,
            pattern,
            window=window,
            stride=stride,
            n_global=n_global,
            n_random=n_random,
            seed=seed,
        )
        ax.imshow(mask, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(
            tr(
                "{pattern}\n{computed} / {total} entries",
                pattern=pattern,
                computed=int(mask.sum()),
                total=n * n,
            )
        )
        ax.set_xlabel(tr("key j"))
        ax.set_ylabel(tr("query i"))
    fig.tight_layout()
    return fig
