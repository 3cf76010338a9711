"""Line plots and tables shared by the notebooks: training curves, activations, gradient norms,
scaling fits and in-context learning errors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..blocks import gelu, silu
from ..functional import permutation_check
from ..i18n import tr
from .positions import ENCODING_COLORS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_activations",
    "plot_gradient_norms",
    "plot_icl_errors",
    "plot_loss_curves",
    "plot_lsa_weights",
    "plot_permutation_check",
    "plot_scaling",
    "plot_training",
    "print_table",
]


def plot_permutation_check(
    fn: Callable[[np.ndarray], ArrayLike], x: ArrayLike, perm: ArrayLike, title: str = ""
) -> float:
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


# ============================================================================ the block
def plot_activations(x: ArrayLike | None = None) -> Figure:
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


def plot_gradient_norms(
    per_layer: dict, depths: ArrayLike, last_layer: dict, fit_from: int = 4
) -> Figure:
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


def plot_training(history: dict, title: str | None = None) -> Figure:
    """Training loss per step (and evaluation loss where measured) from attnlab.Trainer's history.

    title: default "training", in the reader's language.
    """
    import matplotlib.pyplot as plt

    if title is None:
        title = tr("training")

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(history["step"], history["loss"], lw=1, label=tr("training batch"))
    if history.get("eval_step"):
        ax.plot(history["eval_step"], history["eval_loss"], "o-", label=tr("validation"))
    ax.set_xlabel(tr("step"))
    ax.set_ylabel(tr("cross-entropy (nats / character)"))
    ax.set_title(title)
    ax.legend()
    return fig


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


# ============================================================================ training curves
def plot_loss_curves(
    histories: dict, title: str | None = None, smooth: int = 10, ylabel: str | None = None
) -> Figure:
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


# ============================================================================ scaling
def plot_scaling(
    n: ArrayLike,
    loss: ArrayLike,
    fit: tuple[float, float] | None = None,
    xlabel: str | None = None,
) -> Figure:
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
def plot_icl_errors(ks: Sequence[int], curves: dict, title: str | None = None) -> Figure:
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


def plot_lsa_weights(panels: dict) -> Figure:
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
