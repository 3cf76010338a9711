"""The fossils pictured: the path-length table (N slider) and the recall race's curves."""

from __future__ import annotations

from ..demos.fossils import fossil_table
from ..i18n import tr
from .axes import _plain_log_axis
from .controls import live, subplots

__all__ = ["draw_fossils", "fossil_explorer", "plot_recall", "print_fossil_table"]


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


def fossil_explorer(n: int = 512, d: int = 512, k: int = 3) -> None:
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
