r"""Cause before symptoms: mark findings that another finding of the same report explains.

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
* dead units -> vanishing activations (a unit that outputs zero for every input passes no variance on,
  whatever the weights' scale); symmetric units -> a linear regime (identical units, zero-init here, all
  compute the same near-zero pre-activation, where the nonlinearity equals its tangent); saturated units ->
  vanishing gradients (the derivative is near zero in the flat tails).
* an init scale far too large -> saturated units, exploding activations and a high initial loss.
* a learning rate too low -> a loss plateau, and the near-linear regime of the init kept (the weights barely
  move); no nonlinearity -> a plateau at the best affine fit.

A caused finding's explanation names its cause's mechanism (:data:`MECHANISM`, where the rule wrote the
code's default text), and its remedy starts with the cause's remedy.

**Words fitted to the measurements** (:func:`fit_to_model`). A remedy never recommends what the
measurements show is already in place: the doctor measures each Linear/Conv layer's variance gain at
init, :math:`\operatorname{Var}(y) / \overline{x^2} = n \operatorname{Var}(W)`
(:func:`~impediments.doctor.rules.init_scale.layer_gains`; LeCun et al. 1998, He et al. 2015). Where
its median is at least ``init_gain_in_place`` of the variance-preserving gain of the network's activation
(2 for a piecewise-linear rectifier, He et al. 2015; 1 otherwise, LeCun et al. 1998 / Glorot & Bengio
2010) and below ``init_gain_too_large``, the code's ``remedy_init_in_place`` replaces a default remedy
that recommends He/Glorot. And a code whose experiment shows a residual mechanism links, for a model in
which the monitor saw no residual block, to its ``experiment_plain``.
"""
from __future__ import annotations

import dataclasses
import re
import statistics

from impediments.activations.catalog import taxonomy
from impediments.doctor.codes import CODES, see_text
from impediments.doctor.finding import Finding
from impediments.doctor.rules.base import finding, finite
from impediments.doctor.rules.init_scale import layer_gains

LINKS = (
    ("model_in_eval_mode", ("bn_inference_mode_in_training", "loss_plateau", "diverging_loss")),
    ("parameters_not_updated", ("loss_plateau",)),
    ("parameters_without_gradient", ("loss_plateau",)),
    ("optimizer_rarely_steps", ("loss_plateau",)),
    ("parameters_reset", ("loss_plateau", "uninformative_labels")),
    ("almost_all_frozen", ("loss_plateau",)),
    ("gradient_clipping_dominates", ("loss_plateau",)),
    ("learning_rate_collapsed", ("loss_plateau",)),
    ("learning_rate_too_low", ("loss_plateau", "linear_regime")),
    ("no_nonlinearity", ("loss_plateau",)),
    ("repeated_batch", ("loss_plateau",)),
    ("gradients_not_cleared", ("diverging_loss", "exploding_gradients", "dead_units", "non_finite",
                               "loss_plateau")),
    ("init_scale_too_large", ("saturated_units", "exploding_activations", "initial_loss_high")),
    ("exploding_gradients", ("dead_units", "exploding_activations", "saturated_units", "diverging_loss",
                             "non_finite", "loss_plateau", "vanishing_gradients")),
    ("dead_units", ("vanishing_activations", "loss_plateau")),
    ("symmetric_units", ("linear_regime", "loss_plateau")),
    ("saturated_units", ("vanishing_gradients", "loss_plateau")),
    ("vanishing_gradients", ("loss_plateau",)),
)
_SERIOUS = ("warning", "error")

#: (cause, consequence) -> how the cause produces it: replaces the consequence's default explanation, which
#: names the generic mechanism (``vanishing_activations``'s "n Var(W) < 1 per layer" is not why dead units
#: pass no variance on)
MECHANISM = {
    ("dead_units", "vanishing_activations"): (
        "The variance of the pre-activations falls with depth because dead units pass nothing on: a ReLU layer "
        "whose units output zero for every input hands the next layer (almost) constant inputs, whatever the "
        "scale of its weights."),
    ("dead_units", "loss_plateau"): (
        "The loss has not fallen below where it started: dead units pass no gradient back, so the weights "
        "before them receive none."),
    ("symmetric_units", "linear_regime"): (
        "Units with identical incoming weights (a zero or constant init) all compute the same pre-activation, "
        "here near zero, where the nonlinearity equals its tangent line: the network stays (almost) linear "
        "because its symmetry was never broken, not because its init scale is small."),
    ("symmetric_units", "loss_plateau"): (
        "The loss has not fallen below where it started: units with identical weights receive identical "
        "gradients, so each layer learns as if it had one unit."),
    ("saturated_units", "vanishing_gradients"): (
        "The back-propagated signal shrinks layer by layer because saturated units pass almost none of it: "
        "their derivative is near zero in the flat tails, and each saturated layer multiplies the gradient by it."),
    ("exploding_gradients", "exploding_activations"): (
        "The variance of the pre-activations grows with depth because the steps grew the weights: each update "
        "adds a large fraction of a weight's own size, so n Var(W) rises above its init value in layer after "
        "layer."),
    ("learning_rate_too_low", "loss_plateau"): (
        "The loss has not fallen below where it started: each step moves the weights a tiny fraction of themselves, "
        "so over the run they stay close to their init."),
    ("learning_rate_too_low", "linear_regime"): (
        "The pre-activations stay in the near-linear region they had at init because the weights barely moved: "
        "each step changes them by a tiny fraction of themselves, so the regime of the init persists."),
    ("no_nonlinearity", "loss_plateau"): (
        "The loss stopped falling at the best affine fit: the stacked layers compose to one affine map, which "
        "no number of steps can bend."),
    ("saturated_units", "loss_plateau"): (
        "The loss has not fallen below where it started: saturated units pass almost no gradient back."),
}


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


def preserving_gain(stats) -> float:
    """The variance gain per layer, :math:`n \\operatorname{Var}(W)`, that preserves the forward variance for the
    network's hidden activations: 2 where any is a piecewise-linear rectifier (ReLU, ReLU6, leaky ReLU: they
    halve the second moment, He et al. 2015), else 1 (LeCun et al. 1998; Glorot & Bengio 2010)."""
    kinds = {a.kind for a in stats.activations.values()}
    halving = any((t := taxonomy(k)) is not None and t.piecewise and t.family in ("rectifier", "leaky")
                  for k in kinds)
    return 2.0 if halving else 1.0


def init_in_place(stats, th) -> str | None:
    """The measured init gain, in words, when it already preserves variance (module doc); else None.

    The median of :func:`~impediments.doctor.rules.init_scale.layer_gains` over the layers whose input
    carried signal at init must reach ``init_gain_in_place`` x :func:`preserving_gain` and stay below
    ``init_gain_too_large`` (above it the init is the cause, ``init_scale_too_large``).
    """
    gains = [g for g, _ in layer_gains(stats).values() if finite(g)]
    if not gains:
        return None
    median, target = statistics.median(gains), preserving_gain(stats)
    if not th.init_gain_in_place * target <= median < th.init_gain_too_large:
        return None
    return f"n Var(W) measured at {median:.2g} per layer at init, where {target:g} preserves variance"


def fit_to_model(f: Finding, stats, th) -> Finding:
    """``f`` with its remedy fitted to what was measured (module doc): the plain-network experiment for a model
    without residual blocks (whatever the remedy's words), and, in a default remedy, no He/Glorot where the
    init already preserves variance (a rule's own words for its variant are kept)."""
    row = CODES[f.code]
    action, see = f.action, f.link
    if row.experiment_plain and not stats.residual_stream and see == row.see:
        see = see_text(row.experiment_plain)
    if f.remedy == f"{row.remedy}; {row.see}" and row.remedy_init_in_place:
        measured = init_in_place(stats, th)
        if measured is not None:
            action = row.remedy_init_in_place.replace("{measured}", measured)
    remedy = f"{action}; {see}"
    return f if remedy == f.remedy else dataclasses.replace(f, remedy=remedy)


_MEASURED = re.compile(r"n Var\(W\) measured at [^,]+ per layer at init, where [^ ]+ preserves variance")


def caused_remedy(cause: Finding, remedy: str) -> str:
    """A consequence's remedy: its cause's first (without the cause's experiment link), then its own (the
    measured init said once: where the cause's remedy gives it, the consequence's does not repeat it)."""
    said = _MEASURED.search(cause.action)
    if said is not None:
        remedy = remedy.replace(f" ({said.group(0)})", "").replace(f": {said.group(0)}", "")
    return (f"Caused by {cause.code} (reported above); fix that first: {cause.action.rstrip('.')}. "
            f"Then, if it remains: {remedy}")


def link(findings: list[Finding], stats, th) -> list[Finding]:
    """The findings with ``caused_by`` set where a cause in the report explains them, their explanation
    naming the cause's mechanism and their remedy starting with the cause's (see module doc)."""
    cause = _learning_rate_cause(stats, th, findings) if stats.params else None
    if cause is not None:
        findings = [cause] + findings
    findings = [fit_to_model(f, stats, th) for f in findings]
    present: dict[str, Finding] = {}
    for f in findings:
        if f.severity in _SERIOUS:
            present.setdefault(f.code, f)    # the first (the rule's most severe) finding of a code speaks for it
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
        explanation = f.explanation
        if (root, f.code) in MECHANISM and explanation == CODES[f.code].explanation:
            explanation = MECHANISM[(root, f.code)]
        out.append(dataclasses.replace(f, caused_by=root, explanation=explanation,
                                       remedy=caused_remedy(present[root], f.remedy)))
    return out
