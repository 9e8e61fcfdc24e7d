"""Figure of ``glorot_he``: He et al. 2015 training curves and Glorot & Bengio 2010 per-layer views."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def _hist(ax, edges, hists, title: str) -> None:
    e = np.asarray(edges)
    centres = (e[:-1] + e[1:]) / 2
    for k, h in enumerate(hists):
        ax.plot(centres, h, label=f"layer {k + 1}")
    ax.set(xlabel="tanh output", ylabel="fraction", title=title)
    ax.legend(fontsize=6)


def plot_glorot_he(r):
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    ax = axes[0]
    ax.plot(r.steps, r.glorot_train_loss, "o-", ms=3, color="tab:red", label="Glorot init")
    ax.plot(r.steps, r.he_train_loss, "o-", ms=3, color="tab:blue", label="He init")
    ax.axhline(math.log(10), color="k", ls=":", lw=1, label="ln(10)")
    ax.set(xlabel="step", ylabel="training loss", title=f"{r.deep_depth}-layer plain ReLU, lr {r.lr}")
    ax.legend(fontsize=7)
    _hist(axes[1], r.tanh_hist_edges, r.tanh_hist["standard"], "tanh outputs, standard U[±1/√n]")
    _hist(axes[2], r.tanh_hist_edges, r.tanh_hist["normalized"], "tanh outputs, normalized init")
    ax = axes[3]
    for scheme, color in (("standard", "tab:red"), ("normalized", "tab:blue")):
        v = np.asarray(r.tanh_grad_var[scheme])
        ax.semilogy(np.arange(1, len(v) + 1), v, "o-", color=color, label=scheme)
    ax.set(xlabel="layer (1 = bottom)", ylabel="Var(dL / d pre-activation)", title="back-propagated gradients")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, axes
