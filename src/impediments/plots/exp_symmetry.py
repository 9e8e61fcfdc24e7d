"""Figure of the ``zero_init`` and ``identical_init`` experiments: curves and unit spread."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

COLORS = ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:brown")
STYLES = ("-", "--", ":", "-.")


def plot_symmetry(steps, runs: dict, labels: dict[str, str], *, title: str):
    """Loss, accuracy and max pairwise unit difference per run.

    Args:
        steps: evaluation steps shared by all runs.
        runs: key -> {"train_loss", "test_acc", "spread": {layer: [...]}}.
        labels: key -> legend label (also fixes the drawing order).
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    steps = np.asarray(steps)
    for (key, label), color in zip(labels.items(), COLORS):
        run = runs[key]
        axes[0].plot(steps, run["train_loss"], color=color, label=label)
        axes[1].plot(steps, run["test_acc"], color=color, label=label)
        for i, (layer, spread) in enumerate(run["spread"].items()):
            s = np.maximum(np.asarray(spread, dtype=float), 1e-12)
            axes[2].semilogy(steps, s, color=color, ls=STYLES[i % 4], label=f"{label}, {layer}")
    axes[0].set(xlabel="step", ylabel="training loss", title="training loss")
    axes[1].set(xlabel="step", ylabel="test accuracy", title="test accuracy", ylim=(0, 1))
    axes[2].set(xlabel="step", ylabel="max pairwise unit difference", ylim=(5e-13, None),
                title="spread between units (exact 0 drawn at 1e-12)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    axes[2].legend(fontsize=6, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return fig, axes
