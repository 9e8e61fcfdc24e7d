"""Rules on the recorded loss: divergence and plateau (need ``mon.record_loss``), and the loss at
initialization against what an uninformed prediction scores (from the loss-function call on step 0).

A trend is read only after the first ``transient_steps`` (a dozen): momentum and Adam's moment
estimates average over about :math:`1/(1-\\beta) = 10` steps, and BatchNorm running statistics and
warm-up settle in that time, so a loss that rises over the first steps and then falls is not
diverging. A NaN/Inf loss is evidence at any step.
"""
from __future__ import annotations

import math

from impediments.doctor.rules.base import finding, finite, not_checked, rule
from impediments.doctor.rules.gradients import first_weights_gradient_vanished
from impediments.doctor.rules.loss_trend import after_transient, loss_thirds


def _too_short(stats, th, code: str, later) -> list:
    return [not_checked(code, ["loss"], f"not enough steps yet: {stats.loss.count} losses recorded, "
                                        f"{len(later)} window(s) after the first {th.transient_steps} steps "
                                        f"(the transient); at least {th.loss_min_windows} needed")]


@rule("diverging_loss", requires=("loss",))
def diverging_loss(stats, th):
    """The loss became non-finite or, after the transient, ended well above where it started (error), or
    was still well above it after the transient, or spiked 10x, before coming back (warning)."""
    loss = stats.loss
    seen = {"losses": loss.count, "steps": stats.steps, "windows": len(loss.window_means)}
    if loss.first_nonfinite_step is not None:
        return [finding("diverging_loss", "error", ["loss"],
                        {"first_nonfinite_step": loss.first_nonfinite_step, "first_loss": loss.first,
                         "min_loss": loss.min}, seen=seen,
                        confidence=f"the loss was NaN/Inf at step {loss.first_nonfinite_step}: no trend needed")]
    later = after_transient(stats, th)
    means = [m for _, m in later]
    if len(means) < th.loss_min_windows:
        return _too_short(stats, th, "diverging_loss", later)
    start = loss.first
    if not all(map(finite, means)) or not finite(start) or start <= 0:
        return []
    first, last = loss_thirds(means)
    seen["windows_after_transient"] = len(means)
    confidence = (f"windows from step {later[0][0]} on (after the {th.transient_steps}-step transient), "
                  f"{loss.count} losses in all")
    if last / start >= th.diverging_factor or (first > 0 and last / first >= th.diverging_factor):
        return [finding("diverging_loss", "error", ["loss"],
                        {"last_over_first": last / start, "last_third_over_first_third": last / first if first else None,
                         "threshold": th.diverging_factor, "first_loss": start, "first_third_loss": first,
                         "last_third_loss": last, "min_loss": loss.min, "steps": loss.count,
                         "from_step": later[0][0]}, seen=seen, confidence=confidence)]
    peak = max(means)
    if peak > th.loss_spike_factor * start:
        return [finding("diverging_loss", "warning", ["loss"],
                        {"peak_over_first": peak / start, "threshold": th.loss_spike_factor, "first_loss": start,
                         "peak_window_loss": peak, "last_third_loss": last, "steps": loss.count,
                         "from_step": later[0][0]}, seen=seen, confidence=confidence)]
    if first / start >= th.diverging_factor:      # still far above the start after the transient, then recovering
        return [finding("diverging_loss", "warning", ["loss"],
                        {"first_third_over_first": first / start, "threshold": th.diverging_factor,
                         "first_loss": start, "first_third_loss": first, "last_third_loss": last,
                         "steps": loss.count, "from_step": later[0][0]}, seen=seen,
                        confidence=confidence + "; the rise outlasted the transient, the end came back down")]
    return []


@rule("loss_plateau", requires=("loss",))
def loss_plateau(stats, th):
    """The loss of the last third of training is not meaningfully below the first third's."""
    loss = stats.loss
    means = [float(v) for v in loss.window_means if v is not None]
    if loss.first_nonfinite_step is not None or not all(map(finite, means)):
        return []
    if loss.count < th.plateau_min_steps or len(means) < th.loss_min_windows:
        return [not_checked("loss_plateau", ["loss"], f"not enough steps yet: {loss.count} losses recorded, "
                                                      f"a plateau is called after {th.plateau_min_steps}")]
    first, last = loss_thirds(means)
    improvement = (first - last) / abs(first) if first != 0 else 0.0
    if improvement >= th.plateau_improvement or last / max(first, 1e-12) >= th.diverging_factor:
        return []
    start = loss.first
    fell = 1.0 - first / start if finite(start) and start > 0 else None
    evidence = {"relative_improvement": improvement, "threshold": th.plateau_improvement, "first_third_loss": first,
                "last_third_loss": last, "steps": loss.count, "first_loss": start, "fell_before_plateau": fell,
                "never_moved": fell is not None and abs(1.0 - last / start) < th.plateau_improvement}
    seen = {"losses": loss.count, "steps": stats.steps, "windows": len(means)}
    confidence = f"mean loss of the first and last thirds of {len(means)} windows over {loss.count} steps"
    if fell is not None and fell >= th.trains_loss_drop:     # it learned, then settled: not a stall
        return [finding(
            "loss_plateau", "info", ["loss"], evidence,
            f"The loss fell {fell:.0%} from its first value ({start:.3g}) before the windows compared here, then "
            "settled: the model learned and reached a floor (convergence, or the capacity or data limit), which is "
            "not the stall a plateau from the start is.",
            "Nothing impedes training here; to go lower, a larger model, more data or a lower final learning rate",
            seen=seen, confidence=confidence)]
    return [finding("loss_plateau", "warning", ["loss"], evidence, seen=seen, confidence=confidence)]


#: losses whose uninformed value is ln C (excess in nats), and those compared as a ratio
_LOG_LOSSES = ("cross_entropy", "nll_loss")
_REGRESSION_LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")


@rule("initial_loss_high", requires=("loop",))
def initial_loss_high(stats, th):
    """The loss at step 0 far above what a uniform (uninformed) prediction scores on the same targets.

    For cross-entropy over C classes the uninformed loss is ln C; logits of spread s score about
    ln C + s^2 / 2 (the second-order expansion of E[logsumexp z]), so an excess of 2 nats means logits
    spread about 2 wide: large, confidently wrong outputs from the init scale or a missing final
    scaling (Karpathy 2019, "verify loss @ init"). For regression and binary losses the ratio to the
    uninformed loss (the targets' mean square; ln 2) is used instead. Read only from the call seen on
    the run's first step (``checkup``, or step 0 of ``watch()``). A warning for classification losses,
    whose softmax/sigmoid saturates on large outputs (the cost); info for regression losses, which have
    no such mechanism (the first steps shrink the output at full gradient). Info too where ``watch()``
    measured that the start costs the run nothing now (:func:`_high_start_cost`).
    """
    out = []
    for kind, call in stats.loop.losses.items():
        first, base = call.first_loss, call.uninformed_loss
        if call.first_loss_step != 0 or not finite(first) or not finite(base) or base <= 0:
            continue
        log_loss = kind in _LOG_LOSSES
        excess, ratio = first - base, first / base
        if (excess < th.initial_loss_excess) if log_loss else (ratio < th.initial_loss_ratio):
            continue
        uniform = (f"ln {call.width} = {base:.3g}" if log_loss and call.width else f"{base:.3g}")
        spread = math.sqrt(2 * excess) if log_loss else None
        # a classification loss saturates its softmax/sigmoid on large outputs (the cost); a regression loss has no
        # such mechanism: its large start is information, the first steps shrink the output at full gradient
        severity = "info" if kind in _REGRESSION_LOSSES else "warning"
        cost = _high_start_cost(stats, th, base) if log_loss else {}
        if cost.get("not_a_warning"):
            severity = "info"
        out.append(finding(
            "initial_loss_high", severity, [kind],
            {"loss": kind, "initial_loss": first, "uninformed_loss": base, "excess": excess, "ratio": ratio,
             "classes": call.width if log_loss else None, "logit_spread_estimate": spread,
             "threshold": th.initial_loss_excess if log_loss else th.initial_loss_ratio, "step": 0, **cost},
            f"At step 0 {kind} was {first:.3g}, where a uniform prediction scores {uniform}"
            + (f": {excess:.3g} nats above it, as logits spread about {spread:.2g} wide would score. "
               if log_loss else f": {ratio:.3g}x it. ")
            + "The outputs are large and confidently wrong before any training: the first steps are spent "
              "shrinking them, and a saturated softmax or sigmoid passes almost no gradient for the examples "
              "it gets wrong.",
            None, seen={"calls": call.calls, "step": 0},
            confidence=f"the first {kind} call, on step 0, against the same call on a uniform prediction"))
    model_loss = _model_computed_loss(stats, th) if not out else []
    return out + model_loss


def _high_start_cost(stats, th, base: float) -> dict:
    """What a cross-entropy start far above the uninformed loss ``base`` = ln C costs, as evidence; with
    ``not_a_warning`` where that cost was measured and is nil now.

    * Under ``watch()`` (a loss trend: at least ``loss_min_windows`` windows): the cost is the excess itself, the
      loss above what a uniform prediction scores. A run whose window means came down to ``base`` and whose last
      third stayed at or below it shed the whole excess and went on to learn: the start cost this run some early
      steps and costs it nothing now, info, with the step it came down by. A loss still above ``base`` over the
      last third is still paying for its start: a warning.
    * At ``checkup`` (no loss trend) the cost cannot be measured: the warning stands, as the start predicts one
      (logits of spread s need weights of that scale, which an adaptive optimizer moves by about lr per step,
      Kingma & Ba 2015).
    """
    windows = [(w.start_step, float(w.loss_mean)) for w in stats.windows if w.loss_mean is not None]
    if stats.loss is not None and len(windows) >= th.loss_min_windows:
        means = [m for _, m in windows]
        _, last = loss_thirds(means)
        down = next((step for step, m in windows if finite(m) and m <= base), None)
        settled = down is not None and finite(last) and last <= base
        return {"down_to_uninformed_by_step": down, "last_third_loss": last, **({"not_a_warning": (
            f"the loss came down to the uniform prediction's {base:.3g} in the window from step {down} and its last "
            f"third averaged {last:.3g}: the start cost some early steps and costs this run nothing now")}
            if settled else {})}
    return {}


def _model_computed_loss(stats, th) -> list:
    """A loss the model computed itself (Hugging Face models given labels: no loss call to observe) against ln C
    of its logits' last dimension: far above it at step 0 whatever the loss (a multi-label BCE starts near ln 2)."""
    o = stats.output
    if o is None or o.model_loss_step != 0 or not finite(o.model_loss_first) or not o.model_loss_classes:
        return []
    if o.model_loss_classes < 2:
        return []
    base = math.log(o.model_loss_classes)
    excess = o.model_loss_first - base
    if excess < th.initial_loss_excess:
        return []
    spread = math.sqrt(2 * excess)
    cost = _high_start_cost(stats, th, base)
    return [finding(
        "initial_loss_high", "info" if cost.get("not_a_warning") else "warning", ["model loss"],
        {"loss": "the model's own loss", "initial_loss": o.model_loss_first, "uninformed_loss": base, "excess": excess,
         "classes": o.model_loss_classes, "logit_spread_estimate": spread, "threshold": th.initial_loss_excess,
         "step": 0, **cost},
        f"At step 0 the model's own loss was {o.model_loss_first:.3g}, where a uniform prediction over its "
        f"{o.model_loss_classes} logits scores ln {o.model_loss_classes} = {base:.3g}: {excess:.3g} nats above it, as "
        f"logits spread about {spread:.2g} wide would score. The outputs are large and confidently wrong before any "
        "training: the init scale (initializer_range, or normal_ at its default std 1.0) or a missing scaling.",
        None, seen={"step": 0}, confidence="the loss the model returned on step 0, against ln C of its logits")]


@rule("uninformative_labels", requires=("loss", "loop", "output", "params"))
def uninformative_labels(stats, th):
    """The loss settles at the entropy of the label prior while the model moves and its output varies.

    Settled means the last third of the windows after the transient within the band around H and less than
    ``plateau_improvement`` below the middle third: a network that is learning slowly also passes near
    ln C, but its loss is still falling.

    A classifier that learns only the class frequencies pi scores the prior's entropy
    H(pi) = -sum_c pi_c ln pi_c, whatever the input. Reaching it is the first thing any classifier does;
    staying there means the inputs told the model nothing about the labels. When the output varies
    with the input (not a dead network: ``output.constant_forwards == 0``), every weight matrix moves at a
    normal rate (its update-to-weight ratio at least ``label_entropy_min_update``: not a learning rate too
    low), the first and last weights' gradient energies lie within ``gradient_var_ratio`` (not gradients
    vanishing before the first layers, which Adam's normalized steps hide) and no learning rate collapsed,
    the labels carry no information about the inputs: shuffled apart from them, or read from the wrong
    column.
    """
    loop, out = stats.loop, stats.output
    kinds = [k for k in ("cross_entropy", "nll_loss") if k in loop.losses and loop.losses[k].calls]
    total = sum(loop.class_counts)
    if not kinds or loop.target_batches < th.loop_min_observations or not total or out.constant_forwards:
        return []
    later = [m for _, m in after_transient(stats, th)]
    if len(later) < th.loss_min_windows or not all(map(finite, later)):
        return []
    prior = [c / total for c in loop.class_counts if c]
    entropy = -sum(p * math.log(p) for p in prior)
    if entropy <= 0:
        return []
    first, last = loss_thirds(later)
    k = max(1, len(later) // 3)
    mean = sum(later) / len(later)
    spread = math.sqrt(sum((m - mean) ** 2 for m in later) / max(1, len(later) - 1))
    band = th.label_entropy_tolerance * entropy + 2 * spread / math.sqrt(k)   # + two standard errors of a third
    middle = sum(later[k:len(later) - k]) / max(1, len(later) - 2 * k)
    if abs(last - entropy) > band:
        return []
    if middle > 0 and (middle - last) / middle >= th.plateau_improvement:   # still falling: a slow start, not settled
        return []
    lowest = min(later)
    # every weight moves (not a vanishing gradient leaving the first layers still, where only the head learns the
    # prior), and no learning rate collapsed 100x (a schedule stepped per batch stalls the loss at H too)
    ratios = sorted(p.update_to_weight for n, p in stats.params.items()
                    if n.endswith("weight") and finite(p.update_to_weight))
    if not ratios:
        return []
    update = ratios[0]
    # imported here only to keep the catalogue's registration order (this module's rules before the loop's and
    # learning_rate_too_low's); the dependency is one-way: neither imports this module
    from impediments.doctor.rules.learning_rate import input_layer_update, low_rate_evidence
    from impediments.doctor.rules.loop import lr_collapsed_at
    collapsed = any(lr_collapsed_at(g, loop.optimizer_steps, th) is not None for g in loop.learning_rates)
    if update < th.label_entropy_min_update or collapsed:
        return []
    # the input layer stepping under lr_low_update of itself in every window while the loss has not moved is a
    # learning rate too low (learning_rate_too_low): a loss that slow to leave H says nothing about the labels
    if low_rate_evidence(stats, th) is not None:
        return []
    # a loss at H says nothing about the labels until the weights could have learned: the input layer's largest
    # per-step ratio times the steps bounds how far it travelled (a tenth of itself), else a slow start (Adam at
    # 1e-4 on digits travels 7% in 60 steps, its loss still falling ~1% a third)
    entry = input_layer_update(stats)
    if entry is not None and entry[1] * stats.steps < th.label_entropy_min_travel:
        return []
    # the first and the last weight in forward order: gradient energy 1000x apart is vanishing gradients, which stall
    # the loss at H too (Adam hides them in the update sizes, not in the gradients); norm layers' small gains between
    # them are not compared (and without two such weights there is nothing to rule it out by)
    if first_weights_gradient_vanished(stats, th) is not False:
        return []
    return [finding(
        "uninformative_labels", "warning", ["data"],
        {"label_entropy": entropy, "first_third_loss": first, "last_third_loss": last, "band": band,
         "lowest_window_loss": lowest, "classes_seen": len(prior),
         "ln_classes": math.log(len(prior)), "smallest_weight_update_to_weight": update,
         "tolerance": th.label_entropy_tolerance, "from_step": th.transient_steps},
        f"After the first {th.transient_steps} steps the loss stayed at {entropy:.3g} (first third {first:.3g}, last "
        f"third {last:.3g}, within {band:.2g}), the entropy of the label frequencies over {len(prior)} classes: "
        "what a model that "
        "predicts only the class frequencies scores, whatever the input. The output does vary with the input and "
        f"every weight moves (at least {update:.2g} of itself per step), yet nothing of the input helps: "
        "the labels carry no information about the inputs.",
        None, seen={"losses": stats.loss.count, "target_batches": loop.target_batches, "targets": total},
        confidence=f"{len(later)} windows after the transient against the entropy of {total} labels")]
