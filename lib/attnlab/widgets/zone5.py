"""Pictures, tables and explorers of Zone 5 (experiments).

`attention_head_explorer` is interactive in JupyterLab (layer and head sliders) and a static
figure otherwise (attnlab.live). The plot_* functions draw the results of the measured runs in
attnlab.experiments.zone5 and return the matplotlib Figure; call plt.show() after them.
"""

from __future__ import annotations

import numpy as np

from ..i18n import tr
from ..viz import plot_attention
from .core import live, subplots

__all__ = [
    "attention_head_explorer",
    "attention_summary",
    "draw_attention_head",
    "plot_attention_cost",
    "plot_attention_heads",
    "plot_extrapolation",
    "plot_icl_errors",
    "plot_kv_speedup",
    "plot_loss_curves",
    "plot_lsa_weights",
    "plot_scaling",
    "plot_throughput",
    "print_table",
]


def _length_axis(ax, lengths, label: str) -> None:
    """A log2 x axis with one labelled tick per measured length (no crowded minor labels)."""
    from matplotlib.ticker import NullLocator

    ax.set_xscale("log", base=2)
    ax.set_xticks(list(lengths), labels=[str(int(n)) for n in lengths])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(label)


ENCODING_COLORS = {
    "learned": "#4c72b0",
    "sinusoidal": "#dd8452",
    "rope": "#55a868",
    "alibi": "#c44e52",
    "none": "#8172b2",
}


def print_table(rows: list[dict], columns: list[tuple]) -> None:
    """Print rows as an aligned text table. columns: (header, key, format) with a format spec
    such as ",d" or ".3f", or (header, function of the row, format)."""
    cells = [[h for h, _, _ in columns]]
    for row in rows:
        cells.append(
            [format(key(row) if callable(key) else row[key], fmt) for _, key, fmt in columns]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for i, line in enumerate(cells):
        print("  ".join(text.rjust(w) for text, w in zip(line, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


# ============================================================================ attention heads
def attention_summary(weights) -> dict:
    """Numbers that describe one causal attention map (N, N): what kind of head is it?

    max_weight: mean over queries of the largest weight (1 = each query looks at one key);
    entropy: mean entropy of the rows in nats (0 = one key; log(i + 1) = uniform over the past);
    distance: mean over queries of sum_j w_ij (i - j), how far back the head looks on average;
    previous: mean weight on the key just before the query (a "previous-token" head has ~1).
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"weights must be a square (N, N) attention map, got shape {w.shape}")
    n = w.shape[0]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    logs = np.log(np.where(w > 0, w, 1.0))
    previous = np.array([w[t, t - 1] for t in range(1, n)]) if n > 1 else np.zeros(1)
    return {
        "max_weight": float(w.max(axis=1).mean()),
        "entropy": float(-(w * logs).sum(axis=1).mean()),
        "distance": float((w * (i - j)).sum(axis=1).mean()),
        "previous": float(previous.mean()),
    }


def draw_attention_head(maps, labels, layer: int = 0, head: int = 0):
    """Heatmap of one head of attnlab.attention_maps' output, with its summary printed."""
    import matplotlib.pyplot as plt

    maps = np.asarray(maps)
    w = maps[layer, head]
    s = attention_summary(w)
    print(
        tr(
            "layer {layer}, head {head}: mean max weight {max_weight:.2f}, mean entropy "
            "{entropy:.2f} nats, looks back {distance:.1f} characters on average, "
            "weight on the previous character {previous:.2f}",
            layer=layer,
            head=head,
            max_weight=s["max_weight"],
            entropy=s["entropy"],
            distance=s["distance"],
            previous=s["previous"],
        )
    )
    size = 0.22 * len(labels) + 2
    _, ax = subplots(figsize=(size, size * 0.85))
    shown = [repr(c)[1:-1] if c != " " else "␣" for c in labels]
    plot_attention(
        w,
        x_labels=shown,
        y_labels=shown,
        ax=ax,
        annotate=False,
        title=tr("layer {layer}, head {head}", layer=layer, head=head),
    )
    ax.tick_params(axis="x", rotation=0)
    plt.show()


def attention_head_explorer(maps, labels, layer: int = 0, head: int = 0):
    """ "layer" and "head" sliders (counted from 0) over maps (n_layers, n_heads, N, N) of the
    text `labels` (one character per query/key)."""
    import ipywidgets as w

    maps = np.asarray(maps)
    return live(
        draw_attention_head,
        maps=w.fixed(maps),
        labels=w.fixed(labels),
        layer=w.IntSlider(
            value=layer,
            min=0,
            max=maps.shape[0] - 1,
            description=tr("layer"),
            continuous_update=False,
        ),
        head=w.IntSlider(
            value=head,
            min=0,
            max=maps.shape[1] - 1,
            description=tr("head"),
            continuous_update=False,
        ),
    )


def plot_attention_heads(maps, title: str | None = None):
    """All heads of all layers as small heatmaps: rows are layers, columns heads.

    title: default "every head", in the reader's language.
    """
    import matplotlib.pyplot as plt

    if title is None:
        title = tr("every head")

    maps = np.asarray(maps)
    n_layers, n_heads = maps.shape[:2]
    fig, axes = plt.subplots(
        n_layers, n_heads, figsize=(2.1 * n_heads, 2.1 * n_layers), squeeze=False
    )
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer, head]
            ax.imshow(maps[layer, head], cmap="viridis", vmin=0, vmax=1)
            s = attention_summary(maps[layer, head])
            ax.set_title(
                tr(
                    "L{layer} H{head}: back {distance:.1f}",
                    layer=layer,
                    head=head,
                    distance=s["distance"],
                ),
                fontsize=8,
            )
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ============================================================================ training curves
def plot_loss_curves(
    histories: dict, title: str | None = None, smooth: int = 10, ylabel: str | None = None
):
    """Training loss per step of several runs ({name: attnlab.Trainer history}), smoothed by a
    moving average over `smooth` steps. title and ylabel default to "training" and
    "training loss", in the reader's language."""
    import matplotlib.pyplot as plt

    if title is None:
        title = tr("training")
    if ylabel is None:
        ylabel = tr("training loss")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, history in histories.items():
        loss = np.asarray(history["loss"], dtype=float)
        k = max(1, min(smooth, len(loss)))
        smoothed = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(
            np.asarray(history["step"])[k - 1 :],
            smoothed,
            label=name,
            color=ENCODING_COLORS.get(name),
        )
    ax.set_xlabel(tr("step"))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


# ============================================================================ positions
def plot_extrapolation(result: dict, smooth: int = 8):
    """Left: mean loss against evaluation length per encoding; right: loss at each position
    of the longest windows (moving average over `smooth` positions). The dashed line is the
    training length."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    lens, train_len = result["eval_lens"], result["train_len"]
    for pos, losses in result["loss"].items():
        left.plot(lens, losses, "o-", label=pos, color=ENCODING_COLORS.get(pos))
        per_pos = np.asarray(result["position_loss"][pos])
        k = max(1, min(smooth, len(per_pos)))
        right.plot(
            np.arange(k - 1, len(per_pos)),
            np.convolve(per_pos, np.ones(k) / k, "valid"),
            label=pos,
            color=ENCODING_COLORS.get(pos),
        )
    _length_axis(left, lens, tr("evaluation length (characters)"))
    left.set_ylabel(tr("validation loss (nats / char)"))
    left.set_title(tr("loss vs evaluation length"))
    right.set_xlabel(tr("position in the window"))
    right.set_ylabel(tr("loss at that position"))
    right.set_title(tr("loss by position (windows of {length})", length=max(lens)))
    for ax in (left, right):
        ax.axvline(train_len, color="grey", ls="--", lw=1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ============================================================================ scaling
def plot_scaling(n, loss, fit=None, xlabel: str | None = None):
    """Measured loss against N on log-log axes, with the power law a * N**(-alpha) if fit=(a, alpha).

    xlabel: default "non-embedding parameters N", in the reader's language.
    """
    import matplotlib.pyplot as plt

    if xlabel is None:
        xlabel = tr("non-embedding parameters N")

    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.loglog(n, loss, "o", ms=7, label=tr("measured"))
    if fit is not None:
        a, alpha = fit
        grid = np.geomspace(n.min() / 2, n.max() * 4, 50)
        ax.loglog(
            grid, a * grid**-alpha, "-", label=tr("fit: {a:.2f} N^(-{alpha:.3f})", a=a, alpha=alpha)
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(tr("validation loss (nats / char)"))
    ax.set_title(tr("loss vs model size"))
    ax.legend()
    return fig


# ============================================================================ in-context learning
def plot_icl_errors(ks, curves: dict, title: str | None = None):
    """Error (MSE / d) against the number of in-context examples k, one line per method.

    title: default "in-context linear regression", in the reader's language.
    """
    import matplotlib.pyplot as plt

    if title is None:
        title = tr("in-context linear regression")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, errors in curves.items():
        style = "--" if "theory" in name else "o-"
        ax.plot(ks, errors, style, label=name, ms=4)
    ax.set_xlabel(tr("number of in-context examples k"))
    ax.set_ylabel(tr("squared error / d"))
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_lsa_weights(panels: dict):
    """Heatmaps of (d + 1) x (d + 1) matrices, e.g. W_q W_k^T and W_v W_o, trained vs constructed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels), 2.9), squeeze=False)
    for ax, (name, m) in zip(axes[0], panels.items()):
        m = np.asarray(m)
        limit = max(float(np.abs(m).max()), 1e-12)
        im = ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(m.shape[1]))
        ax.set_yticks(range(m.shape[0]))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


# ============================================================================ KV cache, FlashAttention
def plot_kv_speedup(rows: list[dict]):
    """Generation time with and without the KV cache, and the speed-up, against tokens generated."""
    import matplotlib.pyplot as plt

    n = [r["new_tokens"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot(n, [r["seconds_uncached"] for r in rows], "o-", label=tr("no cache (recompute all)"))
    left.plot(n, [r["seconds_cached"] for r in rows], "o-", label=tr("KV cache"))
    left.set_xlabel(tr("tokens generated"))
    left.set_ylabel(tr("seconds"))
    left.legend()
    right.plot(n, [r["speedup"] for r in rows], "o-", color="#55a868")
    right.set_xlabel(tr("tokens generated"))
    right.set_ylabel(tr("speed-up (x)"))
    right.set_title(tr("KV cache speed-up"))
    fig.tight_layout()
    return fig


def plot_attention_cost(rows: list[dict]):
    """Time and peak memory of standard vs tiled attention against N, log-log."""
    import matplotlib.pyplot as plt

    n = np.array([r["n"] for r in rows], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for key, label in (
        ("standard", tr("standard (N x N scores)")),
        ("tiled", tr("tiled (FlashAttention)")),
    ):
        left.loglog(n, [r[f"seconds_{key}"] for r in rows], "o-", label=label)
        right.loglog(n, [r[f"peak_bytes_{key}"] / 2**20 for r in rows], "o-", label=label)
    right.loglog(n, n**2 * 8 / 2**20, "k:", label=tr("one N x N float64 matrix"))
    left.set_ylabel(tr("seconds"))
    right.set_ylabel(tr("peak memory (MiB)"))
    for ax in (left, right):
        _length_axis(ax, n, tr("sequence length N"))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ============================================================================ Mamba vs attention
def plot_throughput(result: dict, lengths):
    """Prefill tokens per second and decoding milliseconds per token against sequence length."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, metrics in result.items():
        left.loglog(lengths, metrics["prefill_tokens_per_s"], "o-", label=name)
        right.loglog(lengths, metrics["decode_ms_per_token"], "o-", label=name)
    left.set_ylabel(tr("prefill: tokens per second"))
    right.set_ylabel(tr("decoding: ms per new token"))
    for ax in (left, right):
        _length_axis(ax, lengths, tr("sequence length L"))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
