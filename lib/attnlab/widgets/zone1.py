"""Zone 1 explorers: the fossil comparison table (N slider), the Q/K/V heatmaps and the
1/sqrt(d_k) scaling explorer (d_k slider, scaled/unscaled toggle)."""

from __future__ import annotations

import numpy as np

from ..experiments.zone1 import D_K_STEPS, fossil_table, scaling_statistics, scaling_sweep
from ..i18n import tr
from ..viz import plot_attention
from .core import live, subplots

__all__ = [
    "draw_fossils",
    "draw_scaling",
    "fossil_explorer",
    "plot_qkv",
    "print_fossil_table",
    "scaling_explorer",
]

N_STEPS = tuple(2**p for p in range(3, 17))  # 8 .. 65536 tokens
D_STEPS = (64, 128, 256, 512, 1024, 2048)


def print_fossil_table(n: int, d: int = 512, k: int = 3) -> list[dict]:
    """Print fossil_table(n, d, k) as aligned text and return its rows."""
    rows = fossil_table(n, d, k)
    print(tr("n = {n} tokens, d = {d} features", n=n, d=d))
    header = (
        tr("layer"),
        tr("per layer"),
        tr("multiply-adds"),
        tr("sequential ops"),
        tr("max path"),
    )
    print("{:<22s}{:>12s}{:>16s}{:>16s}{:>10s}".format(*header))
    for r in rows:
        print(
            f"{r['layer']:<22s}{r['complexity']:>12s}{r['ops']:>16,d}{r['sequential']:>16,d}{r['path']:>10,d}"
        )
    rnn, attention = rows[0], rows[-1]
    scores_only = attention["ops"] / rnn["ops"]
    whole_layer = attention["ops_with_projections"] / rnn["ops_with_projections"]
    print(
        tr(
            "self-attention / RNN work: {scores_only:.3g} counting QK^T and AV only (= n/d, the "
            "paper's table), {whole_layer:.3g} counting the Q, K, V, O projections too (= n/d + 2); "
            "attention takes {steps:,d}x fewer sequential steps",
            scores_only=scores_only,
            whole_layer=whole_layer,
            steps=rnn["sequential"],
        )
    )
    return rows


def draw_fossils(n: int = 512, d: int = 512, k: int = 3) -> None:
    """The table for one (n, d) and three log-scale bar charts (work, sequential ops, path)."""
    import matplotlib.pyplot as plt

    rows = print_fossil_table(n, d, k)
    names = [r["layer"].replace(" (", "\n(") for r in rows]
    colors = ["tab:red", "tab:orange", "tab:olive", "tab:blue"]
    fig, axes = subplots(1, 3, figsize=(13, 3.4))
    for ax, key, title in zip(
        axes,
        ("ops", "sequential", "path"),
        (tr("multiply-adds per layer"), tr("sequential operations"), tr("maximum path length")),
    ):
        values = [r[key] for r in rows]
        bars = ax.bar(names, values, color=colors)
        _plain_log_axis(ax)
        ax.set_ylim(0.5, max(values) * 8)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=8)
        for bar, value in zip(bars, values):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                value * 1.3,
                f"{value:,.3g}",
                ha="center",
                fontsize=8,
            )
    fig.suptitle(
        tr("The fossils in numbers: n = {n}, d = {d} (Vaswani et al. 2017, Table 1)", n=n, d=d)
    )
    plt.show()


def fossil_explorer(n: int = 512, d: int = 512, k: int = 3):
    """draw_fossils with two sliders: "n tokens" (sequence length n) and "d width" (width d).

    The CNN's kernel width k stays fixed (no control).
    """
    import ipywidgets as w

    return live(
        draw_fossils,
        n=w.SelectionSlider(
            options=N_STEPS, value=n, description=tr("n tokens"), continuous_update=False
        ),
        d=w.SelectionSlider(
            options=D_STEPS, value=d, description=tr("d width"), continuous_update=False
        ),
        k=w.fixed(k),
    )


def _plain_log_axis(ax, which: str = "y", ticks=None) -> None:
    """Log scale on ax's `which` ("x" or "y") axis with plain tick labels ("0.001", "256").

    Matplotlib's default log labels are mathtext ("$10^{-3}$"); typesetting them inside a
    redraw can fail (a ParseException from the layout step), so the explorers avoid them.
    `ticks`: the values to label, on a base-2 scale (default: powers of 10).
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    getattr(ax, f"set_{which}scale")("log", base=10 if ticks is None else 2)
    axis = ax.yaxis if which == "y" else ax.xaxis
    if ticks is not None:
        axis.set_ticks(list(ticks))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


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


def draw_scaling(d_k: int = 256, scaled: bool = False, n_keys: int = 64, seed: int = 0) -> dict:
    """One frame of the scaling explorer: score histogram, and the measured statistics vs d_k.

    Prints the live numbers (score std, max weight, entropy, softmax gradient size) for this
    d_k, scaled or not, and returns them.
    """
    import matplotlib.pyplot as plt

    stats = scaling_statistics(d_k, scaled=scaled, n_keys=n_keys, seed=seed)
    label = tr("scaled by 1/√d_k") if scaled else tr("unscaled")
    print(f"d_k = {d_k}, {label}:")
    print(
        tr(
            "  score std           {std:9.3f}   (√d_k = {sqrt_d_k:.2f})",
            std=stats["score_std"],
            sqrt_d_k=np.sqrt(d_k),
        )
    )
    print(
        tr(
            "  max attention weight {weight:8.3f}   (uniform = {uniform:.3f}, one-hot = 1)",
            weight=stats["max_weight"],
            uniform=1 / n_keys,
        )
    )
    print(
        tr(
            "  entropy             {entropy:9.3f}   nats (uniform = {uniform:.3f}, one-hot = 0)",
            entropy=stats["entropy"],
            uniform=stats["max_entropy"],
        )
    )
    print(tr("  softmax gradient    {gradient:9.3g}   (‖∂a/∂s‖_F)", gradient=stats["grad_norm"]))
    print(tr("  (weight, entropy and gradient are medians over the queries)"))

    _, axes = subplots(1, 4, figsize=(16, 3.3))
    other = scaling_statistics(d_k, scaled=not scaled, n_keys=n_keys, seed=seed)
    edge = max(np.abs(stats["scores"]).max(), np.abs(other["scores"]).max())
    bins = np.linspace(-edge, edge, 81)
    axes[0].hist(
        other["scores"],
        bins=bins,
        color="lightgray",
        label=tr("unscaled") if scaled else tr("scaled"),
    )
    axes[0].hist(
        stats["scores"],
        bins=bins,
        color="tab:blue" if scaled else "tab:red",
        alpha=0.85,
        label=label,
    )
    axes[0].set_title(tr("scores, d_k = {d_k}", d_k=d_k))
    axes[0].set_xlabel(tr("score"))
    axes[0].legend(fontsize=8)
    for ax, key, title in zip(
        axes[1:],
        ("max_weight", "entropy", "grad_norm"),
        (tr("max attention weight"), tr("entropy (nats)"), tr("softmax gradient ‖J‖_F")),
    ):
        for flag, color in ((False, "tab:red"), (True, "tab:blue")):
            sweep = _sweep(flag, n_keys, seed)
            ax.plot(
                sweep["d_k"],
                sweep[key],
                "o-",
                ms=3,
                color=color,
                label=tr("scaled") if flag else tr("unscaled"),
            )
        ax.plot([d_k], [stats[key]], "k*", ms=14, label=tr("this setting"))
        _plain_log_axis(ax, "x", ticks=[1, 4, 16, 64, 256, 1024])
        if key == "grad_norm":
            _plain_log_axis(ax)
        ax.set_xlabel("d_k")
        ax.set_title(title)
    axes[1].legend(fontsize=8)
    plt.show()
    return stats


_SWEEPS: dict = {}


def _sweep(scaled: bool, n_keys: int, seed: int) -> dict:
    """scaling_sweep, computed once per setting so that moving the slider stays fast."""
    key = (scaled, n_keys, seed)
    if key not in _SWEEPS:
        _SWEEPS[key] = scaling_sweep(D_K_STEPS, scaled=scaled, n_keys=n_keys, seed=seed)
    return _SWEEPS[key]


def scaling_explorer(d_k: int = 256, scaled: bool = False):
    """draw_scaling with a "d_k" slider (1 .. 1024, log-ish steps) and a "scores" toggle
    (unscaled / scaled by 1/sqrt(d_k)); n_keys and seed keep their defaults (no control)."""
    import ipywidgets as w

    return live(
        draw_scaling,
        d_k=w.SelectionSlider(
            options=D_K_STEPS, value=d_k, description="d_k", continuous_update=False
        ),
        scaled=w.ToggleButtons(
            options=[(tr("unscaled"), False), (tr("scaled by 1/√d_k"), True)],
            value=scaled,
            description=tr("scores"),
        ),
    )
