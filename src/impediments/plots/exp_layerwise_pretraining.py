"""Figure of ``layerwise_pretraining``: fine-tuning curves and reconstruction errors."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from impediments.plots.style import legend_off_data


def plot_layerwise_pretraining(r):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    offset = r.pretrain_steps_total
    ax = axes[0]
    ax.plot(r.rand_steps, r.rand_train_loss, "o-", ms=3, color="tab:red", label="random init")
    ax.plot(r.glorot_steps, r.glorot_train_loss, "o-", ms=3, color="tab:green", label="Glorot init, no pre-training")
    ax.plot(r.pre_steps, r.pre_train_loss, "o-", ms=3, color="tab:blue", label="pre-trained (fine-tuning steps)")
    ax.plot(np.asarray(r.pre_steps) + offset, r.pre_train_loss, "--", color="tab:blue", alpha=0.6,
            label=f"pre-trained, shifted by {offset} pre-training steps")
    ax.axhline(math.log(10), color="k", ls=":", lw=1, label="ln(10)")
    ax.set(xlabel="step", ylabel="training loss", title="training loss")
    legend_off_data(ax, fontsize=7)
    ax = axes[1]
    ax.plot(r.rand_steps, r.rand_test_acc, "o-", ms=3, color="tab:red", label="random init")
    ax.plot(r.glorot_steps, r.glorot_test_acc, "o-", ms=3, color="tab:green", label="Glorot init")
    ax.plot(r.pre_steps, r.pre_test_acc, "o-", ms=3, color="tab:blue", label="pre-trained")
    ax.set(xlabel="step", ylabel="test accuracy", ylim=(0, 1), title="test accuracy")
    legend_off_data(ax, fontsize=7)
    ax = axes[2]
    layers = np.arange(1, len(r.recon_first) + 1)
    ax.bar(layers - 0.2, r.recon_first, width=0.4, label="before")
    ax.bar(layers + 0.2, np.maximum(np.asarray(r.recon_last, dtype=float), 1e-8), width=0.4, label="after")
    ax.set_yscale("log")
    ax.set(xlabel="layer", ylabel="reconstruction MSE (floor 1e-8)", title="greedy pre-training")
    legend_off_data(ax, fontsize=7)
    fig.tight_layout()
    return fig, axes
