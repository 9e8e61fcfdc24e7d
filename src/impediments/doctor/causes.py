"""Cause before symptoms: mark findings that another finding of the same report explains.

When the learning rate is far too high, units die, activations blow up and the loss rises; a report
that leads with ``dead_units`` sends the reader to re-initialize, which does not help. Each link
below names a mechanism by which its cause produces its consequences; a consequence gets
``caused_by`` (the report lists it right after its cause) and a remedy that starts with "fix the
cause first".

* ``exploding_gradients`` (updates a large fraction of the weights) -> units die (pre-activations
  pushed below zero for every input, Lu et al. 2019), saturate or blow up, the loss diverges or turns
  NaN, nothing is learned. When no such finding exists but the measured update-to-weight ratios reach
  ``cause_update_ratio`` (100x the healthy 1e-3, Karpathy 2016) and a symptom is a warning or an error,
  the cause is reported as an ``exploding_gradients`` warning.
* ``model_in_eval_mode`` -> BatchNorm on running statistics, a loss that does not fall as it should.
* dead, saturated or symmetric units, vanishing gradients -> a loss plateau (the gradient is blocked).
"""
from __future__ import annotations

import dataclasses

from impediments.doctor.finding import Finding
from impediments.doctor.rules.base import finding, finite

LINKS = (
    ("model_in_eval_mode", ("bn_inference_mode_in_training", "loss_plateau", "diverging_loss")),
    ("exploding_gradients", ("dead_units", "exploding_activations", "saturated_units", "diverging_loss",
                             "non_finite", "loss_plateau", "vanishing_gradients")),
    ("dead_units", ("loss_plateau",)),
    ("saturated_units", ("loss_plateau",)),
    ("symmetric_units", ("loss_plateau",)),
    ("vanishing_gradients", ("loss_plateau",)),
)
_SERIOUS = ("warning", "error")


def _large_updates(stats, th) -> dict[str, float]:
    """Weights whose mean update-to-weight ratio over the sampled steps reached ``cause_update_ratio``."""
    return {n: float(p.update_to_weight) for n, p in stats.params.items()
            if n.endswith("weight") and p.samples > 0 and finite(p.update_to_weight)
            and p.update_to_weight >= th.cause_update_ratio}


def _learning_rate_cause(stats, th, findings) -> Finding | None:
    if any(f.code == "exploding_gradients" and f.severity in _SERIOUS for f in findings):
        return None
    symptoms = dict(LINKS)["exploding_gradients"]
    if not any(f.code in symptoms and f.severity in _SERIOUS for f in findings):
        return None
    big = _large_updates(stats, th)
    if not big:
        return None
    top = max(big.values())
    return finding(
        "exploding_gradients", "warning", sorted(big),
        {"update_to_weight": big, "max_update_to_weight": top, "threshold": th.cause_update_ratio},
        "Each step moves these weights by a large fraction of their own size (healthy is about 1e-3), so "
        "pre-activations jump across zero: units die, saturate or blow up, and the loss rises. The learning "
        "rate is the cause of the findings listed after this one.",
        "Lower the learning rate (10x or more, until update-to-weight ratios are near 1e-3), or add warm-up",
        seen={"parameters": len(stats.params), "sampled_steps": stats.sampled_steps, "steps": stats.steps},
        confidence=f"mean update-to-weight ratio up to {top:.2g} over the sampled steps, "
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
