"""Cause before symptoms: mark findings that another finding of the same report explains.

When the learning rate is far too high, units die, activations blow up and the loss rises; a report
that leads with ``dead_units`` sends the reader to re-initialize, which does not help. Each link
below names a mechanism by which its cause produces its consequences; a consequence gets
``caused_by`` (the report lists it right after its cause) and a remedy that starts with "fix the
cause first".

* ``exploding_gradients`` (updates a large fraction of the weights) -> units die (pre-activations
  pushed below zero for every input, Lu et al. 2019), saturate or blow up, the loss diverges or turns
  NaN, nothing is learned. When no such finding exists but the measured update-to-weight ratios reach
  ``cause_update_ratio`` (100x the healthy 1e-3, Karpathy 2016) in the windows that end before the
  symptoms' onset (the first window with a ``dead_warning`` share of silent units, or the first NaN/Inf;
  a symptom present at the first forward has no learning-rate cause), and a symptom is a warning or an
  error, the cause is reported as an ``exploding_gradients`` warning.
* ``model_in_eval_mode`` -> BatchNorm on running statistics, a loss that does not fall as it should.
* a loop that does not update the weights (they never change, no gradient reaches them, the optimizer
  almost never steps, clipping or an annealed learning rate shrinks every step, one batch again and
  again) -> a loss plateau; gradients never cleared (each step the sum of all earlier gradients) ->
  steps that grow: gradients that look exploding, units pushed dead, a diverging loss, NaN.
* dead, saturated or symmetric units, vanishing gradients -> a loss plateau (the gradient is blocked).
"""
from __future__ import annotations

import dataclasses

from impediments.doctor.finding import Finding
from impediments.doctor.rules.base import finding, finite

LINKS = (
    ("model_in_eval_mode", ("bn_inference_mode_in_training", "loss_plateau", "diverging_loss")),
    ("parameters_not_updated", ("loss_plateau",)),
    ("parameters_without_gradient", ("loss_plateau",)),
    ("optimizer_rarely_steps", ("loss_plateau",)),
    ("parameters_reset", ("loss_plateau", "uninformative_labels")),
    ("almost_all_frozen", ("loss_plateau",)),
    ("gradient_clipping_dominates", ("loss_plateau",)),
    ("learning_rate_collapsed", ("loss_plateau",)),
    ("repeated_batch", ("loss_plateau",)),
    ("gradients_not_cleared", ("diverging_loss", "exploding_gradients", "dead_units", "non_finite",
                               "loss_plateau")),
    ("exploding_gradients", ("dead_units", "exploding_activations", "saturated_units", "diverging_loss",
                             "non_finite", "loss_plateau", "vanishing_gradients")),
    ("dead_units", ("loss_plateau",)),
    ("saturated_units", ("loss_plateau",)),
    ("symmetric_units", ("loss_plateau",)),
    ("vanishing_gradients", ("loss_plateau",)),
)
_SERIOUS = ("warning", "error")


def onset_step(stats, th) -> int | None:
    """The first step at which a symptom shows, or None when none shows in a window: the start of the
    first window in which a ``dead_warning`` share of a layer's units was silent on every sampled forward
    (the window's first forward included), or the step of the first NaN/Inf."""
    steps = [w.start_step for w in stats.windows
             if any(finite(f) and f >= th.dead_warning for f in w.dead_fraction.values())][:1]
    if stats.nonfinite is not None:
        steps.append(stats.nonfinite.step)
    return min(steps) if steps else None


def _large_updates(stats, th) -> tuple[dict[str, float], list[int] | None]:
    """Weights whose mean update-to-weight ratio reached ``cause_update_ratio`` in the windows that end
    before the symptoms' onset (:func:`onset_step`): only updates made before a symptom can cause it, so
    a symptom already there at the first forward (units dead at init) has no learning-rate cause. With
    no onset in a window, over the whole run. Also returns those steps ``[first, end)`` (None: the run)."""
    onset = onset_step(stats, th)
    if onset is None:
        mean = {n: p.update_to_weight for n, p in stats.params.items() if p.samples > 0}
        span = None
    else:
        before = [w for w in stats.windows if w.end_step <= onset and w.update_to_weight]
        if not before:
            return {}, None
        ratios: dict[str, list[float]] = {}
        for w in before:
            for n, r in w.update_to_weight.items():
                if finite(r):
                    ratios.setdefault(n, []).append(r)
        mean = {n: sum(v) / len(v) for n, v in ratios.items()}
        span = [before[0].start_step, before[-1].end_step]
    big = {n: float(r) for n, r in mean.items()
           if n.endswith("weight") and finite(r) and r >= th.cause_update_ratio}
    return big, span


def _learning_rate_cause(stats, th, findings) -> Finding | None:
    if any(f.code == "exploding_gradients" and f.severity in _SERIOUS for f in findings):
        return None
    symptoms = dict(LINKS)["exploding_gradients"]
    if not any(f.code in symptoms and f.severity in _SERIOUS for f in findings):
        return None
    big, span = _large_updates(stats, th)
    if not big:
        return None
    top = max(big.values())
    when = (f"over steps {span[0]}-{span[1] - 1}, before the symptoms showed" if span is not None
            else "over the sampled steps")
    return finding(
        "exploding_gradients", "warning", sorted(big),
        {"update_to_weight": big, "max_update_to_weight": top, "threshold": th.cause_update_ratio,
         "measured_over_steps": span if span is not None else "the whole run"},
        "Each step moves these weights by a large fraction of their own size (healthy is about 1e-3), so "
        "pre-activations jump across zero: units die, saturate or blow up, and the loss rises. The learning "
        "rate is the cause of the findings listed after this one.",
        "Lower the learning rate (10x or more, until update-to-weight ratios are near 1e-3), or add warm-up",
        seen={"parameters": len(stats.params), "sampled_steps": stats.sampled_steps, "steps": stats.steps},
        confidence=f"mean update-to-weight ratio up to {top:.2g} {when}, "
                   f"{top / th.cause_update_ratio:.1f}x the {th.cause_update_ratio:g} bound")


def link(findings: list[Finding], stats, th) -> list[Finding]:
    """The findings with ``caused_by`` set where a cause in the report explains them (see module doc)."""
    cause = _learning_rate_cause(stats, th, findings) if stats.params else None
    if cause is not None:
        findings = [cause] + findings
    present = {f.code: f for f in findings if f.severity in _SERIOUS}
    effect_of = {}
    for root, effects in LINKS:
        if root not in present:
            continue
        for code in effects:
            effect_of.setdefault(code, root)     # the first (most fundamental) cause wins
    out = []
    for f in findings:
        root = effect_of.get(f.code)
        if root is None or root == f.code or effect_of.get(root) == f.code:   # a root, or mutual: both roots
            out.append(f)
            continue
        remedy = f"Caused by {root} (reported above): fix that first. Then, if it remains: {f.remedy}"
        out.append(dataclasses.replace(f, caused_by=root, remedy=remedy))
    return out
