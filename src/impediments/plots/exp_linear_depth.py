"""Figure of ``linear_depth``: test accuracy of a deep linear network, one Linear layer and a deep ReLU network."""
from __future__ import annotations

import matplotlib.pyplot as plt

from impediments.plots.style import LEGEND, legend_off_data

STYLE = {"linear_deep": ("tab:red", "{depth} Linear layers, identity activation"),
         "relu_deep": ("tab:blue", "{depth} Linear layers, ReLU")}


def plot_linear_depth(r):
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, (color, label) in STYLE.items():
        ax.plot(r.steps, r.test_acc[key], "o-", ms=3, color=color, label=label.format(depth=r.depth))
    ax.axhline(r.logistic_test_acc, color="tab:grey", ls="--", lw=1.2,
               label="one Linear layer, fitted to convergence")
    ax.axhline(0.32, color="k", ls=":", lw=1, label="paper: logistic regression, 32 %")
    ax.set(xlabel="Adam step", ylabel="test accuracy", ylim=(0, 1),
           title="MNIST-1D: depth without non-linearity adds nothing")
    legend_off_data(ax, **LEGEND)
    fig.tight_layout()
    return fig, ax
