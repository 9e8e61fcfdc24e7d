"""Figure of the ``dead_bias`` experiment: dead fractions during training and test accuracy."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from impediments.plots.style import LEGEND, legend_off_data

COLORS = ("tab:blue", "tab:red", "tab:orange", "tab:green")
STYLES = ("-", "--", ":", "-.")


def plot_dead_bias(r):
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    for b, color in zip(r.biases, COLORS):
        run = r.runs[str(b)]
        ends = np.asarray(run["window_end"])
        for i, (layer, frac) in enumerate(run["window_dead"].items()):
            axes[0].plot(ends, frac, color=color, ls=STYLES[i % 4], label=f"bias {b:g}, {layer}")
        layers = list(run["dead_before"])
        x = np.arange(len(layers))
        off = 0.2 if b == r.biases[0] else -0.2
        axes[1].bar(x - off - 0.1, [run["dead_before"][k] for k in layers], width=0.2, color=color, alpha=0.5,
                    label=f"bias {b:g}, at init")
        axes[1].bar(x - off + 0.1, [run["dead_after"][k] for k in layers], width=0.2, color=color,
                    label=f"bias {b:g}, after training")
        axes[1].set_xticks(x, layers, fontsize=9)
        axes[2].plot(run["eval_steps"], run["test_acc"], "o-", ms=3, color=color, label=f"bias {b:g}")
    axes[0].set(xlabel="step (end of monitor window)", ylabel="fraction of units inactive in the window",
                ylim=(-0.02, 1.02), title="during training (impediments.monitor windows)")
    axes[1].set(ylabel="fraction dead on the whole training set", ylim=(0, 1), title="dead units, init vs end")
    axes[2].set(xlabel="step", ylabel="test accuracy", ylim=(0, 1), title="test accuracy")
    for ax in axes:
        legend_off_data(ax, **LEGEND)
    fig.suptitle(f"ReLU MLP on digits, width {r.width}, He weights")
    fig.tight_layout()
    return fig, axes
