"""Figure of the ``zigzag`` experiment (takes a Result, and optionally the band over seeds; never a model)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from impediments.plots.style import LEGEND, fill_band, legend_off_data

COLORS = {"raw": "tab:red", "std": "tab:blue", "rescaled": "tab:green"}
LABELS = {"raw": "raw pixels 0..16", "std": "standardized", "rescaled": "every other pixel x 10"}


def _paths(ax, r) -> None:
    for path, label, color in ((r.path_positive, f"all-positive ({r.steps_positive:.0f} steps on average)", "tab:red"),
                               (r.path_centred, f"centred ({r.steps_centred:.0f} steps on average)", "tab:blue")):
        p = np.asarray(path)[:200]
        ax.plot(p[:, 0], p[:, 1], "-", marker=".", ms=3, lw=0.8, color=color, label=label)
    w = np.asarray(r.w_star)
    ax.plot(*w, "k*", ms=12, label="optimum w*")
    ax.plot(0, 0, "ko", ms=5)
    ax.set(xlabel="w1", ylabel="w2", title="(a) per-example updates, first 200 steps")
    ax.axhline(0, color="0.8", lw=0.5)
    ax.axvline(0, color="0.8", lw=0.5)
    legend_off_data(ax, **LEGEND)


def _rates(ax, r) -> None:
    for err, name, ls in ((r.error_unequal, "unequal variances", "-"), (r.error_equal, "standardized", "--")):
        e = np.maximum(np.asarray(err), 1e-12)
        for j, color in ((0, "tab:purple"), (1, "tab:orange")):
            ax.semilogy(e[:, j], ls=ls, color=color, label=f"{name}: weight {j + 1} (σ²={r.variances[j]:.0f})"
                        if name.startswith("unequal") else f"{name}: weight {j + 1}")
    ax.set(xlabel="full-batch step, rate 1/λmax (the largest stable for the high-variance weight)",
           ylabel="|w_j - w*_j| / |w*_j|", title="(a') unequal variances: weights learn at different rates",
           ylim=(1e-3, 2))
    legend_off_data(ax, **LEGEND)


def plot_zigzag(r, band=None):
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    _paths(axes[0, 0], r)
    _rates(axes[0, 1], r)
    lrs = np.asarray(r.lrs, dtype=float)
    ax = axes[0, 2]
    for key in r.acc:
        ax.semilogx(lrs, r.acc[key], "o-", color=COLORS[key], label=LABELS[key])
        if band is not None:
            fill_band(ax, lrs, band.low.acc[key], band.high.acc[key], COLORS[key])
    ax.set(xlabel="learning rate", ylabel="test accuracy after 3 epochs", ylim=(0, 1),
           title="(b) digits, 64-30-10 tanh: accuracy per learning rate")
    legend_off_data(ax, **LEGEND)
    ax = axes[1, 0]
    for key in r.steps_to_loss:
        steps = np.asarray(r.steps_to_loss[key], dtype=float)
        ok = np.isfinite(steps)
        ax.semilogx(lrs[ok], steps[ok], "o-", color=COLORS[key], label=LABELS[key])
    ax.set(xlabel="learning rate", ylabel=f"steps to training loss {r.target_loss:g}",
           title="(b) steps to the target loss (missing: not reached at some seed)")
    legend_off_data(ax, **LEGEND)
    ax = axes[1, 1]
    for key, curve in r.curves.items():
        c = np.asarray(curve, dtype=float)
        lrs_used = f"{r.best_lr[key]:g}" if band is None else (
            f"{band.low.best_lr[key]:g}" if band.low.best_lr[key] == band.high.best_lr[key]
            else f"{band.low.best_lr[key]:g} to {band.high.best_lr[key]:g}")
        ax.plot(c, color=COLORS[key], lw=2, label=f"{LABELS[key]}, best lr {lrs_used}")
        if band is not None:
            fill_band(ax, np.arange(len(c)), band.low.curves[key], band.high.curves[key], COLORS[key])
    ax.set(xlabel="epoch", ylabel="test accuracy", title="(b) each input at its own best learning rate",
           ylim=(0, 1))
    legend_off_data(ax, **LEGEND)
    ax = axes[1, 2]
    ax.hist(np.asarray(r.batch_means_example), bins=20, color="tab:gray")
    ax.axvline(0, color="k", lw=1, label="training-set mean (0)")
    ax.set(xlabel=f"mini-batch mean (B={r.probe_batch}) of one standardized feature", ylabel="batches",
           title=f"(c) mean |batch mean| {r.batch_mean_abs:.3f} (predicted {r.batch_mean_predicted:.3f})")
    legend_off_data(ax, **LEGEND)
    if band is not None:
        fig.text(0.01, 0.005, f"lines: mean over {band.seeds} seeds; shaded: lowest to highest seed", fontsize=9)
    fig.tight_layout()
    return fig, axes
