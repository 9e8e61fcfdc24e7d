"""Figures of the part-2 experiments (normalization). Each function takes a ``Result`` and returns ``(fig, axes)``."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

COLORS = {"plain": "tab:red", "bn": "tab:blue", "none": "tab:red", "batch": "tab:blue", "layer": "tab:green",
          "group": "tab:orange"}
CYCLE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _finish(fig, title: str):
    fig.suptitle(title)
    fig.tight_layout()


def plot_bn_sigmoid(r):
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    steps = np.asarray(r.steps)
    for key, label in (("plain", "without BN"), ("bn", "with BN")):
        run = r.runs[key]
        axes[0].plot(steps, run["test_acc"], color=COLORS[key], label=label)
        axes[1].plot(steps, run["test_loss"], color=COLORS[key], label=label)
    axes[0].axhline(r.target_acc, color="grey", ls=":", lw=1)
    axes[0].set(xlabel="step", ylabel="test accuracy", ylim=(0, 1), title="(a) test accuracy")
    axes[1].set(xlabel="step", ylabel="test loss", title="test loss")
    axes[0].legend(fontsize=8)
    for ax, key, label in ((axes[2], "plain", "(b) without BN"), (axes[3], "bn", "(c) with BN")):
        q = np.asarray(r.runs[key]["quantiles"])
        for k, (ls, name) in enumerate(zip((":", "-", ":"), ("15th", "50th", "85th"))):
            ax.plot(steps, q[:, k], color=COLORS[key], ls=ls, label=f"{name} percentile")
        ax.set(xlabel="step", ylabel="input to sigmoid (unit 0, last layer)", title=label)
        ax.legend(fontsize=7)
    lo = min(axes[2].get_ylim()[0], axes[3].get_ylim()[0])
    hi = max(axes[2].get_ylim()[1], axes[3].get_ylim()[1])
    axes[2].set_ylim(lo, hi)
    axes[3].set_ylim(lo, hi)
    _finish(fig, "3×100 sigmoid MLP on digits, small Gaussian init, batch 60 (Ioffe & Szegedy 2015, Fig. 1)")
    return fig, axes
