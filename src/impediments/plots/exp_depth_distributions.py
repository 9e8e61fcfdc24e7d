"""Figure of ``depth_distributions``: per-layer output histograms, activations x inits, plus variances."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from impediments.plots.style import LEGEND, TICKS


def _ridge(ax, edges, counts, *, title: str) -> None:
    """Histograms of layers 1..L stacked top to bottom (deeper layers lower).

    Each is scaled to its second-highest bin, so a spike (ReLU zeros, tanh ±1) shows as a clipped bar.
    """
    layers = len(counts)
    cmap = plt.get_cmap("viridis")
    for layer in range(layers):
        e, c = np.asarray(edges[layer]), np.asarray(counts[layer])
        centres = (e[:-1] + e[1:]) / 2
        ref = np.sort(c)[-2] if len(c) > 1 and np.sort(c)[-2] > 0 else max(c.max(), 1e-300)
        height = np.minimum(c / ref * 0.8, 2.2)
        base = layers - 1 - layer
        ax.fill_between(centres, base, base + height, step="mid", color=cmap(layer / max(layers - 1, 1)),
                        alpha=0.8, lw=0)
    ax.set_yticks(range(layers))
    ax.set_yticklabels([str(layers - i) if (layers - i) % 3 == 1 else "" for i in range(layers)], fontsize=TICKS)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=TICKS)
    ax.xaxis.set_major_locator(MaxNLocator(5))


def plot_depth_distributions(r):
    acts, inits = list(r.activations), list(r.inits)
    fig, axes = plt.subplots(len(acts) + 1, len(inits), figsize=(4.2 * len(inits), 3.4 * (len(acts) + 1)))
    for i, a in enumerate(acts):
        for j, s in enumerate(inits):
            _ridge(axes[i, j], r.hist_edges[i][j], r.hist_counts[i][j],
                   title=f"{a}, {s} init: Var(out) L1 {r.out_var[i][j][0]:.2g} → L{len(r.out_var[i][j])} "
                         f"{r.out_var[i][j][-1]:.2g}")
            if j == 0:
                axes[i, j].set_ylabel(f"{a}: layer (top = 1)", fontsize=10)
            if a not in ("sigmoid", "tanh"):
                axes[i, j].set_xlabel(f"output / std of its layer (exact zeros in layer 10: "
                                      f"{r.frac_zero[i][j][-1]:.0%})", fontsize=9)
    layers = np.arange(1, np.asarray(r.out_var).shape[-1] + 1)
    for j, s in enumerate(inits):
        ax = axes[-1, j]
        for i, a in enumerate(acts):
            ax.semilogy(layers, np.maximum(np.asarray(r.out_var[i][j]), 1e-300), "o-", ms=3, label=a)
        ax.set(xlabel="layer", title=f"{s} init: output variance by layer")
        ax.title.set_fontsize(10)
        ax.tick_params(labelsize=TICKS)
        ax.legend(**LEGEND)
    fig.suptitle(f"one batch through 10 fully connected layers of width {r.width}, no weight updates")
    fig.tight_layout()
    return fig, axes
