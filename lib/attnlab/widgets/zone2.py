"""Zone 2 pictures and explorers: recall accuracy vs distance, permutation equivariance side
by side, and per-head attention maps of an encoder with a layer/head/query widget."""

from __future__ import annotations

import numpy as np

from ..functional import permutation_check
from ..i18n import tr
from ..viz import plot_attention
from .core import live, subplots

__all__ = [
    "attention_heads_explorer",
    "draw_attention_heads",
    "plot_permutation_check",
    "plot_recall",
]

_COLORS = {"gru": "tab:red", "attention": "tab:blue"}


def plot_recall(results: dict, title: str | None = None) -> None:
    """Accuracy vs distance (left) and training loss (right) for each model of recall_experiment.

    title: of the left panel (default: "Recall at growing distance", in the reader's language).
    """
    import matplotlib.pyplot as plt

    if title is None:
        title = tr("Recall at growing distance")

    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12, 3.6))
    for kind, r in results.items():
        label = tr(
            "{kind} ({params:,d} params, {seconds:.1f} s)",
            kind=kind,
            params=r["parameters"],
            seconds=r["seconds"],
        )
        ax.plot(r["distances"], r["accuracy"], "o-", color=_COLORS.get(kind), label=label)
        ax_loss.plot(r["loss"], color=_COLORS.get(kind), label=kind)
    chance = next(iter(results.values()))["chance"]
    ax.axhline(
        chance, color="gray", ls="--", lw=1, label=tr("chance ({chance:.3f})", chance=chance)
    )
    ax.set_xscale("log", base=2)
    ax.set_xlabel(tr("distance d between the key and the query (tokens)"))
    ax.set_ylabel(tr("accuracy"))
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel(tr("training step"))
    ax_loss.set_ylabel(tr("cross-entropy"))
    ax_loss.set_title(tr("training loss"))
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    plt.show()


def plot_permutation_check(fn, x, perm, title: str = "") -> float:
    """Heatmaps of fn(x)[perm] and fn(x[perm]) and their difference; returns permutation_check."""
    import matplotlib.pyplot as plt

    x = np.asarray(x, dtype=float)
    perm = np.asarray(perm)
    fn_then_perm = np.asarray(fn(x))[..., perm, :]
    perm_then_fn = np.asarray(fn(x[..., perm, :]))
    gap = permutation_check(fn, x, perm)
    fig, axes = plt.subplots(1, 3, figsize=(12, 2.8))
    limit = float(np.abs(fn_then_perm).max())
    panels = (
        (tr("fn(x), then permute the rows"), fn_then_perm),
        (tr("permute the rows of x, then fn"), perm_then_fn),
    )
    for ax, (name, m) in zip(axes[:2], panels):
        ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(tr("token"))
        ax.set_xlabel(tr("feature"))
    im = axes[2].imshow(np.abs(perm_then_fn - fn_then_perm), cmap="magma", vmin=0)
    axes[2].set_title(tr("|difference|, max = {gap:.2g}", gap=gap), fontsize=10)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()
    return gap


def draw_attention_heads(
    tokens, weights, layer: int = 1, head="all", query=None, title: str = ""
) -> None:
    """Attention of one layer: every head in a grid (head="all") or one head, large.

    weights: (n_layers, n_heads, N, N); layer and head count from 1. If `query` names a token,
    prints where that token looks in the chosen layer (top three keys per head) and outlines
    its row (red) in the heatmaps. The figure
    has the same size for every layer and head (the grid's size), so an explorer's output
    does not jump when the head menu changes.
    """
    import matplotlib.pyplot as plt

    weights = np.asarray(weights)
    n_layers, n_heads = weights.shape[:2]
    if not 1 <= layer <= n_layers:
        raise ValueError(f"layer must be in 1..{n_layers}, got {layer}")
    w = weights[layer - 1]
    heads = range(1, n_heads + 1) if head == "all" else [int(head)]
    if query is not None:
        if query not in tokens:
            raise ValueError(f"query {query!r} is not one of the tokens {tokens}")
        i = list(tokens).index(query)
        print(
            tr(
                "layer {layer}: where '{query}' looks (top 3 keys per head)",
                layer=layer,
                query=query,
            )
        )
        for h in heads:
            top = np.argsort(w[h - 1, i])[::-1][:3]
            print(
                tr(
                    "  head {head:2d}: {keys}",
                    head=h,
                    keys=",  ".join(f"{tokens[j]} {w[h - 1, i, j]:.2f}" for j in top),
                )
            )
    cols = 4 if n_heads % 4 == 0 else min(n_heads, 6)
    rows = -(-n_heads // cols)
    figsize = (3.2 * cols, 3.0 * rows)
    if head == "all":
        fig, axes = subplots(rows, cols, figsize=figsize, squeeze=False)
        drawn = list(axes.flat)[:n_heads]
        for h, ax in enumerate(axes.flat):
            if h >= n_heads:
                ax.axis("off")
                continue
            ax.imshow(w[h], cmap="viridis", vmin=0, vmax=1)
            ax.set_title(tr("head {head}", head=h + 1), fontsize=9)
            ax.set_xticks(range(len(tokens)), labels=tokens, rotation=90, fontsize=6)
            ax.set_yticks(range(len(tokens)), labels=tokens, fontsize=6)
        fig.suptitle(
            tr(
                "{title}: layer {layer}, all heads (rows: queries, columns: keys)",
                title=title,
                layer=layer,
            )
        )
    else:  # one head, large, in the middle column of a figure of the same size
        width, height = figsize
        side = max(1e-3, (width - height - 1.5) / 2)
        _, (left, ax, right) = subplots(
            1, 3, figsize=figsize, width_ratios=[side, height + 1.5, side]
        )
        left.axis("off")
        right.axis("off")
        plot_attention(
            w[int(head) - 1],
            x_labels=tokens,
            y_labels=tokens,
            ax=ax,
            annotate=False,
            title=tr("{title}: layer {layer}, head {head}", title=title, layer=layer, head=head),
        )
        drawn = [ax]
    if query is not None:  # outline the query's row: the weights printed above
        from matplotlib.patches import Rectangle

        for ax in drawn:
            ax.add_patch(
                Rectangle((-0.5, i - 0.5), len(tokens), 1, fill=False, edgecolor="red", lw=1.5)
            )
    plt.show()


def attention_heads_explorer(
    tokens, weights, layer: int = 1, head="all", query=None, title: str = ""
):
    """draw_attention_heads with a "layer" slider, a "head" menu ("all" or one head) and a
    "query" menu (the token whose row is outlined and whose top keys are printed; None: neither).

    weights: (n_layers, n_heads, N, N); tokens and title are fixed (no control).
    """
    import ipywidgets as w

    weights = np.asarray(weights)
    n_layers, n_heads = weights.shape[:2]
    return live(
        draw_attention_heads,
        tokens=w.fixed(list(tokens)),
        weights=w.fixed(weights),
        layer=w.IntSlider(
            min=1, max=n_layers, value=layer, description=tr("layer"), continuous_update=False
        ),
        head=w.Dropdown(
            options=[(tr("all"), "all"), *((str(h), h) for h in range(1, n_heads + 1))],
            value=head,
            description=tr("head"),
        ),
        query=w.Dropdown(
            options=[(tr("None"), None), *((str(t), t) for t in dict.fromkeys(tokens))],
            value=query,
            description=tr("query"),
        ),
        title=w.fixed(title),
    )
