"""Figures of the part-2 experiments (normalization). Each function takes a ``Result`` and returns ``(fig, axes)``."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from impediments.plots.style import LEGEND, fill_band, legend_off_data

COLORS = {"plain": "tab:red", "bn": "tab:blue", "none": "tab:red", "batch": "tab:blue", "layer": "tab:green",
          "group": "tab:orange"}
CYCLE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _finish(fig, axes, title: str, *, legend=()):
    """Legends (:data:`impediments.plots.style.LEGEND`) on the ``legend`` axes, the title and a tight layout."""
    for ax in legend:
        legend_off_data(ax, **LEGEND)
    fig.suptitle(title)
    fig.tight_layout()
    return fig, axes


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
    legend_off_data(axes[0], fontsize=8)
    for ax, key, label in ((axes[2], "plain", "(b) without BN"), (axes[3], "bn", "(c) with BN")):
        q = np.asarray(r.runs[key]["quantiles"])
        for k, (ls, name) in enumerate(zip((":", "-", ":"), ("15th", "50th", "85th"))):
            ax.plot(steps, q[:, k], color=COLORS[key], ls=ls, label=f"{name} percentile")
        ax.set(xlabel="step", ylabel="input to sigmoid (unit 0, last layer)", title=label)
        legend_off_data(ax, fontsize=7)
    lo = min(axes[2].get_ylim()[0], axes[3].get_ylim()[0])
    hi = max(axes[2].get_ylim()[1], axes[3].get_ylim()[1])
    axes[2].set_ylim(lo, hi)
    axes[3].set_ylim(lo, hi)
    return _finish(fig, axes,
                   "3×100 sigmoid MLP on digits, small Gaussian init, batch 60 (Ioffe & Szegedy 2015, Fig. 1)")


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
    legend_off_data(axes[2], fontsize=7, loc="lower center")
    return _finish(fig, axes,
                   f"BN MLP pretrained on digits 0–4, new head on {r.shots} examples per class of digits 5–9",
                   legend=axes[:2])


def plot_bn_inference(r):
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    steps = np.asarray(r.steps)
    axes[0].plot(steps[1:], r.mean_gap[1:], color="tab:blue", label="mean |μ_EMA − μ| / σ")
    axes[0].plot(steps[1:], r.var_gap[1:], color="tab:orange", label="mean |log σ²_EMA / σ²|")
    axes[0].set(xlabel="step", ylabel="gap", title="EMA vs exact (PreciseBN) statistics")
    axes[1].plot(steps, r.acc_ema, color="tab:blue", label="EMA statistics")
    axes[1].plot(steps, r.acc_precise, color="tab:green", ls="--", label="PreciseBN statistics")
    low = min(r.acc_ema[1:] + r.acc_precise[1:])
    axes[1].set(xlabel="step", ylabel="test accuracy", ylim=(max(0.0, low - 0.05), 1), title="test accuracy, same weights")
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
    return _finish(fig, axes, "BatchNorm in training vs inference mode (BN MLP on digits)", legend=axes[:3])


def plot_bn_dropout(r, band=None):
    colors = {"before": "tab:red", "between": "tab:orange", "after": "tab:blue"}
    labels = {"before": "linear→dropout→BN→ReLU", "between": "linear→BN→ReLU→dropout",
              "after": "dropout after the last BN"}
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    axes = axes.ravel()
    keep = 1 - np.asarray(r.rates)
    grid = np.linspace(keep.min(), keep.max(), 100)
    axes[0].plot(1 - grid, 1 / grid, color="grey", ls=":", label="1/p")
    axes[0].plot(r.rates, r.formula, "x", color="black", ms=9, label="Li et al. (c²+v)/p − c², over v")
    for a in r.shift:
        axes[0].plot(r.rates, [s[0] for s in r.shift[a]], "o-", color=colors[a], label=f"{labels[a]}: BN 1")
    axes[0].set(xlabel="dropout rate (p = 1 − rate)", ylabel="Var_train / Var_inference of BN input",
                title="variance shift of the first BN")
    n = len(r.trained_shift["before"])
    x = np.arange(n)
    for i, a in enumerate(r.trained_shift):
        axes[1].bar(x + (i - 1) * 0.27, r.trained_shift[a], 0.27, color=colors[a], label=labels[a])
    axes[1].axhline(1, color="grey", lw=1)
    axes[1].set_xticks(x, [f"BN {k + 1}" for k in range(n)])
    axes[1].set(ylabel="variance-shift ratio", title=f"trained networks, dropout {r.train_rate:g}")
    arr = list(r.acc_running)
    x = np.arange(len(arr))
    axes[2].bar(x - 0.2, [r.acc_running[a] for a in arr], 0.4, label="running stats (dropout on)")
    axes[2].bar(x + 0.2, [r.acc_adjusted[a] for a in arr], 0.4, label="recomputed, dropout off")
    lo = min(list(r.acc_running.values()) + list(r.acc_adjusted.values()))
    axes[2].set_xticks(x, [labels[a].replace(": ", ":\n").replace("→", "→\n", 1) for a in arr], fontsize=8)
    axes[2].set(ylim=(max(0.0, lo - 0.05), 1.0), ylabel="test accuracy", title="test accuracy")
    names = {"plain": "no BN, no dropout", "bn": "BN", "dropout": f"dropout {r.train_rate:g}, no BN"}
    keys = list(r.gap)
    gaps = [r.gap[k] for k in keys]
    yerr = None
    if band is not None:
        yerr = np.abs(np.array([[g - band.low.gap[k] for g, k in zip(gaps, keys)],
                                [band.high.gap[k] - g for g, k in zip(gaps, keys)]]))
    axes[3].bar(range(len(keys)), gaps, yerr=yerr, capsize=4, color=["tab:red", "tab:blue", "tab:orange"])
    axes[3].set_xticks(range(len(keys)), [names[k] for k in keys])
    axes[3].set(ylabel="test loss − training loss",
                title=f"generalization gap ({r.gap_examples} training digits, {r.gap_epochs} epochs)")
    return _finish(fig, axes, "Dropout and BatchNorm: the variance shift (Li et al. 2018), ReLU MLPs on digits",
                   legend=axes[:3])


def plot_l2_with_bn(r):
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    axes = axes.ravel()
    alphas = np.asarray(r.alphas)
    grid = np.geomspace(alphas.min(), alphas.max(), 50)
    axes[0].plot(grid, 1 / grid, color="grey", ls=":", label="1/α")
    axes[0].plot(alphas, r.grad_ratio, "o", color="tab:blue", label="‖∇L(αw)‖/‖∇L(w)‖")
    axes[0].plot(alphas, r.grad_ratio_fixed_eps, "x", color="tab:red", label="same, BN ε fixed at 1e-5")
    axes[0].set(xscale="log", yscale="log", xlabel="α (scale of BN-fed weights)", ylabel="gradient ratio",
                title="gradient scales as 1/α; f(αw) = f(w)")
    steps = np.asarray(r.steps)
    for i, d in enumerate(r.decays):
        color = CYCLE[i % len(CYCLE)]
        axes[1].plot(steps, r.norms[str(d)], color=color, label=f"λ = {d:g}")
        axes[2].plot(steps, r.effective_lr[str(d)], color=color, label=f"λ = {d:g}")
    axes[1].set(xlabel="step", ylabel="mean ‖w‖ of BN-fed layers", title="weight norm")
    axes[2].set(xlabel="step", ylabel="η / ‖w‖²", title=f"effective learning rate (η = {r.lr:g})")
    keys = [str(d) for d in r.decays]
    accs = [r.test_acc[k] for k in keys]
    axes[3].bar(range(len(keys)), accs, color=[CYCLE[i % len(CYCLE)] for i in range(len(keys))])
    axes[3].set_xticks(range(len(keys)), [f"λ = {d:g}" for d in r.decays])
    axes[3].set(ylim=(max(0.0, min(accs) - 0.05), 1.0), ylabel="test accuracy", title="test accuracy")
    return _finish(fig, axes,
                   "Weight decay with BatchNorm changes ‖w‖ and the effective learning rate (van Laarhoven 2017)",
                   legend=axes[:3])


def plot_small_batch_norms(r, band=None):
    labels = {"batch": "BatchNorm", "group": "GroupNorm", "layer": "LayerNorm", "none": "no norm"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    b = np.asarray(r.ghost_sizes)
    for norm, err in r.test_error.items():
        for ax, values, key in ((axes[0], err, "test_error"), (axes[1], r.train_error[norm], "train_error")):
            ax.plot(b, 100 * np.asarray(values), "o-", color=COLORS[norm], label=labels.get(norm, norm))
            if band is not None:
                fill_band(ax, b, 100 * np.asarray(getattr(band.low, key)[norm]),
                          100 * np.asarray(getattr(band.high, key)[norm]), COLORS[norm])
    for ax, what in zip(axes, ("test", "train")):
        ax.set(xscale="log", xlabel="examples per BatchNorm statistic (ghost batch)", ylabel=f"{what} error (%)",
               title=f"{what} error after {r.epochs} epochs")
        ax.set_xticks(b, [str(v) for v in b])
        ax.minorticks_off()
        ax.invert_xaxis()
        legend_off_data(ax, **LEGEND)
    trained = " vs ".join(labels.get(n, n) for n in r.test_error)
    return _finish(fig, axes, f"{trained} on a 1-D CNN (MNIST-1D, SGD batch {r.batch_size}): small batches per "
                              "normalization (Wu & He 2018)")


def plot_bn_output_stats(r):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    epochs = np.asarray(r.epochs)
    for key, label, ls in (("bn", "BN output", "-"), ("plain", "same layer without BN", "--")):
        m, v = np.asarray(r.stats[key]["mean"]), np.asarray(r.stats[key]["var"])
        for k in range(m.shape[1]):
            color = CYCLE[k % len(CYCLE)]
            axes[0].plot(epochs, m[:, k], ls=ls, color=color, label=f"{label}, layer {k + 1}")
            axes[1].plot(epochs, v[:, k], ls=ls, color=color, label=f"{label}, layer {k + 1}")
        axes[2].plot(epochs, r.test_loss[key], ls=ls, color=COLORS[key], label="with BN" if key == "bn" else "without BN")
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[1].axhline(1, color="grey", lw=0.8)
    axes[0].set(xlabel="epoch", ylabel="mean over units of the unit mean", title="mean of layer outputs")
    axes[1].set(xlabel="epoch", ylabel="mean over units of the unit variance", title="variance of layer outputs",
                yscale="log")
    axes[2].set(xlabel="epoch", ylabel="test loss", title="test loss")
    return _finish(fig, axes, "Sigmoid MLP on digits with BN after the first Dense layers (test set, inference mode)",
                   legend=axes)


def plot_bn_learning_rates(r):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lrs = np.asarray(r.lrs)
    for key, label in (("plain", "without BN"), ("bn", "with BN")):
        steps = np.asarray(r.steps_to_target[key], dtype=float)
        ok = np.isfinite(steps)
        axes[0].plot(lrs[ok], steps[ok], "o-", color=COLORS[key], label=label)
        div = np.asarray(r.diverged[key], dtype=bool)
        axes[0].plot(lrs[~ok], np.full((~ok).sum(), r.max_steps), "x", color=COLORS[key], ms=9,
                     label=f"{label}: not reached" + (" / diverged" if div.any() else ""))
        axes[1].plot(lrs, r.final_acc[key], "o-", color=COLORS[key], label=label)
    axes[0].set(xscale="log", xlabel="learning rate", ylabel=f"steps to {r.target_acc:g} test accuracy",
                title="steps to target (× = not within budget)")
    axes[1].axhline(r.target_acc, color="grey", ls=":", lw=1)
    axes[1].set(xscale="log", xlabel="learning rate", ylabel="test accuracy when stopped", ylim=(0, 1),
                title="accuracy when stopped")
    return _finish(fig, axes, "4-layer ReLU MLP on digits, plain SGD: BN tolerates higher learning rates", legend=axes)


def plot_norm_every_k(r):
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    axes = axes.ravel()
    labels = ["none" if e == 0 else f"every {e}" for e in r.every]
    x = np.arange(len(r.every))
    axes[0].bar(x, r.elements_per_step, color=CYCLE[: len(x)])
    axes[0].set_xticks(x, labels)
    axes[0].set(ylabel="tensor elements written per step", title="work per training step",
                ylim=(0.9 * min(r.elements_per_step), 1.02 * max(r.elements_per_step)))
    axes[1].bar(x, r.ms_per_step, color=CYCLE[: len(x)])
    axes[1].set_xticks(x, labels)
    axes[1].set(ylabel="ms per step (min over repeats)", title="wall-clock (noisy on a shared machine)")
    for ax, key, xlabel in ((axes[2], "ms_per_step", "ms per step"),
                            (axes[3], "elements_per_step", "tensor elements written per step")):
        for i, label in enumerate(labels):
            ax.plot(getattr(r, key)[i], r.test_acc[i], "o", color=CYCLE[i % len(CYCLE)], ms=9, label=label)
        ax.set(xlabel=xlabel, ylabel=f"test accuracy after {r.steps} steps", ylim=(0, 1),
               title=f"{'time' if key == 'ms_per_step' else 'work'} per step vs accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        legend_off_data(ax, title="BN", **LEGEND)
    return _finish(fig, axes, f"{r.depth}-layer ReLU MLP on digits with BN after every k-th layer")


def plot_bn_placement(r):
    names = {"pre": "BN before the sigmoid", "post": "BN after the sigmoid"}
    colors = {"pre": "tab:blue", "post": "tab:purple"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    layers = np.arange(1, len(r.saturated["pre"]) + 1)
    for i, p in enumerate(("pre", "post")):
        axes[0].bar(layers + (i - 0.5) * 0.4, r.saturated[p], width=0.4, color=colors[p], label=names[p])
        nxt = np.arange(2, len(r.input_mean[p]) + 2)
        axes[1].bar(nxt + (i - 0.5) * 0.4, r.input_mean[p], width=0.4, color=colors[p], label=names[p])
        axes[2].plot(r.steps, r.test_acc[p], "o-", ms=3, color=colors[p], label=names[p])
    axes[0].set(xlabel="hidden layer", ylabel="fraction of sigmoid inputs saturated", ylim=(0, 1.3),
                title="saturated tails (test set, after training)")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    top = max(max(r.input_mean["pre"]), max(r.input_mean["post"]))
    axes[1].set(xlabel="Linear layer (2 = the second)", ylabel="mean over features of |feature mean|",
                ylim=(0, 1.5 * top), title="how far the inputs are from zero-centred")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set(xlabel="step", ylabel="test accuracy", ylim=(0, 1), title="test accuracy")
    return _finish(fig, axes, "Deep sigmoid MLP on digits: BN before vs after the activation",
                   legend=(axes[0], axes[1], axes[2]))


def plot_bn_gamma_beta(r):
    names = {"learned": "γ/β learned", "fixed": "γ/β fixed at 1/0"}
    colors = {"learned": "tab:blue", "fixed": "tab:grey"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    layers = np.arange(1, len(r.regions["learned"]) + 1)
    for i, mode in enumerate(("learned", "fixed")):
        regions = np.asarray(r.regions[mode], dtype=float)
        axes[0].bar(layers + (i - 0.5) * 0.4, 1 - regions[:, 1], width=0.4, color=colors[mode], label=names[mode])
        axes[1].bar(layers + (i - 0.5) * 0.4, regions[:, 0], width=0.4, color=colors[mode], label=names[mode])
    axes[0].axhline(1 - r.normal_linear, color="k", ls="--", lw=1, label="standard normal (closed form)")
    axes[0].set(xlabel="hidden layer", ylabel="fraction outside the linear region", ylim=(0, 1.35),
                title=f"non-linear part of the sigmoid (|x| > {r.linear_bound:.2f})")
    top = max(max(x[0] for x in r.regions[m]) for m in ("learned", "fixed"))
    axes[1].set(xlabel="hidden layer", ylabel="fraction in a saturated tail", ylim=(0, 1.5 * top + 1e-3),
                title="saturated tails")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(fig, axes, "Sigmoid MLP with BN before each sigmoid, digits: what learned γ/β do",
                   legend=(axes[0], axes[1]))


def plot_bn_gradient_scale(r):
    names = {"plain": "without BN", "bn": "with BN"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for key in ("plain", "bn"):
        g, w = np.asarray(r.grad_norm[key], dtype=float), np.asarray(r.weight_norm[key], dtype=float)
        steps = np.arange(1, len(g) + 1)
        axes[0].plot(steps, g, color=COLORS[key], lw=1, label=names[key])
        axes[1].plot(steps, w, color=COLORS[key], lw=1.5, label=names[key])
    for ax in axes:
        ax.set_yscale("log")
    axes[0].set(xlabel="SGD step", ylabel="gradient norm (middle layer)", title=f"derivatives at rate {r.lr:g}")
    axes[1].set(xlabel="SGD step", ylabel="weight norm (middle layer)",
                title="weights (a line that stops: the loss became non-finite)")
    return _finish(fig, axes, f"Deep ReLU MLP on digits, same learning rate {r.lr:g}: BN controls the derivatives",
                   legend=(axes[0], axes[1]))
