"""Figure of the ``activations`` experiment: each activation and its derivative, regions shaded."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def _shade(ax, intervals, lo, hi, color, label) -> None:
    for k, (a, b) in enumerate(intervals):
        a, b = max(a, lo), min(b, hi)
        if a < b:
            ax.axvspan(a, b, color=color, alpha=0.18, lw=0, label=label if k == 0 else None)


def plot_activation_regions(r, *, xlim: float = 5.0):
    names = list(r.names)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    x = np.asarray(r.x)
    keep = (x >= -xlim) & (x <= xlim)
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        ax.plot(x[keep], np.asarray(r.values[k])[keep], color="tab:blue", label="a(x)")
        ax.plot(x[keep], np.asarray(r.derivatives[k])[keep], color="tab:orange", ls="--", label="a'(x)")
        _shade(ax, r.saturated[name], -xlim, xlim, "tab:red", "saturated (a' ≈ 0)")
        _shade(ax, r.linear[name], -xlim, xlim, "tab:green", "linear")
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set(title=name, xlim=(-xlim, xlim), xlabel="x (pre-activation)")
        ax.legend(fontsize=6, loc="upper left")
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    fig.tight_layout()
    return fig, axes
