"""Figure of ``residual_limits``: output std vs depth, training curves He vs Fixup."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np


def plot_residual_limits(r):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.semilogy(r.depths, r.he_std, "o-", color="tab:red", label="He init")
    ax.semilogy(r.depths, r.fixup_std, "o-", color="tab:blue", label="Fixup")
    ax.set(xlabel="residual blocks", ylabel="std of the classifier's input at init", title="output scale at init")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=8)
    ax = axes[1]
    he = np.asarray(r.he_train_loss, dtype=float)
    ax.semilogy(r.steps[: len(he)], np.where(np.isfinite(he), he, np.nan), "o-", color="tab:red",
                label="He init" + (" (diverged: NaN/Inf)" if r.he_diverged else ""))
    ax.semilogy(r.steps, r.fixup_train_loss, "o-", color="tab:blue", label="Fixup")
    ax.axhline(math.log(10), color="k", ls=":", lw=1, label="ln(10)")
    ax.set(xlabel="step", ylabel="training loss", title=f"{r.train_depth} blocks, lr {r.lr}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, axes
