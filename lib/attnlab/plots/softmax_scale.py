"""The 1/sqrt(d_k) explorer: score spread and softmax saturation as d_k grows."""

from __future__ import annotations

import numpy as np

from ..demos.softmax_scale import D_K_STEPS, scaling_statistics, scaling_sweep
from ..i18n import tr
from .axes import _plain_log_axis
from .controls import live, subplots

__all__ = ["draw_scaling", "scaling_explorer"]


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


def scaling_explorer(d_k: int = 256, scaled: bool = False) -> None:
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
