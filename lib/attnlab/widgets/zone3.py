"""Pictures and explorers of Zone 3a (derivations): per-head maps, the positional-encoding
explorer, the causal / sparse mask explorer, activation curves and gradient norms by depth.

Plot functions return the matplotlib figure (the notebook calls plt.show()); the `draw_*`
functions print their numbers and show the figure themselves, so that `attnlab.live` can
redraw them on every slider change (interactive in JupyterLab, one static figure otherwise).
"""

from __future__ import annotations

import numpy as np

from ..efficient import sparse_mask
from ..experiments.zone3 import positional_similarity
from ..functional import causal_mask, gelu, silu, softmax
from ..i18n import tr
from ..viz import plot_attention
from .core import live, subplots

__all__ = [
    "MASK_PATTERNS",
    "draw_mask",
    "draw_positional_similarity",
    "mask_explorer",
    "mask_for_pattern",
    "plot_activations",
    "plot_gradient_norms",
    "plot_head_maps",
    "positional_encoding_explorer",
]


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


# ============================================================================ positions
def draw_positional_similarity(
    d_model: int = 64,
    rope_base: float = 10000.0,
    max_distance: int = 128,
    alibi_heads: int = 8,
    seed: int = 0,
):
    """Similarity of two positions as a function of their distance k, for each encoding.

    Left: sinusoidal, cosine of PE[p] and PE[p + k]. Middle: RoPE, the normalised score of a
    random vector with itself k positions later. Right: ALiBi, the factor exp(-m_h k) its
    bias puts on a weight, per head. Prints a few values so they update live.
    """
    import matplotlib.pyplot as plt

    d_model = 2 * max(1, int(d_model) // 2)  # RoPE needs pairs
    dist, sin_sim = positional_similarity("sinusoidal", max_distance, d_model)
    _, sin_sim_later = positional_similarity("sinusoidal", max_distance, d_model, position=100)
    _, rope_sim = positional_similarity("rope", max_distance, d_model, base=rope_base, seed=seed)
    _, rope_sim_later = positional_similarity(
        "rope", max_distance, d_model, base=rope_base, seed=seed, position=100
    )
    _, alibi = positional_similarity("alibi", max_distance, n_heads=alibi_heads)
    shown = [k for k in (1, 4, 16, 64, 256, 1024) if k <= max_distance]
    print(
        tr(
            "d_model={d_model}, RoPE base={base:g}, ALiBi heads={heads}",
            d_model=d_model,
            base=rope_base,
            heads=alibi_heads,
        )
    )
    first_head = tr("ALiBi head {head}", head=0)
    last_head = tr("ALiBi head {head}", head=alibi_heads - 1)
    distance, sinusoidal = tr("distance k"), tr("sinusoidal")
    print(f"  {distance:<16s}" + "".join(f"{k:>8d}" for k in shown))
    print(f"  {sinusoidal:<16s}" + "".join(f"{sin_sim[k]:8.3f}" for k in shown))
    print("  RoPE            " + "".join(f"{rope_sim[k]:8.3f}" for k in shown))
    print(f"  {first_head:<16s}" + "".join(f"{alibi[0, k]:8.3f}" for k in shown))
    print(f"  {last_head:<16s}" + "".join(f"{alibi[-1, k]:8.3f}" for k in shown))
    print(
        tr(
            "  same curves measured from position 100 instead of 0: max difference {difference:.1e}",
            difference=max(
                np.abs(sin_sim - sin_sim_later).max(), np.abs(rope_sim - rope_sim_later).max()
            ),
        )
    )

    _, axes = subplots(1, 3, figsize=(13, 3.4))
    axes[0].plot(dist, sin_sim, color="tab:blue")
    axes[0].set_title(tr("sinusoidal: cos(PE[p], PE[p+k])"))
    axes[1].plot(dist, rope_sim, color="tab:orange")
    axes[1].set_title("RoPE: rope(q,p)·rope(q,p+k) / |q|²")
    for h in range(alibi.shape[0]):
        axes[2].plot(
            dist,
            alibi[h],
            color=plt.cm.viridis(h / max(1, alibi.shape[0] - 1)),
            label=tr("head {head}", head=h) if alibi.shape[0] <= 8 else None,
        )
    axes[2].set_title(tr("ALiBi: weight factor exp(-m_h k)"))
    if alibi.shape[0] <= 8:
        axes[2].legend(fontsize=7, ncol=2)
    for ax in axes:
        ax.set_xlabel(tr("distance k"))
        ax.axhline(0.0, color="gray", linewidth=0.5)
    axes[0].set_ylabel(tr("similarity"))
    plt.show()


def positional_encoding_explorer():
    """Sliders for draw_positional_similarity: "d_model", "RoPE base", "max k" (the distance
    range drawn) and "ALiBi heads"; the random RoPE vector's seed is fixed (no control)."""
    import ipywidgets as w

    slow = {"continuous_update": False}  # redraw when the slider is released
    return live(
        draw_positional_similarity,
        d_model=w.IntSlider(value=64, min=4, max=512, step=4, description="d_model", **slow),
        rope_base=w.FloatLogSlider(
            value=10000.0, base=10, min=1, max=6, description=tr("RoPE base"), **slow
        ),
        max_distance=w.IntSlider(
            value=128, min=16, max=1024, step=16, description=tr("max k"), **slow
        ),
        alibi_heads=w.IntSlider(value=8, min=1, max=16, description=tr("ALiBi heads"), **slow),
        seed=w.fixed(0),
    )


# ============================================================================ masks
MASK_PATTERNS = ("full", "local", "strided", "fixed", "bigbird")


def _pattern_options(patterns) -> list[tuple[str, str]]:
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


def mask_for_pattern(
    pattern: str, n: int, causal: bool = True, window: int = 3, stride: int = 4
) -> np.ndarray:
    """Boolean (n, n) mask: "full" (every key; with causal, attnlab.causal_mask) or one of
    attnlab.sparse_mask's patterns (local window, strided, fixed global tokens, BigBird)."""
    if pattern not in MASK_PATTERNS:
        raise ValueError(f"pattern must be one of {MASK_PATTERNS}, got {pattern!r}")
    if pattern == "full":
        return causal_mask(n) if causal else np.ones((n, n), dtype=bool)
    return sparse_mask(n, pattern, window=window, stride=stride, causal=causal)


def draw_mask(
    pattern: str = "full",
    n: int = 12,
    causal: bool = True,
    window: int = 3,
    stride: int = 4,
    seed: int = 0,
):
    """Three views of one mask: boolean, additive (0 / -inf), and the weights it produces.

    The weights are softmax(S + additive mask) for random scores S (seeded). Prints the keys
    each query sees and the largest weight that lands on a forbidden key (always 0).
    """
    import matplotlib.pyplot as plt

    mask = mask_for_pattern(pattern, n, causal=causal, window=window, stride=stride)
    additive = np.where(mask, 0.0, -np.inf)
    scores = np.random.default_rng(seed).normal(size=(n, n))
    weights = softmax(scores + additive)
    seen = mask.sum(axis=1)
    print(
        tr(
            "pattern={pattern!r}, causal={causal}, n={n}: {computed} of {total} "
            "(query, key) pairs computed, density {density:.3f}",
            pattern=pattern,
            causal=causal,
            n=n,
            computed=int(mask.sum()),
            total=n * n,
            density=mask.mean(),
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
            "{pattern}, n = {n}, causal = {causal}  (window = {window}, stride = {stride})",
            pattern=pattern,
            n=n,
            causal=causal,
            window=window,
            stride=stride,
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
    plt.show()


def mask_explorer(n: int = 12):
    """Causal / sparse mask explorer (attnlab.live): "pattern" menu, "n" tokens, "causal" on/off,
    "window" (local keys) and "stride" (strided / fixed patterns); the scores' seed is fixed."""
    import ipywidgets as w

    slow = {"continuous_update": False}  # redraw when the slider is released
    return live(
        draw_mask,
        pattern=w.Dropdown(
            options=_pattern_options(MASK_PATTERNS), value="full", description=tr("pattern")
        ),
        n=w.IntSlider(value=n, min=4, max=48, description="n", **slow),
        causal=w.Checkbox(value=True, description=tr("causal")),
        window=w.IntSlider(value=3, min=0, max=12, description=tr("window"), **slow),
        stride=w.IntSlider(value=4, min=1, max=12, description=tr("stride"), **slow),
        seed=w.fixed(0),
    )


# ============================================================================ the block
def plot_activations(x=None):
    """ReLU, GELU (exact and GPT-2's tanh form) and SiLU; right: |GELU - GELU_tanh|."""
    import matplotlib.pyplot as plt

    x = np.linspace(-4.0, 4.0, 401) if x is None else np.asarray(x, dtype=float)
    exact, approx = gelu(x), gelu(x, approximate="tanh")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    axes[0].plot(x, np.maximum(x, 0.0), label="ReLU")
    axes[0].plot(x, exact, label=tr("GELU (exact, erf)"))
    axes[0].plot(x, approx, "--", label="GELU (tanh, GPT-2)")
    axes[0].plot(x, silu(x), label=tr("SiLU (in SwiGLU)"))
    axes[0].legend()
    axes[0].set_xlabel("x")
    axes[0].set_title(tr("activations"))
    axes[1].semilogy(x, np.abs(exact - approx) + 1e-20)
    axes[1].set_xlabel("x")
    axes[1].set_title(tr("|GELU exact - GELU tanh|"))
    fig.tight_layout()
    return fig


def plot_gradient_norms(per_layer: dict, depths, last_layer: dict, fit_from: int = 4):
    """Left: gradient norm of each layer's FFN matrix, one curve per variant (per_layer maps a
    name to an array over layers). Right: the last layer's norm against depth L, log-log,
    with the slope fitted on the depths >= fit_from in the legend (last_layer maps a name to
    values over `depths`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for name, norms in per_layer.items():
        axes[0].plot(np.arange(1, len(norms) + 1), norms, "o-", label=name)
    axes[0].set_xlabel(tr("layer (1 = next to the input)"))
    axes[0].set_ylabel("|dL/dW_2|")
    axes[0].set_title(tr("gradient by layer at initialisation, L = {layers}", layers=len(norms)))
    axes[0].set_ylim(bottom=0)
    axes[0].legend()
    depths = np.asarray(depths, dtype=float)
    fit = depths >= fit_from
    for name, values in last_layer.items():
        values = np.asarray(values, dtype=float)
        slope = np.polyfit(np.log(depths[fit]), np.log(values[fit]), 1)[0]
        axes[1].loglog(
            depths,
            values,
            "o-",
            label=tr(
                "{name}: slope {slope:+.2f} (L >= {fit_from})",
                name=name,
                slope=slope,
                fit_from=fit_from,
            ),
        )
    start = max(values[0] for values in last_layer.values())
    axes[1].loglog(
        depths,
        start / np.sqrt(depths / depths[0]),
        ":",
        color="gray",
        label=tr("1/sqrt(L) for reference"),
    )
    axes[1].set_xlabel(tr("number of layers L"))
    axes[1].set_ylabel(tr("|dL/dW_2| of the last layer"))
    axes[1].set_title(tr("last layer's gradient vs depth"))
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
