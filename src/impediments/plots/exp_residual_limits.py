"""Figure of ``residual_limits``: output std vs depth, training curves He vs Fixup vs BN."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from impediments.plots.style import legend_off_data


def plot_residual_limits(r):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.semilogy(r.depths, r.he_std, "o-", color="tab:red", label="He init")
    ax.semilogy(r.depths, r.fixup_std, "o-", color="tab:blue", label="Fixup")
    ax.semilogy(r.depths, r.bn_stream_std, "o-", color="tab:green", label="He init + BN in every branch (stream)")
    ax.set(xlabel="residual blocks", ylabel="std at init (classifier input; BN: residual stream)",
           title="output scale at init")
    ax.set_xscale("log", base=2)
    legend_off_data(ax, fontsize=8)
    ax = axes[1]
    he = np.asarray(r.he_train_loss, dtype=float)
    ax.semilogy(r.steps[: len(he)], np.where(np.isfinite(he), he, np.nan), "o-", color="tab:red",
                label="He init" + (" (diverged: NaN/Inf)" if r.he_diverged else ""))
    ax.semilogy(r.steps, r.fixup_train_loss, "o-", color="tab:blue", label="Fixup")
    bn = np.asarray(r.bn_train_loss, dtype=float)
    ax.semilogy(r.steps[: len(bn)], np.where(np.isfinite(bn), bn, np.nan), "o-", color="tab:green",
                label="He init + BN")
    ax.axhline(math.log(10), color="k", ls=":", lw=1, label="ln(10)")
    ax.set(xlabel="step", ylabel="training loss", title=f"{r.train_depth} blocks, lr {r.lr}")
    legend_off_data(ax, fontsize=8)
    fig.tight_layout()
    return fig, axes
