"""The loss's trend after the transient, read by the rules on the loss and by those that grade a finding by the
cost it shows (no rules here).

A trend is read only after the first ``transient_steps`` (a dozen): momentum and Adam's moment estimates average
over about :math:`1/(1-\\beta) = 10` steps, and BatchNorm running statistics and warm-up settle in that time.
The first and last thirds of the windows average out mini-batch noise.
"""
from __future__ import annotations


def after_transient(stats, th) -> list[tuple[int, float]]:
    """``(start_step, mean loss)`` of the windows that start after the transient."""
    return [(w.start_step, float(w.loss_mean)) for w in stats.windows
            if w.loss_mean is not None and w.start_step >= th.transient_steps]


def loss_thirds(means: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last third of the windows (averages out mini-batch noise)."""
    k = max(1, len(means) // 3)
    return sum(means[:k]) / k, sum(means[-k:]) / k
