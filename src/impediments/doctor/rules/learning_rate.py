"""A learning rate too low: the input layer takes steps a tiny fraction of itself while the loss has not moved.

An optimizer step changes a weight matrix by :math:`\\|\\Delta W\\| / \\|W\\|` of itself (the update-to-weight
ratio; about :math:`10^{-3}` in healthy training, Karpathy 2016, CS231n notes). Over :math:`T` steps the matrix can travel at
most :math:`T \\max_t \\|\\Delta W_t\\| / \\|W\\|` of itself: at :math:`10^{-4}` per step, 180 steps move it under
2%, and the function the network computes stays (almost) the one it had at init. The rule reads the **input
layer** (the first Linear/Conv weight in forward order): it is furthest from the loss, so under SGD its
gradient is the most attenuated, and every feature the network learns passes through it. Interior layers
behind a normalization (a depthwise conv, a squeeze-excitation reduction) move 1e-4 per step in healthy
SGD runs and are not read (measured on the calibration corpus: the smallest healthy input-layer ratio is
7e-3, DenseNet-BC under SGD; the smallest interior one 1.9e-4, SE-ResNet-18's reductions). The ratio alone
does not decide: fixed real-bug programs and BN ResNets step 2e-4 to 1e-3 and learn, so the loss decides too.

The ratio of a window is the mean over its full steps; a matrix's ratio is its largest window's, so a
warm-up (small steps at the start) or a decay at the end (small steps at the end) does not make the rate
look low: only a run whose every window moves the layer little does.

It is a warning only when the cost shows: the loss shed less than ``lr_low_loss_drop`` of its reference
(the label prior's entropy :math:`H(\\pi)` for a classification loss, the first loss otherwise) and less than
``trains_loss_drop`` of its first value, and nothing else explains a loss that has not moved: no dead,
saturated or constant output, no gradient vanishing across depth, no collapsed schedule, no dominating
clipping, no frozen weights, and the loss did not rise (a loss that rose is not held back by small steps;
weights made huge by a bad init also move a small fraction of themselves). A run whose learning rate is
still rising at its end (a warm-up longer than the run) is not checked.

References:
    Karpathy (2016), CS231n: Convolutional Neural Networks for Visual Recognition, course notes, Neural Networks
    Part 3, "Ratio of weights:updates" (update/weight ratio ~1e-3).
    Bengio (2012), Practical recommendations for gradient-based training of deep architectures, sec. 3.1.
"""
from __future__ import annotations

import math
import statistics

from impediments.doctor.fractions import dead_fraction, saturated_fraction
from impediments.doctor.rules.activations import activation_depth_trend
from impediments.doctor.rules.base import finding, finite, not_checked, rule
from impediments.doctor.rules.gradients import first_weights_gradient_vanished
from impediments.doctor.rules.init_scale import init_scale_too_large
from impediments.doctor.rules.loop import clipping_dominates_share, lr_collapsed_at
from impediments.doctor.rules.loss_trend import after_transient, loss_thirds


def window_update_ratios(stats) -> dict[str, float]:
    """Per Linear/Conv weight with a recorded update: its largest window's update-to-weight ratio (its run mean
    where no window holds one)."""
    out = {}
    for name, p in stats.params.items():
        if p.module not in stats.layers or not name.endswith("weight") or not finite(p.update_to_weight) \
                or p.update_to_weight <= 0:
            continue
        per_window = [w.update_to_weight[name] for w in stats.windows
                      if name in w.update_to_weight and finite(w.update_to_weight[name])]
        out[name] = max(per_window + [p.update_to_weight])
    return out


def input_layer_update(stats) -> tuple[str, float] | None:
    """``(name, ratio)`` of the first Linear/Conv weight in forward order (:func:`window_update_ratios`); None
    without update ratios or a forward order (no optimizer watched, nothing sampled)."""
    loop = stats.loop
    if loop is None:
        return None
    ratios = window_update_ratios(stats)
    ordered = sorted((loop.params[n].order, n) for n in ratios if n in loop.params and loop.params[n].order is not None)
    if not ordered:
        return None
    name = ordered[0][1]
    return name, ratios[name]


def _prior_entropy(loop) -> float | None:
    if not loop.losses or set(loop.losses) - {"cross_entropy", "nll_loss"} or not loop.class_counts:
        return None
    total = sum(loop.class_counts)
    h = -sum(c / total * math.log(c / total) for c in loop.class_counts if c) if total else 0.0
    return h if h > 0 else None


def _other_cause(stats, th) -> str | None:
    """What else holds a loss still, read from the statistics the other rules judge; None when nothing does."""
    loop, out = stats.loop, stats.output
    if any(lr_collapsed_at(g, loop.optimizer_steps, th) is not None for g in loop.learning_rates):
        return "the learning rate collapsed early (learning_rate_collapsed)"
    if out is not None and out.constant_forwards:
        return "the output is constant"
    if loop.trainable_only_norm_or_bias:
        return "the weight matrices are frozen"
    if clipping_dominates_share(loop, th) is not None:
        return "clipping cuts nearly every step (gradient_clipping_dominates)"
    for a in stats.activations.values():
        if a.model_output:
            continue
        dead, saturated = dead_fraction(a, th), saturated_fraction(a)     # the fractions those rules judge
        if dead is not None and dead >= th.dead_error:       # most of a layer dead holds the loss; a quarter does not
            return f"units of {a.name} are dead"
        if saturated is not None and saturated >= th.saturated_warning:
            return f"{a.name} is saturated"
    if stats.layers and init_scale_too_large(stats, th):
        return "the init scale is too large: a normal step is a small fraction of weights that large"
    if any(call.probability_rows for call in loop.losses.values()):
        return "the loss is fed probabilities, whose gradient is attenuated (softmax_before_loss)"
    trend = activation_depth_trend(stats, th)
    if trend is not None and trend[0] == "vanishing_activations":
        return "the activations vanish with depth (vanishing_activations): the signals, not the rate, are small"
    if first_weights_gradient_vanished(stats, th):
        return "the gradient vanishes before the first layers"
    return None


def _still_warming_up(stats, name: str, th) -> bool:
    """The learning rate ended at its largest value, above ``lr_warmup_rise`` times its first (a schedule that
    rose), and the input layer's last measured window stepped at least ``lr_warmup_last_window`` times the median
    of its measured windows: still on the ramp. A warm-up that ended before the run's last third leaves the later
    windows at the median (a linear ramp still under way puts the last window near twice it)."""
    rose = any(g.get("last") is not None and g.get("first") is not None and g.get("max")
               and g["last"] >= g["max"] and g["last"] > th.lr_warmup_rise * g["first"]
               for g in stats.loop.learning_rates)
    ratios = [w.update_to_weight[name] for w in stats.windows
              if name in w.update_to_weight and finite(w.update_to_weight[name])]
    return rose and (len(ratios) < 2 or ratios[-1] >= th.lr_warmup_last_window * statistics.median(ratios))


def low_rate_evidence(stats, th) -> dict | None:
    """The measurements that make the learning rate the cause of a loss that has not moved, or None.

    Shared with ``uninformative_labels`` (a loss held at the label entropy by steps too small to leave it is
    not evidence that the labels carry nothing)."""
    loss, loop = stats.loss, stats.loop
    if loss is None or loop is None or loss.first_nonfinite_step is not None or not finite(loss.first) \
            or loss.first <= 0:
        return None
    got = input_layer_update(stats)
    if got is None or got[1] >= th.lr_low_update:
        return None
    # the step is small across the network, not only in an input layer whose own gradient is small (a layer whose
    # output the model scales down, as MRA's attention output, while every other weight moves 5e-2 per step)
    median = statistics.median(window_update_ratios(stats).values())
    if median >= th.lr_low_median_update:
        return None
    later = [m for _, m in after_transient(stats, th)]
    if len(later) < th.loss_min_windows or not all(map(finite, later)):
        return None
    _, last = loss_thirds(later)
    prior = _prior_entropy(loop)
    reference = prior if prior else loss.first
    shed, fell = 1.0 - last / reference, 1.0 - last / loss.first
    if shed >= th.lr_low_loss_drop or fell >= th.trains_loss_drop or last / loss.first >= th.diverging_factor:
        return None
    if _other_cause(stats, th) is not None:
        return None
    name, ratio = got
    return {"input_layer": name, "largest_window_update_to_weight": ratio, "threshold": th.lr_low_update,
            "median_layer_update_to_weight": median, "median_threshold": th.lr_low_median_update,
            "steps": stats.steps, "travel_bound": ratio * stats.steps, "last_third_loss": last,
            "reference_loss": reference, "reference": "label entropy" if prior else "first loss",
            "loss_shed": shed, "loss_drop_threshold": th.lr_low_loss_drop, "first_loss": loss.first,
            "lr": [g.get("max") for g in loop.learning_rates], "from_step": th.transient_steps}


@rule("learning_rate_too_low", requires=("loss", "loop", "params"))
def learning_rate_too_low(stats, th):
    """The input layer moved under ``lr_low_update`` of itself per step in every window while the loss shed
    under ``lr_low_loss_drop`` of its reference, and nothing else holds the loss (module doc)."""
    ev = low_rate_evidence(stats, th)
    if ev is None:
        return []
    if _still_warming_up(stats, ev["input_layer"], th):
        return [not_checked("learning_rate_too_low", ["optimizer"],
                            "the learning rate was still rising at the end of the run (a warm-up longer than "
                            "the run): its steps are not yet the ones it will take")]
    lr = ", ".join(f"{v:.3g}" for v in ev["lr"] if v is not None) or "unknown"
    return [finding(
        "learning_rate_too_low", "warning", ["optimizer", ev["input_layer"]], ev,
        f"Each step moved the input layer {ev['input_layer']} by at most {ev['largest_window_update_to_weight']:.2g} "
        f"of itself (healthy training takes about 1e-3 and more), so in {ev['steps']} steps it could travel at most "
        f"{ev['travel_bound']:.1%} of itself, and the loss has not moved: its last third is {ev['last_third_loss']:.3g} "
        f"against {ev['reference_loss']:.3g} for its {ev['reference']} ({ev['loss_shed']:.1%} lower). Nothing else holds it: "
        "no dead or saturated units, no vanishing gradient, no collapsed schedule. At learning rate "
        f"{lr} the weights barely leave their init.",
        None, seen={"steps": stats.steps, "losses": stats.loss.count},
        confidence="the largest per-window update ratio of the input layer, and the loss's last third against "
                   f"its {ev['reference']}")]
