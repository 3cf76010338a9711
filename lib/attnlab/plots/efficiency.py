"""The cost of attention pictured: HBM traffic, Performer error, timings, KV cache speed-ups,
Mamba's selective parameters and the efficiency map."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .._validate import require_positive_int
from ..flash import hbm_traffic
from ..i18n import tr
from .axes import _length_axis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_attention_cost",
    "plot_efficiency_map",
    "plot_hbm_traffic",
    "plot_kv_speedup",
    "plot_performer_error",
    "plot_scan_rounds",
    "plot_selective_params",
    "plot_throughput",
]


# ============================================================================ HBM traffic
def plot_hbm_traffic(
    ns: Sequence[int],
    d: int,
    sram_bytes: int,
    bytes_per_element: int = 2,
    traffic: Callable[[int, int, int, int], tuple[float, float]] = hbm_traffic,
) -> Figure:
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
def plot_performer_error(curve: dict) -> Figure:
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
def plot_selective_params(
    delta: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    tokens: Sequence[object] | None = None,
    channels: int = 8,
) -> Figure:
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
def plot_efficiency_map(rows: list[dict]) -> Figure:
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


def plot_scan_rounds(length: int = 8) -> Figure:
    """The Hillis-Steele scan: in round r, position t combines with position t - 2^r.

    After round r, position t holds the composition of the steps in the window
    [t - 2^(r+1) + 1, t]; after ceil(log2 L) rounds the window reaches position 0.
    """
    import matplotlib.pyplot as plt

    length = require_positive_int("length", length)
    n_rounds = int(np.ceil(np.log2(length))) if length > 1 else 0
    fig, ax = plt.subplots(figsize=(0.7 * length + 1, 0.9 * n_rounds + 1.2))
    for r in range(n_rounds + 1):
        ax.scatter(range(length), [r] * length, color="black", s=20, zorder=3)
    for r in range(n_rounds):
        offset = 2**r
        for t in range(offset, length):
            ax.annotate(
                "",
                xy=(t, r + 1),
                xytext=(t - offset, r),
                arrowprops={"arrowstyle": "->", "color": "#4c72b0", "lw": 1},
            )
            ax.plot([t, t], [r, r + 1], color="#bbbbbb", lw=1, zorder=1)
    ax.set_yticks(
        range(n_rounds + 1),
        labels=[tr("input")] + [tr("round {r}", r=r + 1) for r in range(n_rounds)],
    )
    ax.set_xticks(range(length))
    ax.set_xlabel(tr("time step t"))
    ax.invert_yaxis()
    ax.set_title(
        tr(
            "{rounds} rounds for L = {length}: blue arrows combine t - 2^r into t",
            rounds=n_rounds,
            length=length,
        )
    )
    return fig


# ============================================================================ KV cache, FlashAttention
def plot_kv_speedup(rows: list[dict]) -> Figure:
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


def plot_attention_cost(rows: list[dict]) -> Figure:
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
def plot_throughput(result: dict, lengths: Sequence[int]) -> Figure:
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
