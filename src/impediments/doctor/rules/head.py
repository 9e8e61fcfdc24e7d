"""Rules on the output head, the loss and the targets (issue 24): they disagree, or the targets are unscaled.

The most frequent root causes of real bugs are the output layer's activation against the task and the
loss (DeepFD, Cao et al. 2022: 25 of 52 programs), the loss function (16) and unprocessed targets (12).
Each is read where it shows: the loss-function call (:class:`~impediments.monitor.probes.loop.loss_calls.LossCallStats`:
what produced its input, through view ops, and what the targets look like) and the model's output
(:class:`~impediments.monitor.probes.output.OutputStats`, which sees the head even under a hand-written
loss). A head fits its loss when the output can take every value the targets ask for:

* softmax over ``C`` units gives a distribution; over one unit it is ``exp(z) / exp(z) = 1`` for every
  input, and its Jacobian ``diag(p) - p p^T = 0``: no gradient at all;
* sigmoid / tanh / ReLU outputs live in ``[0, 1]``, ``[-1, 1]``, ``[0, inf)``; a target outside that
  range keeps an irreducible loss (Goodfellow et al. 2016, sec. 6.2.2);
* softmax makes the classes compete, so ``k`` labels on one row get at most ``1/k`` each;
* class indices must lie in ``[0, C)`` for ``C`` logits.
"""
from __future__ import annotations

import math

from impediments.doctor.rules.base import finding, finite, rule
from impediments.doctor.rules.loss_trend import after_transient, loss_thirds
from impediments.monitor.probes.loop.loss_calls import HAND_WRITTEN

#: autograd nodes of a softmax over the class dimension (probabilities or log-probabilities)
_SOFTMAX = ("SoftmaxBackward0", "LogSoftmaxBackward0")
_REGRESSION = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
_CLASS_LOSSES = ("cross_entropy", "nll_loss")
_BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
_RANGE_NAMES = {"SigmoidBackward0": "sigmoid", "SoftmaxBackward0": "softmax", "TanhBackward0": "tanh",
                "HardtanhBackward0": "hardtanh", "ReluBackward0": "ReLU", "SoftplusBackward0": "softplus",
                "LogSoftmaxBackward0": "log_softmax", "LogSigmoidBackward0": "logsigmoid",
                "HardsigmoidBackward0": "hardsigmoid"}


def _main_source(counts: dict[str, int]) -> str | None:
    return max(counts, key=counts.get) if counts else None


def _constant_head(stats, th) -> list:
    """A softmax over one unit (always 1), or an output identical for every example on nearly every forward."""
    out = stats.output
    if out is None:
        return []
    source = _main_source(out.produced_by)
    one_unit_softmax = source in _SOFTMAX and out.width == 1
    constant = (out.forwards >= th.loop_min_observations
                and out.constant_forwards >= th.constant_output_fraction * out.forwards)
    if not one_unit_softmax and not constant:
        return []
    dead = sorted(n for n, a in stats.activations.items() if a.samples and a.active_fraction == 0)
    if not one_unit_softmax and dead:
        return []      # a layer that never fires explains the constant output: dead_units names the cause
    ev = {"output_shape": out.shape, "output_width": out.width, "produced_by": out.produced_by,
          "constant_forwards": out.constant_forwards, "forwards": out.forwards, "output_min": out.min,
          "output_max": out.max}
    seen = {"sampled_forwards": out.forwards}
    if one_unit_softmax:
        value = "1" if source == "SoftmaxBackward0" else "0 (its log)"
        return [finding(
            "output_head_mismatch", "error", ["output"], {**ev, "mismatch": "softmax_over_one_unit"},
            f"The model ends in a {_RANGE_NAMES[source]} over a single unit: softmax(z) = exp(z) / exp(z) = 1 for "
            f"every input, so the output is {value} whatever the weights, and the softmax Jacobian diag(p) - p p^T "
            "is 0: no gradient reaches the network. The loss cannot fall (or sits at 0 and says nothing).",
            "For a binary target use one unit with a sigmoid (or its logit into binary_cross_entropy_with_logits); "
            "for C classes, C units into cross_entropy. Never a softmax over one unit",
            seen=seen, confidence=f"the output's producer, through view ops, on {out.forwards} sampled forwards")]
    return [finding(
        "output_head_mismatch", "error", ["output"], {**ev, "mismatch": "constant_output",
                                                      "threshold": th.constant_output_fraction},
        f"The model's output was the same for every example of the batch on {out.constant_forwards} of "
        f"{out.forwards} sampled forwards: it carries nothing of the input, so the loss can only learn the "
        "targets' average.",
        "Check the last layers: a softmax or normalization over a dimension of size 1, a head fed a constant "
        "(a dead layer, a zeroed tensor), or an output taken from the wrong tensor",
        seen=seen, confidence=f"exact equality across the batch on {out.forwards} sampled forwards")]


def _range_mismatch(kind: str, call, th) -> list:
    """Targets outside what the head (a bounded activation, or a binary loss's [0, 1]) can reach."""
    frac = call.targets_outside_range
    if frac is None or frac < th.targets_outside_warning or call.output_range is None:
        return []
    lo, hi = call.output_range
    severity = "error" if frac >= th.targets_outside_error else "warning"
    source = _main_source(call.input_from)
    ev = {"loss": kind, "targets_outside_range": frac, "output_range": [lo, hi], "input_from": call.input_from,
          "target_min": call.target_min, "target_max": call.target_max, "target_mean": call.target_mean,
          "width": call.width, "threshold": th.targets_outside_warning, "mismatch": "targets_outside_output_range"}
    seen = {"target_values": call.target_values, "calls": call.calls}
    if kind in _BINARY:
        return [finding(
            "output_head_mismatch", severity, [kind], {**ev, "mismatch": "binary_loss_on_non_binary_targets"},
            f"{kind} compares a probability with targets that must lie in [0, 1], but {frac:.0%} of the targets "
            f"lie outside it (from {call.target_min:g} to {call.target_max:g}): "
            f"{'class labels trained as one probability' if call.width == 1 else 'values that are not labels'}. "
            "The loss then rewards pushing the output to a bound and never describes the classes.",
            "For C exclusive classes use C logits into cross_entropy with integer labels; for a binary task map "
            "the labels to {0, 1}; for a regression use a linear output into mse_loss",
            seen=seen, confidence=f"{call.target_values} targets over {call.calls} calls")]
    name = _RANGE_NAMES.get(source, source)
    whose = ("the targets of the hand-written loss (the float tensor the output is first combined with)"
             if kind == HAND_WRITTEN else f"the {kind} targets")
    return [finding(
        "output_head_mismatch", severity, [kind], ev,
        f"The output goes through a {name}, which can only reach [{lo:g}, {hi:g}], but {frac:.0%} of "
        f"{whose} lie outside it (from {call.target_min:g} to {call.target_max:g}): those examples keep "
        f"an irreducible loss, the output is pinned at its bound, and the {name}'s derivative there is about "
        "0, so the layers below stop learning too.",
        "Use a linear output for a regression (drop the final activation) and standardize the targets, or "
        "rescale the targets into the activation's range",
        seen=seen, confidence=f"{call.target_values} targets over {call.calls} calls")]


def _multilabel(kind: str, call, th) -> list:
    """Softmax (or cross_entropy's own log_softmax) on rows with several labels; BCE on exclusive one-hot rows."""
    rows = call.target_rows
    if not rows:
        return []
    source = _main_source(call.input_from)
    seen = {"target_rows": rows, "calls": call.calls}
    ev = {"loss": kind, "target_rows": rows, "multihot_rows": call.multihot_rows, "onehot_rows": call.onehot_rows,
          "input_from": call.input_from, "width": call.width}
    softmaxed = kind in _CLASS_LOSSES or source in _SOFTMAX
    if softmaxed and call.multihot_rows >= th.multihot_fraction * rows:
        return [finding(
            "output_head_mismatch", "error", [kind], {**ev, "mismatch": "softmax_on_multilabel_targets",
                                                      "threshold": th.multihot_fraction},
            f"{call.multihot_rows} of {rows} target rows carry two or more labels, but the output goes through a "
            "softmax (cross_entropy applies one): the classes compete, so k labels on a row get at most 1/k each "
            "and the loss on those rows can never fall below ln k.",
            "For multi-label targets use one logit per label into binary_cross_entropy_with_logits (independent "
            "sigmoids), not a softmax",
            seen=seen, confidence=f"{rows} target rows over {call.calls} calls")]
    if kind in _BINARY and call.width is not None and call.width >= 2 and call.onehot_rows == rows:
        return [finding(
            "output_head_mismatch", "info", [kind], {**ev, "mismatch": "independent_sigmoids_on_exclusive_classes"},
            f"Every one of the {rows} target rows is one-hot (exactly one class of {call.width}), yet {kind} treats "
            "each class as an independent yes/no: the probabilities need not sum to 1, and C - 1 negatives per row "
            "dominate the loss. It trains, but the outputs are not a distribution over the classes.",
            "For exclusive classes use C logits into cross_entropy with integer labels (argmax of the one-hot rows)",
            seen=seen, confidence=f"{rows} target rows over {call.calls} calls")]
    return []


def _class_indices(kind: str, call) -> list:
    if kind not in _CLASS_LOSSES or not call.classes_out_of_range:
        return []
    return [finding(
        "output_head_mismatch", "error", [kind],
        {"loss": kind, "mismatch": "class_index_out_of_range", "classes_out_of_range": call.classes_out_of_range,
         "class_targets": call.class_targets, "class_min": call.class_min, "class_max": call.class_max,
         "output_width": call.width},
        f"{call.classes_out_of_range} of {call.class_targets} class targets lie outside [0, {call.width}) for an "
        f"output of {call.width} units (targets from {call.class_min} to {call.class_max}): the output is narrower "
        "than the number of classes, or the labels start at 1.",
        f"Give the last layer as many units as classes ({(call.class_max or 0) + 1} or more), or map the labels "
        "to 0 .. C - 1",
        seen={"class_targets": call.class_targets, "calls": call.calls})]


def _nll_on_logits(kind: str, call) -> list:
    """nll_loss takes log-probabilities (all <= 0); fed anything else it minimises -x_y, unbounded below."""
    source = _main_source(call.input_from)
    if kind != "nll_loss" or call.input_max is None or call.input_max <= 0 or source in _SOFTMAX:
        return []
    return [finding(
        "output_head_mismatch", "error", [kind],
        {"loss": kind, "mismatch": "nll_loss_on_logits", "input_max": call.input_max, "input_from": call.input_from},
        f"nll_loss expects log-probabilities (log_softmax output, all <= 0) but got values up to "
        f"{call.input_max:.3g} from {source}: it then minimises -x_y, which has no floor: the correct class's raw "
        "score is pushed up without bound and the other classes are never pushed down, so the loss goes negative "
        "and says nothing about accuracy.",
        "Feed log_softmax(logits, dim=1) to nll_loss, or the raw logits to cross_entropy",
        seen={"calls": call.calls})]


def _constant_loss(stats, th) -> list:
    """The recorded loss identical at every step over different batches: it depends on neither weights nor inputs."""
    loss, loop = stats.loss, stats.loop
    if loss is None or loss.count < th.plateau_min_steps or loop.compared_inputs <= loop.repeated_inputs:
        return []
    values = [loss.first, loss.last, loss.min, *loss.window_means]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return []
    if max(values) - min(values) > 1e-9 * max(1.0, abs(loss.first)):
        return []
    return [finding(
        "output_head_mismatch", "error", ["loss"],
        {"mismatch": "constant_loss", "loss": loss.first, "steps": loss.count,
         "different_batches": loop.compared_inputs - loop.repeated_inputs},
        f"The loss was {loss.first:.6g} at every one of {loss.count} steps, on different batches: it depends "
        "on neither the weights nor the inputs. A softmax or log_softmax over a dimension of size 1 (inside the "
        "loss: log_softmax of one unit is 0) or a loss on a constant tensor does this.",
        "Check the loss's last operations: the class dimension of a softmax must hold the classes (C >= 2 units); "
        "for one unit use a sigmoid / binary_cross_entropy_with_logits",
        seen={"losses": loss.count, "steps": stats.steps},
        confidence=f"first, last, minimum and {len(loss.window_means)} window means identical")]


def _relu_logits(kind: str, call, stats, th) -> list:
    logit_losses = _CLASS_LOSSES + ("binary_cross_entropy_with_logits",)
    if kind not in logit_losses or _main_source(call.input_from) != "ReluBackward0":
        return []
    out = stats.output
    zeros = out.zero_fraction if out is not None and _main_source(out.produced_by) == "ReluBackward0" else None
    severity = "warning" if zeros is None or zeros >= th.relu_logit_zero_fraction else "info"
    return [finding(
        "output_head_mismatch", severity, [kind],
        {"loss": kind, "mismatch": "relu_on_logits", "input_from": call.input_from, "zero_logit_fraction": zeros,
         "threshold": th.relu_logit_zero_fraction},
        f"The logits going into {kind} pass through a ReLU: they cannot go below 0, and a logit at 0 gets no "
        "gradient, so a class whose score was pushed below zero can never be raised again and the others can "
        "only be lowered by raising it." + (f" Measured: {zeros:.0%} of the logits were exactly 0." if zeros is not
                                            None else ""),
        "Remove the ReLU after the last layer: the logits go into the loss as they are",
        seen={"calls": call.calls})]


def _regression_on_classes(kind: str, call) -> list:
    """A classification trained with a regression loss: info, with the reason."""
    if kind not in _REGRESSION or not call.target_values:
        return []
    onehot = call.target_rows and call.onehot_rows == call.target_rows
    source = _main_source(call.input_from)
    probs_on_labels = (source in ("SoftmaxBackward0", "SigmoidBackward0") and call.target_min == 0
                       and call.target_max == 1 and call.target_var is not None
                       and call.target_mean is not None
                       and abs(call.target_var - call.target_mean * (1 - call.target_mean)) < 1e-6)
    if not onehot and not probs_on_labels:
        return []
    return [finding(
        "output_head_mismatch", "info", [kind],
        {"loss": kind, "mismatch": "classification_with_regression_loss", "input_from": call.input_from,
         "onehot_rows": call.onehot_rows, "target_rows": call.target_rows, "target_mean": call.target_mean},
        f"The targets are class labels (0/1{' one-hot rows' if onehot else ''}) but the loss is {kind}: through a "
        "softmax or sigmoid its gradient is (p - y) p (1 - p), which vanishes when the output is confidently "
        "wrong (p near 0 for y = 1), where cross-entropy's gradient p - y is largest (Golik, Doetsch & Ney 2013). "
        "It can train, more slowly, and its outputs are not calibrated probabilities.",
        "Use cross_entropy on logits (integer labels) or binary_cross_entropy_with_logits",
        seen={"target_values": call.target_values, "calls": call.calls})]


@rule("output_head_mismatch", requires=("loop",))
def output_head_mismatch(stats, th):
    """The output head, the loss and the targets disagree (see the module docstring)."""
    out = _constant_head(stats, th) or _constant_loss(stats, th)
    for kind, call in stats.loop.losses.items():
        if not call.calls:
            continue
        out += _class_indices(kind, call)
        out += _nll_on_logits(kind, call)
        out += _range_mismatch(kind, call, th)
        out += _multilabel(kind, call, th)
        out += _relu_logits(kind, call, stats, th)
        out += _regression_on_classes(kind, call)
    return out


@rule("unscaled_targets", requires=("loop",))
def unscaled_targets(stats, th):
    """Regression targets whose root mean square is far above unit scale: a warning when, after the transient,
    the loss still holds at least ``target_scale_cost`` of the targets' mean square (the cost, measured);
    info otherwise (at checkup, or once the model has reached the targets' scale anyway)."""
    out = []
    for kind, call in stats.loop.losses.items():
        if kind not in _REGRESSION or not call.target_values or call.target_mean is None or call.target_var is None:
            continue
        rms = math.sqrt(call.target_mean ** 2 + call.target_var)
        if rms < th.target_scale:
            continue
        reached = (call.first_loss_step == 0 and call.first_loss is not None and call.uninformed_loss
                   and call.first_loss < th.target_scale_reached * call.uninformed_loss)
        if reached:      # the output starts at the targets' scale (a de-standardizing layer): their units cost nothing
            continue
        lrs = [g["max"] for g in stats.loop.learning_rates if isinstance(g.get("max"), (int, float)) and g["max"] > 0]
        ev = {"loss": kind, "target_rms": rms, "target_mean": call.target_mean,
              "target_std": math.sqrt(call.target_var),
              "target_min": call.target_min, "target_max": call.target_max, "threshold": th.target_scale}
        # the cost, measured: after the transient, how much of the targets' mean square the loss still holds
        later = [m for _, m in after_transient(stats, th)] if stats.loss is not None else []
        cost = None
        if len(later) >= th.loss_min_windows and all(map(finite, later)):
            cost = loss_thirds(later)[1] / (rms * rms)
            ev["last_third_loss_over_mean_square"] = cost
        severity = "warning" if cost is not None and cost >= th.target_scale_cost else "info"
        extra = (f" After the transient the loss still holds {cost:.0%} of the targets' mean square."
                 if cost is not None else " Its cost shows in the loss after the first steps (not measured yet: info).")
        if lrs:
            ev["adam_steps_to_mean"] = abs(call.target_mean) / max(lrs)
            extra += (f" At the largest learning rate {max(lrs):g}, an Adam-like step of about lr per weight needs "
                     f"{abs(call.target_mean) / max(lrs):.0f} steps to move an output bias to the mean.")
        out.append(finding(
            "unscaled_targets", severity, [kind], ev,
            f"The {kind} targets have a root mean square of {rms:.3g} (mean {call.target_mean:.3g}, std "
            f"{math.sqrt(call.target_var):.3g}), while an output layer at standard init produces values of order 1: "
            f"its weights must grow {rms:.0f}x before the loss can approach its floor, and the gradient 2 (y_hat - y) "
            f"is about {rms:.0f}x that of standardized targets." + extra,
            None, seen={"target_values": call.target_values, "calls": call.calls},
            confidence=f"mean and variance of {call.target_values} targets over {call.calls} calls"))
    return out


@rule("dropout_on_output", requires=("output",))
def dropout_on_output(stats, th):
    """The model's last module is a dropout, and the output is zeroed at about its rate."""
    out = stats.output
    p = out.last_dropout_p
    if p is None or not p or out.zero_fraction is None or out.zero_fraction < 0.5 * p:
        return []
    return [finding(
        "dropout_on_output", "warning", ["output"],
        {"last_module": out.last_module, "dropout_p": p, "zero_output_fraction": out.zero_fraction,
         "output_width": out.width},
        f"The model's last module is a {out.last_module}(p={p:g}) and {out.zero_fraction:.0%} of its output values "
        "were exactly 0 in training: the loss sees logits zeroed at random every step, the zeroed classes get no "
        "gradient, and evaluation (dropout off) sees a different head.",
        None, seen={"sampled_forwards": out.forwards},
        confidence=f"zero fraction of the output over {out.forwards} sampled training forwards")]
