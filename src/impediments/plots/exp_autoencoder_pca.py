"""Figure of ``autoencoder_pca``: principal angles of the encoders to PCA's subspace, and reconstruction error."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from impediments.plots.style import LEGEND, legend_off_data

COLORS = {"identity": "tab:blue", "sigmoid": "tab:orange"}
NAMES = {"identity": "linear encoder", "sigmoid": "sigmoid encoder"}


def plot_autoencoder_pca(r):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    k = np.arange(1, r.bottleneck + 1)
    width = 0.4
    for i, key in enumerate(("identity", "sigmoid")):
        ax.bar(k + (i - 0.5) * width, r.angles[key], width=width, color=COLORS[key], label=NAMES[key])
    ax.axhline(90, color="grey", ls=":", lw=1)
    ax.set(xlabel="principal angle index (ascending)", ylabel="angle to PCA's subspace (degrees)", ylim=(0, 95),
           title=f"encoder rows vs PCA's top {r.bottleneck} directions (0° = same)")
    legend_off_data(ax, **LEGEND)
    ax = axes[1]
    for key in ("identity", "sigmoid"):
        curve = r.recon_curve[key]
        ax.plot(np.arange(len(curve)), curve, "o-", ms=3, color=COLORS[key], label=NAMES[key])
    ax.axhline(r.pca_mse, color="k", ls="--", lw=1, label=f"PCA, top {r.bottleneck} (optimum)")
    ax.set(xlabel="pre-training epoch", ylabel="reconstruction MSE", title="reconstruction error")
    legend_off_data(ax, **LEGEND)
    fig.tight_layout()
    return fig, axes
