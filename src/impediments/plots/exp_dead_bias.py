"""Figure of the ``dead_bias`` experiment: dead fraction per layer and accuracy through training."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

COLORS = ("tab:blue", "tab:red", "tab:orange", "tab:green")
STYLES = ("-", "--", ":", "-.")


def plot_dead_bias(r):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.asarray(r.steps)
    for b, color in zip(r.biases, COLORS):
        run = r.runs[str(b)]
        for i, (layer, frac) in enumerate(run["dead"].items()):
            axes[0].plot(steps, frac, color=color, ls=STYLES[i % 4], label=f"bias {b:g}, {layer}")
        axes[1].plot(steps, run["test_acc"], color=color, label=f"bias {b:g}")
    axes[0].set(xlabel="step", ylabel="fraction of dead units", ylim=(-0.02, 1.02),
                title="dead units (never active on the training set)")
    axes[1].set(xlabel="step", ylabel="test accuracy", ylim=(0, 1), title="test accuracy")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"ReLU MLP on digits, width {r.width}, He weights")
    fig.tight_layout()
    return fig, axes
