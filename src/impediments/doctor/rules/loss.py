"""Rules on the recorded loss: divergence and plateau (need ``mon.record_loss``)."""
from __future__ import annotations

from impediments.doctor.rules.base import finding, finite, rule


def _windows(loss) -> list[float]:
    return [float(v) for v in (getattr(loss, "window_means", None) or []) if v is not None]


def compared_windows(n: int) -> tuple[list[int], list[int]]:
    """Indices of the windows whose mean losses the rules compare: the first and the last third."""
    k = max(1, n // 3)
    return list(range(k)), list(range(max(0, n - k), n))


def _thirds(means: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last third of the windows (averages out mini-batch noise)."""
    first, last = compared_windows(len(means))
    return sum(means[i] for i in first) / len(first), sum(means[i] for i in last) / len(last)


@rule("diverging_loss", requires=("loss",))
def diverging_loss(stats, th):
    """The loss became non-finite, or ended well above where it started."""
    loss = stats.loss
    bad_step = getattr(loss, "first_nonfinite_step", None)
    means = _windows(loss)
    explanation = ("The loss grew instead of falling: the steps overshoot the minimum along high-curvature "
                   "directions (learning rate too large for the curvature), and each overshoot makes it worse.")
    remedy = ("Lower the learning rate (start 10x lower), standardize the inputs, use the variance-preserving "
              "init or BatchNorm to allow larger rates; see: impediments reproduce bn_learning_rates")
    if bad_step is not None:
        return [finding("diverging_loss", "error", ["loss"],
                        {"first_nonfinite_step": bad_step, "first_loss": loss.first, "min_loss": loss.min},
                        explanation, remedy)]
    if len(means) < th.loss_min_windows or not all(map(finite, means)) or means[0] <= 0:
        return []
    first, last = _thirds(means)
    ratio = last / first
    start = getattr(loss, "first", None)
    peak = max(means)
    if ratio < th.diverging_factor:
        if finite(start) and start > 0 and peak > th.loss_spike_factor * start:
            return [finding("diverging_loss", "warning", ["loss"],
                            {"peak_over_first": peak / start, "threshold": th.loss_spike_factor,
                             "first_loss": start, "peak_window_loss": peak, "last_third_loss": last,
                             "steps": loss.count}, explanation, remedy)]
        return []
    return [finding("diverging_loss", "error", ["loss"],
                    {"last_over_first": ratio, "threshold": th.diverging_factor, "first_third_loss": first,
                     "last_third_loss": last, "min_loss": loss.min, "steps": loss.count},
                    explanation, remedy)]


@rule("loss_plateau", requires=("loss",))
def loss_plateau(stats, th):
    """The loss of the last third of training is not meaningfully below the first third's."""
    loss = stats.loss
    means = _windows(loss)
    if ((getattr(loss, "count", 0) or 0) < th.plateau_min_steps or len(means) < th.loss_min_windows
            or not all(map(finite, means)) or getattr(loss, "first_nonfinite_step", None) is not None):
        return []
    first, last = _thirds(means)
    improvement = (first - last) / abs(first) if first != 0 else 0.0
    if improvement >= th.plateau_improvement or last / max(first, 1e-12) >= th.diverging_factor:
        return []
    return [finding(
        "loss_plateau", "warning", ["loss"],
        {"relative_improvement": improvement, "threshold": th.plateau_improvement, "first_third_loss": first,
         "last_third_loss": last, "steps": loss.count},
        "The loss has not fallen below where it started: the gradient signal is blocked (dead, saturated or "
        "symmetric units, vanishing gradients) or the learning rate is far too small.",
        "Check the other findings first; then use the variance-preserving init "
        "(impediments.init.initialize(model, \"he_normal\")), standardized inputs and a larger learning rate; "
        "see: impediments reproduce glorot_he")]
