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


def plot_frozen_bn_transfer(r):
    labels = {"keras_freeze": "(a) norm.freeze (Keras)", "naive_freeze": "(b) requires_grad=False",
              "finetune": "(c) fine-tune all"}
    colors = {"keras_freeze": "tab:blue", "naive_freeze": "tab:red", "finetune": "tab:green"}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for m, run in r.runs.items():
        axes[0].plot(np.arange(1, len(run["drift"]) + 1), run["drift"], color=colors[m], label=labels[m])
        axes[1].plot(r.eval_steps, run["test_acc"], color=colors[m], label=labels[m])
    axes[0].set(xlabel="transfer step", ylabel="mean |μ − μ₀| / σ₀ over BN channels",
                title="running-mean drift from the pretrained statistics")
    axes[1].set(xlabel="transfer step", ylabel="target test accuracy", ylim=(0, 1), title="target task (digits 5–9)")
    methods = list(r.runs)
    x = np.arange(len(methods))
    axes[2].bar(x - 0.2, [r.runs[m]["final_acc"] for m in methods], 0.4, label="target test acc (new head)")
    axes[2].bar(x + 0.2, [r.runs[m]["source_acc_after"] for m in methods], 0.4, label="source test acc (old head)")
    axes[2].axhline(r.source_acc, color="grey", ls=":", lw=1, label="source acc before transfer")
    axes[2].set_xticks(x, [labels[m] for m in methods], fontsize=7)
    axes[2].set(ylim=(0, 1.05), title="after transfer")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=7, loc="lower center")
    _finish(fig, f"BN MLP pretrained on digits 0–4, new head on {r.shots} examples per class of digits 5–9")
    return fig, axes


def plot_bn_inference(r):
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    steps = np.asarray(r.steps)
    axes[0].plot(steps[1:], r.mean_gap[1:], color="tab:blue", label="mean |μ_EMA − μ| / σ")
    axes[0].plot(steps[1:], r.var_gap[1:], color="tab:orange", label="mean |log σ²_EMA / σ²|")
    axes[0].set(xlabel="step", ylabel="gap", title="EMA vs exact (PreciseBN) statistics")
    axes[1].plot(steps, r.acc_ema, color="tab:blue", label="EMA statistics")
    axes[1].plot(steps, r.acc_precise, color="tab:green", ls="--", label="PreciseBN statistics")
    axes[1].set(xlabel="step", ylabel="test accuracy", ylim=(max(0.0, min(r.acc_ema[1:] + r.acc_precise[1:]) - 0.05), 1),
                title="test accuracy, same weights")
    m = np.asarray(r.batch_sizes, dtype=float)
    grid = np.linspace(m.min(), m.max(), 200)
    axes[2].plot(grid, (grid - 1) / grid, color="grey", ls=":", label="(m−1)/m")
    axes[2].plot(m, r.biased_var, "o", color="tab:red", label="mean biased σ²_B (training)")
    axes[2].plot(m, r.running_var, "s", color="tab:blue", label="running var (inference)")
    axes[2].set(xscale="log", xlabel="batch size m", ylabel="variance (population = 1)",
                title="inference uses m/(m−1)·E[σ²_B]")
    axes[2].set_xticks(m, [f"{v:g}" for v in m])
    axes[2].minorticks_off()
    tiny = 1e-12
    values = [r.train_batch_diff, r.eval_batch_diff, r.fold_max_diff]
    axes[3].bar(["train mode:\nother batch", "inference:\nalone vs batch", "fold_bn vs\ninference"],
                [max(v, tiny) for v in values], color=["tab:red", "tab:blue", "tab:green"])
    axes[3].set(yscale="log", ylim=(tiny / 10, 100), ylabel="max |Δ output|", title="determinism and folding")
    for ax in axes[:3]:
        ax.legend(fontsize=7)
    _finish(fig, "BatchNorm in training vs inference mode (BN MLP on digits)")
    return fig, axes
