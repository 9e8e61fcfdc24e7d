"""Figure of the ``zigzag`` experiment (takes a Result, never a model)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def _paths(ax, r) -> None:
    for path, label, color in ((r.path_positive, f"all-positive ({r.steps_positive} steps)", "tab:red"),
                               (r.path_centred, f"centred ({r.steps_centred} steps)", "tab:blue")):
        p = np.asarray(path)[:200]
        ax.plot(p[:, 0], p[:, 1], "-", marker=".", ms=3, lw=0.8, color=color, label=label)
    w = np.asarray(r.w_star)
    ax.plot(*w, "k*", ms=12, label="optimum w*")
    ax.plot(0, 0, "ko", ms=5)
    ax.set(xlabel="w1", ylabel="w2", title="(a) per-example updates, first 200 steps")
    ax.axhline(0, color="0.8", lw=0.5)
    ax.axvline(0, color="0.8", lw=0.5)
    ax.legend(fontsize=7)


def plot_zigzag(r):
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    _paths(axes[0, 0], r)
    ax = axes[0, 1]
    lrs = np.asarray(r.lrs, dtype=float)
    ax.semilogx(lrs, r.acc_raw, "o-", color="tab:red", label="raw pixels 0..16")
    ax.semilogx(lrs, r.acc_std, "o-", color="tab:blue", label="standardized")
    ax.axhline(0.93, color="tab:blue", ls=":", lw=0.8, label="LeCun reproduction 93%")
    ax.axhline(0.75, color="tab:red", ls=":", lw=0.8, label="LeCun reproduction 75%")
    ax.set(xlabel="learning rate", ylabel="test accuracy after 3 epochs", title="(b) digits, 64-30-10 tanh",
           ylim=(0, 1))
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    for curves, color, label in ((r.curve_raw, "tab:red", "raw"), (r.curve_std, "tab:blue", "standardized")):
        c = np.asarray(curves)
        ax.plot(c.T, color=color, lw=0.6, alpha=0.5)
        ax.plot(c.mean(axis=0), color=color, lw=2, label=f"{label} (mean of {len(c)} inits)")
    ax.set(xlabel="epoch", ylabel="test accuracy", title=f"(b) test accuracy per epoch at lr {r.lr}", ylim=(0, 1))
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.hist(np.asarray(r.batch_means_example), bins=20, color="tab:gray")
    ax.axvline(0, color="k", lw=1, label="training-set mean (0)")
    ax.set(xlabel=f"mini-batch mean (B={r.probe_batch}) of one standardized feature", ylabel="batches",
           title=f"(c) mean |batch mean| {r.batch_mean_abs:.3f} (predicted {r.batch_mean_predicted:.3f})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, axes
