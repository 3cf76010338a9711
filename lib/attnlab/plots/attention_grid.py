"""Attention maps drawn: Q/K/V heatmaps, and every head of a model in one grid, with its
explorer. Layers and heads are counted from 1 wherever they are shown (layer 1 is next to
the input); arrays are indexed from 0 as usual, so head h is maps[..., h - 1, :, :]."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..i18n import tr
from ..viz import plot_attention
from .controls import live, subplots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "attention_explorer",
    "attention_summary",
    "draw_attention_heads",
    "plot_attention_grid",
    "plot_qkv",
]


def plot_qkv(
    tokens: Sequence[str],
    x: ArrayLike,
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    weights: ArrayLike,
) -> None:
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


def attention_summary(weights: ArrayLike) -> dict[str, float]:
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


def _shown(tokens: Sequence[str] | str | None) -> list[str] | None:
    """Tick labels: a string is read as characters, with a space shown as ␣ and escapes."""
    if tokens is None:
        return None
    return (
        [repr(t)[1:-1] if t != " " else "␣" for t in tokens]
        if isinstance(tokens, str)
        else [str(t) for t in tokens]
    )


def _grid_shape(n_heads: int) -> tuple[int, int]:
    cols = 4 if n_heads % 4 == 0 else min(n_heads, 6)
    return -(-n_heads // cols), cols


def _draw_head(ax, w, labels, title: str, kind: str = "weights", low: float = 0.0):
    """One head's map on `ax`: weights in [0, 1] (viridis) or additive biases (magma, -inf blank)."""
    if kind == "bias":
        im = ax.imshow(np.where(np.isfinite(w), w, np.nan), cmap="magma", vmin=low, vmax=0.0)
    else:
        im = ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    if labels is not None and len(labels) <= 24:
        ax.set_xticks(range(w.shape[1]), labels=labels[: w.shape[1]], rotation=90, fontsize=7)
        ax.set_yticks(range(w.shape[0]), labels=labels[: w.shape[0]], fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return im


def plot_attention_grid(
    maps: ArrayLike,
    tokens: Sequence[str] | str | None = None,
    title: str | None = None,
    kind: str = "weights",
    describe: bool = False,
) -> Figure:
    """Every head in one grid: maps (n_heads, Nq, Nk) in a row, or (n_layers, n_heads, N, N)
    with one row per layer. Returns the figure.

    kind="weights": attention weights (rows sum to 1); kind="bias": additive score biases (e.g.
    ALiBi) on a shared colour scale, -inf blank. describe=True adds each causal head's mean
    look-back distance (attention_summary) to its title. tokens label the axes when N <= 24.
    """
    import matplotlib.pyplot as plt

    maps = np.asarray(maps, dtype=float)
    if maps.ndim not in (3, 4):
        raise ValueError(
            f"maps must have shape (n_heads, Nq, Nk) or (n_layers, n_heads, N, N), got {maps.shape}"
        )
    if kind not in ("weights", "bias"):
        raise ValueError(f"kind must be 'weights' or 'bias', got {kind!r}")
    grid = maps if maps.ndim == 4 else maps[None]
    n_layers, n_heads, n_q, n_k = grid.shape
    size = min(3.2, 1.2 + 0.25 * max(n_q, n_k)) if maps.ndim == 3 else 2.1
    fig, axes = plt.subplots(
        n_layers, n_heads, figsize=(size * n_heads + 0.6, size * n_layers), squeeze=False
    )
    finite = grid[np.isfinite(grid)]
    low = float(finite.min()) if finite.size else 0.0
    labels = _shown(tokens)
    for layer in range(n_layers):
        for head in range(n_heads):
            w = grid[layer, head]
            if maps.ndim == 3:
                name = tr("head {head}", head=head + 1)
            elif describe:
                name = tr(
                    "L{layer} H{head}: back {distance:.1f}",
                    layer=layer + 1,
                    head=head + 1,
                    distance=attention_summary(w)["distance"],
                )
            else:
                name = tr("L{layer} H{head}", layer=layer + 1, head=head + 1)
            im = _draw_head(axes[layer, head], w, labels, name, kind, low)
    if kind == "bias":
        fig.colorbar(im, ax=axes[-1, -1], fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _layers_heads(weights: ArrayLike) -> np.ndarray:
    """weights as an array of shape (n_layers, n_heads, N, N), or a ValueError naming the shape."""
    weights = np.asarray(weights)
    if weights.ndim != 4:
        raise ValueError(f"weights must have shape (n_layers, n_heads, N, N), got {weights.shape}")
    return weights


def draw_attention_heads(
    weights: ArrayLike,
    tokens: Sequence[str] | str,
    layer: int = 1,
    head: int | str = "all",
    query: str | None = None,
    title: str = "",
    describe: bool = False,
) -> None:
    """One layer's heads: all in a grid (head="all") or one head, large. Counted from 1.

    weights: (n_layers, n_heads, N, N); tokens: the N tokens (a string: one per character).
    If `query` names a token ("" or None: none), prints where its first occurrence looks (top
    three keys per head) and outlines its
    row (red). describe=True prints a single head's attention_summary. The figure has the
    grid's size for every choice, so an explorer's output does not jump when the head changes.
    """
    import matplotlib.pyplot as plt

    weights = _layers_heads(weights)
    n_layers, n_heads = weights.shape[:2]
    if not 1 <= layer <= n_layers:
        raise ValueError(f"layer must be in 1..{n_layers}, got {layer}")
    if head != "all" and not 1 <= int(head) <= n_heads:
        raise ValueError(f"head must be 'all' or in 1..{n_heads}, got {head!r}")
    w = weights[layer - 1]
    labels = _shown(tokens)
    heads = range(1, n_heads + 1) if head == "all" else [int(head)]
    query = query or None  # the explorer's menu says "no query" with ""
    if query is not None:
        if query not in tokens:
            raise ValueError(f"query {query!r} is not one of the tokens {list(tokens)}")
        i = list(tokens).index(query)
        print(
            tr(
                "layer {layer}: where '{query}' looks (top 3 keys per head)",
                layer=layer,
                query=labels[i],
            )
        )
        for h in heads:
            top = np.argsort(w[h - 1, i])[::-1][:3]
            print(
                tr(
                    "  head {head:2d}: {keys}",
                    head=h,
                    keys=",  ".join(f"{labels[j]} {w[h - 1, i, j]:.2f}" for j in top),
                )
            )
    if describe and head != "all":
        s = attention_summary(w[int(head) - 1])
        print(
            tr(
                "layer {layer}, head {head}: mean max weight {max_weight:.2f}, mean entropy "
                "{entropy:.2f} nats, looks back {distance:.1f} characters on average, "
                "weight on the previous character {previous:.2f}",
                layer=layer,
                head=head,
                **s,
            )
        )
    rows, cols = _grid_shape(n_heads)
    # One size for every choice: the grid's, and tall enough to read one head of a long text.
    figsize = (3.2 * cols, max(3.0 * rows, min(0.13 * len(labels) + 2.0, 10.0)))
    if head == "all":
        fig, axes = subplots(rows, cols, figsize=figsize, squeeze=False)
        drawn = list(axes.flat)[:n_heads]
        for ax in list(axes.flat)[n_heads:]:
            ax.axis("off")
        for h, ax in enumerate(drawn):
            _draw_head(ax, w[h], labels, tr("head {head}", head=h + 1))
        what = tr("layer {layer}, all heads (rows: queries, columns: keys)", layer=layer)
        fig.suptitle(tr("{title}: {what}", title=title, what=what) if title else what)
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
            x_labels=labels,
            y_labels=labels,
            ax=ax,
            annotate=False,
            title=tr("{title}: layer {layer}, head {head}", title=title, layer=layer, head=head)
            if title
            else tr("layer {layer}, head {head}", layer=layer, head=head),
        )
        if len(labels) > 24:  # a long text: small labels that do not overlap
            ax.tick_params(labelsize=6)
        drawn = [ax]
    if query is not None:  # outline the query's row: the weights printed above
        from matplotlib.patches import Rectangle

        for ax in drawn:
            ax.add_patch(
                Rectangle((-0.5, i - 0.5), len(labels), 1, fill=False, edgecolor="red", lw=1.5)
            )
    plt.show()


def attention_explorer(
    weights: ArrayLike,
    tokens: Sequence[str] | str,
    layer: int = 1,
    head: int | str = "all",
    query: str | None = None,
    title: str = "",
    describe: bool = False,
) -> None:
    """draw_attention_heads with a "layer" slider, a "head" menu ("all" or one head) and a
    "query" menu (the token whose row is outlined and whose top keys are printed; None: neither).

    weights: (n_layers, n_heads, N, N); layers and heads counted from 1; tokens, title and
    describe are fixed (no control).
    """
    import ipywidgets as w

    weights = _layers_heads(weights)
    n_layers, n_heads = weights.shape[:2]
    return live(
        draw_attention_heads,
        weights=w.fixed(weights),
        tokens=w.fixed(tokens),
        layer=w.IntSlider(
            min=1, max=n_layers, value=layer, description=tr("layer"), continuous_update=False
        ),
        head=w.Dropdown(
            options=[(tr("all"), "all"), *((str(h), h) for h in range(1, n_heads + 1))],
            value=head,
            description=tr("head"),
        ),
        # "" stands for no query: a selection widget takes the value None for "nothing selected".
        query=w.Dropdown(
            options=[
                (tr("None"), ""),
                *((s, t) for t, s in dict(zip(tokens, _shown(tokens))).items()),
            ],
            value=query or "",
            description=tr("query"),
        ),
        title=w.fixed(title),
        describe=w.fixed(describe),
    )
