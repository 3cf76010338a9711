"""Pictures and explorers of Zone 3b (efficiency): sparse masks, HBM traffic, Performer error,
Mamba's selective parameters and the efficiency / expressiveness / memory map.

Each plot function draws with matplotlib and returns the figure; the notebook calls plt.show().
`sparse_mask_explorer` is interactive in JupyterLab and a static figure otherwise (attnlab.live).
"""

from __future__ import annotations

import numpy as np

from ..efficient import SPARSE_PATTERNS, sparse_mask, sparse_mask_nnz
from ..flash import hbm_traffic
from ..i18n import tr
from .core import live, subplots
from .zone3 import _pattern_options

__all__ = [
    "draw_sparse_mask",
    "plot_efficiency_map",
    "plot_hbm_traffic",
    "plot_performer_error",
    "plot_selective_params",
    "plot_sparse_patterns",
    "sparse_mask_explorer",
]


# ============================================================================ sparse masks
def draw_sparse_mask(
    pattern: str = "bigbird",
    n: int = 32,
    window: int = 2,
    stride: int = 4,
    n_global: int = 1,
    n_random: int = 2,
    causal: bool = False,
    seed: int = 0,
):
    """Draw attnlab.sparse_mask(...) and print what it costs: entries kept, density, closed form.

    Yellow = query (row) may attend key (column). The count printed first is the number of
    True entries in the drawn mask; the closed form from attnlab.sparse_mask_nnz must agree.
    """
    import matplotlib.pyplot as plt

    mask = sparse_mask(
        n,
        pattern,
        window=window,
        stride=stride,
        n_global=n_global,
        n_random=n_random,
        seed=seed,
        causal=causal,
    )
    counted = int(mask.sum())
    formula = sparse_mask_nnz(
        n,
        pattern,
        window=window,
        stride=stride,
        n_global=n_global,
        n_random=n_random,
        seed=seed,
        causal=causal,
    )
    full = n * (n + 1) // 2 if causal else n * n
    print(f"pattern={pattern!r}, n={n}, causal={causal}")
    print(
        tr(
            "  entries computed: {counted} (closed form {formula}) of {full} "
            "for full attention -> density {density:.3f}",
            counted=counted,
            formula=formula,
            full=full,
            density=counted / full,
        )
    )
    print(
        tr(
            "  keys per query: min {least}, max {most}",
            least=mask.sum(axis=1).min(),
            most=mask.sum(axis=1).max(),
        )
    )
    _, ax = subplots(figsize=(4.2, 4.2))
    ax.imshow(mask, cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel(tr("key j"))
    ax.set_ylabel(tr("query i"))
    ax.set_title(
        tr(
            "{pattern}: {counted} of {full} entries\n(window {window}, stride {stride}, "
            "n_global {n_global}, n_random {n_random}, seed {seed})",
            pattern=pattern,
            counted=counted,
            full=full,
            window=window,
            stride=stride,
            n_global=n_global,
            n_random=n_random,
            seed=seed,
        ),
        fontsize=9,
    )
    plt.show()  # returns nothing: ipywidgets would display a returned figure a second time


def sparse_mask_explorer(n: int = 32):
    """Interactive sparse / causal mask explorer: "pattern", "n", "window", "stride", "n_global"
    (global tokens), "n_random" (random keys per query), "causal" and "seed" (which random keys).

    In JupyterLab every control redraws the mask and reprints its counts; headless it draws
    the default BigBird mask once.
    """
    import ipywidgets as w

    slow = {"continuous_update": False}  # redraw when the slider is released
    return live(
        draw_sparse_mask,
        pattern=w.Dropdown(
            options=_pattern_options(SPARSE_PATTERNS), value="bigbird", description=tr("pattern")
        ),
        n=w.IntSlider(value=n, min=8, max=128, step=8, description="n", **slow),
        window=w.IntSlider(value=2, min=0, max=16, description=tr("window"), **slow),
        stride=w.IntSlider(value=4, min=1, max=16, description=tr("stride"), **slow),
        n_global=w.IntSlider(value=1, min=0, max=8, description="n_global", **slow),
        n_random=w.IntSlider(value=2, min=0, max=8, description="n_random", **slow),
        causal=w.Checkbox(value=False, description=tr("causal")),
        seed=w.IntSlider(value=0, min=0, max=9, description=tr("seed"), **slow),
    )


def plot_sparse_patterns(
    n: int = 32,
    patterns=("local", "strided", "fixed", "bigbird"),
    window: int = 2,
    stride: int = 4,
    n_global: int = 1,
    n_random: int = 2,
    seed: int = 0,
):
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


# ============================================================================ HBM traffic
def plot_hbm_traffic(ns, d: int, sram_bytes: int, bytes_per_element: int = 2, traffic=hbm_traffic):
    """Log-log plot of HBM bytes vs sequence length for standard attention and FlashAttention.

    `traffic(n, d, sram_bytes, bytes_per_element) -> (standard, flash)` defaults to
    attnlab.hbm_traffic; pass your own function to plot yours.
    """
    import matplotlib.pyplot as plt

    ns = np.asarray(ns)
    pairs = np.array([traffic(int(n), d, sram_bytes, bytes_per_element) for n in ns], dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.loglog(ns, pairs[:, 0], "o-", label=tr("standard attention"))
    ax.loglog(ns, pairs[:, 1], "s-", label="FlashAttention")
    ax.set_xlabel(tr("sequence length N"))
    ax.set_ylabel(tr("HBM bytes read + written (one head)"))
    ax.set_title(f"d = {d}, SRAM = {sram_bytes // 1024} KiB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


# ============================================================================ Performer
def plot_performer_error(curve: dict):
    """Log-log plot of Performer's relative error vs m (from performer_error_curve) with a 1/sqrt(m) guide."""
    import matplotlib.pyplot as plt

    m = np.asarray(curve["m"], dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.loglog(m, curve["iid"], "o-", label=tr("i.i.d. features"))
    ax.loglog(m, curve["orthogonal"], "s-", label=tr("orthogonal features"))
    guide = curve["iid"][0] * np.sqrt(m[0] / m)
    ax.loglog(m, guide, "k--", alpha=0.6, label=r"$\propto 1/\sqrt{m}$")
    ax.set_xlabel(tr("number of random features m"))
    ax.set_ylabel(tr("relative error vs softmax attention"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


# ============================================================================ Mamba
def plot_selective_params(delta, B, C, tokens=None, channels: int = 8):
    """Heatmaps over time of Mamba's input-dependent delta, B and C.

    delta (1, d_inner, L), B and C (1, d_state, L) as returned by mamba_selective_inputs.
    Delta is shown for the first `channels` channels, each divided by its own mean over time
    (its bias sets the level, the input moves it around that level). In an LTI SSM (S4) every
    row would be constant across time.
    """
    import matplotlib.pyplot as plt

    d = np.asarray(delta)[0, :channels]
    panels = [
        (tr(r"$\Delta_t$ / its channel's mean over $t$"), d / d.mean(axis=-1, keepdims=True)),
        (r"$B_t$", np.asarray(B)[0]),
        (r"$C_t$", np.asarray(C)[0]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for ax, (title, values) in zip(axes, panels):
        im = ax.imshow(values, aspect="auto", cmap="magma")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(title)
        ax.set_xlabel(tr("time t (token)"))
        if tokens is not None:
            ax.set_xticks(range(len(tokens)), labels=[str(t) for t in tokens], fontsize=7)
    axes[0].set_ylabel(tr("channel / state index"))
    fig.tight_layout()
    return fig


# ============================================================================ the map
def plot_efficiency_map(rows: list[dict]):
    """Two scatter plots from efficiency_map: compute vs training memory, compute vs decoding state.

    Blue circles compute softmax attention exactly (on their pattern), orange squares approximate
    it or are another model. FlashAttention and full attention differ only on the left panel,
    GQA and full attention only on the right one.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2))
    for ax, key, label in (
        (axes[0], "train_memory", tr("extra memory while training (elements)")),
        (axes[1], "decode_state", tr("kept to decode the next token (elements)")),
    ):
        placed = []
        for row in rows:
            exact = row["exact"].startswith("exact")
            x, y = row["cost"], row[key]
            ax.scatter(
                x,
                y,
                s=70,
                marker="o" if exact else "s",
                color="tab:blue" if exact else "tab:orange",
            )
            # shift a label up when an earlier label sits at almost the same place
            near = sum(
                abs(np.log10(x / px)) < 0.6 and abs(np.log10(y / py)) < 0.3 for px, py in placed
            )
            placed.append((x, y))
            ax.annotate(
                row["method"],
                (x, y),
                textcoords="offset points",
                xytext=(6, 4 + 11 * near),
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(tr("multiply-adds for one layer, N = {n} (compute)", n=rows[0]["n"]))
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title(tr("training: compute vs memory"))
    axes[1].set_title(tr("generation: compute vs state (blue: exact softmax, orange: not)"))
    fig.tight_layout()
    return fig
