"""Positional encodings pictured: similarity of positions, and extrapolation to longer inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..demos.positions import positional_similarity
from ..i18n import tr
from .axes import _length_axis
from .controls import live, subplots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["draw_positional_similarity", "plot_extrapolation", "positional_encoding_explorer"]


# ============================================================================ positions
def draw_positional_similarity(
    d_model: int = 64,
    rope_base: float = 10000.0,
    max_distance: int = 128,
    alibi_heads: int = 8,
    seed: int = 0,
) -> None:
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


def positional_encoding_explorer() -> None:
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


ENCODING_COLORS = {
    "learned": "#4c72b0",
    "sinusoidal": "#dd8452",
    "rope": "#55a868",
    "alibi": "#c44e52",
    "none": "#8172b2",
}


# ============================================================================ positions
def plot_extrapolation(result: dict, smooth: int = 8) -> Figure:
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
