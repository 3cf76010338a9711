"""Attention maps drawn: Q/K/V heatmaps, per-head grids of a model, and their explorers."""

from __future__ import annotations

import numpy as np

from ..i18n import tr
from ..viz import plot_attention
from .controls import live, subplots

__all__ = [
    "attention_head_explorer",
    "attention_heads_explorer",
    "attention_summary",
    "draw_attention_head",
    "draw_attention_heads",
    "plot_attention_heads",
    "plot_head_maps",
    "plot_qkv",
]


def plot_qkv(tokens, x, q, k, v, weights) -> None:
    """Heatmaps of the token matrix X and its projections Q, K, V, then the attention weights."""
    import matplotlib.pyplot as plt

    mats = {tr("X (tokens)"): x, "Q = X W_Q": q, "K = X W_K": k, "V = X W_V": v}
    fig, axes = plt.subplots(
        1, 5, figsize=(16, 3.2), gridspec_kw={"width_ratios": [1.3, 1, 1, 1, 1.3]}
    )
    limit = max(float(np.abs(m).max()) for m in mats.values())
    for ax, (title, m) in zip(axes[:4], mats.items()):
        im = ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"{title}  {m.shape[0]}x{m.shape[1]}")
        ax.set_yticks(range(len(tokens)), labels=list(tokens))
        ax.set_xlabel(tr("feature"))
    fig.colorbar(im, ax=axes[3], fraction=0.046, pad=0.04)
    plot_attention(weights, x_labels=tokens, y_labels=tokens, ax=axes[4], title="softmax(QKᵀ/√d_k)")
    fig.tight_layout()
    plt.show()


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


# ============================================================================ per-head maps
def plot_head_maps(maps, tokens=None, title=None, kind: str = "weights"):
    """One heatmap per head, side by side: maps (n_heads, Nq, Nk).

    kind="weights": attention weights drawn with attnlab.plot_attention (rows sum to 1).
    kind="bias": additive score biases (e.g. ALiBi), on a shared colour scale; -inf is blank.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (n_heads, Nq, Nk), got {maps.shape}")
    if kind not in ("weights", "bias"):
        raise ValueError(f"kind must be 'weights' or 'bias', got {kind!r}")
    n_heads, n_q, n_k = maps.shape
    size = min(3.4, 1.2 + 0.25 * max(n_q, n_k))
    fig, axes = plt.subplots(1, n_heads, figsize=(size * n_heads + 0.6, size), squeeze=False)
    finite = maps[np.isfinite(maps)]
    low = float(finite.min()) if finite.size else 0.0
    for h, ax in enumerate(axes[0]):
        if kind == "weights":
            plot_attention(
                maps[h],
                x_labels=tokens,
                y_labels=tokens,
                ax=ax,
                title=tr("head {head}", head=h),
                annotate=False,
            )
        else:
            im = ax.imshow(
                np.where(np.isfinite(maps[h]), maps[h], np.nan), cmap="magma", vmin=low, vmax=0.0
            )
            ax.set_title(tr("head {head}", head=h))
            ax.set_xlabel(tr("key j"))
            ax.set_ylabel(tr("query i"))
            if h == n_heads - 1:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if h > 0:
            ax.set_ylabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
