"""Verdicts: is a remedy a verified fix, how do remedies rank, which combination to try.

A remedy is a **verified fix** when, on every seed:

1. a code it targets, flagged by the baseline (warning or error), is no longer flagged;
2. no code appears at warning or error that the baseline did not flag;
3. the validation metric is no worse than the baseline's, up to ``tolerance``; and
4. the run is long enough to show the finding at all: it trained every planned step, and
   at least :func:`min_evidence_steps` of them (the loss rules say nothing before that),
   so "cleared" is never read off a run too short to show the finding.

It is then credited with every baseline code it cleared, targeted or not (He init
also ends the plateau that dead units caused).

``tolerance`` defaults to one binomial standard error of the baseline's
validation accuracy, :math:`\\sqrt{p(1-p)/n}` on :math:`n` validation examples:
differences below it cannot be told apart from the split's sampling noise
(pass ``tolerance=0`` for a strict comparison). For non-integer targets the
metric is minus the validation loss and the default tolerance is 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from impediments.fix.trial import Trial


def min_evidence_steps(thresholds) -> int:
    """Fewest steps from which the doctor's loss rules can speak (``plateau_min_steps``)."""
    return int(thresholds.plateau_min_steps)


def accuracy_tolerance(accuracy: float | None, n: int) -> float:
    """One binomial standard error of ``accuracy`` on ``n`` examples (0 for no accuracy)."""
    if accuracy is None or n < 1 or not math.isfinite(accuracy):
        return 0.0
    return math.sqrt(accuracy * (1 - accuracy) / n)


@dataclass
class Verdict:
    """One remedy (or combination) judged against the baseline over every seed.

    Attributes:
        remedies: the remedy names.
        targets: baseline-flagged codes the remedy treats.
        cleared: baseline-flagged codes no longer flagged on every seed (targets or not).
        new: codes flagged on some seed that the baseline did not flag there.
        verified: the codes verified as fixed: every cleared code, when at least one target is cleared and
            the other three conditions hold on every seed (else empty).
        metric_ok: the metric held on every seed.
        short: why the evidence is insufficient (empty when sufficient).
        errors: why a trial did not run, per seed.
        delta: mean change of the metric over seeds (accuracy points, or minus the loss change).
        metric: mean metric over seeds (ranks remedies whose ``delta`` is undefined: a non-finite baseline).
    """

    remedies: tuple[str, ...]
    targets: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    metric_ok: bool = False
    short: str = ""
    errors: list[str] = field(default_factory=list)
    delta: float = float("nan")
    metric: float = float("nan")

    @property
    def status(self) -> str:
        if self.errors:
            return "not run"
        if self.verified:
            return "verified fix"
        if self.short:
            return "too short to tell"
        if self.new:
            return "new findings"
        if not self.metric_ok:
            return "metric worse"
        return "did not clear" if self.targets else "no target"


def judge(remedies: tuple[str, ...], targets: set[str], baseline: list[Trial], trials: list[Trial],
          tolerance: float, min_steps: int) -> Verdict:
    """Judge the trials of one remedy (one per seed, same order as ``baseline``)."""
    v = Verdict(tuple(remedies))
    flagged = set().union(*(b.flagged for b in baseline))
    v.targets = sorted(targets & flagged)
    v.errors = [t.error for t in trials if t.error]
    if v.errors:
        return v
    cleared, new, ok, deltas = set(flagged), set(), True, []
    for b, t in zip(baseline, trials):
        cleared -= t.flagged
        new |= t.flagged - b.flagged
        ok = ok and _no_worse(t.metric, b.metric, tolerance)
        deltas.append(t.metric - b.metric if math.isfinite(b.metric) and math.isfinite(t.metric) else float("nan"))
    v.cleared, v.new, v.metric_ok = sorted(cleared), sorted(new), ok
    v.delta = sum(deltas) / len(deltas)
    v.metric = sum(t.metric for t in trials) / len(trials)
    planned = trials[0].steps
    if planned < min_steps:
        v.short = f"{planned} steps planned, the doctor needs at least {min_steps} to speak"
    elif any(t.steps_run < t.steps for t in trials):
        v.short = "training stopped early (non-finite loss)"
    if not v.short and not v.new and v.metric_ok and set(v.targets) & cleared:
        v.verified = sorted(cleared)
    return v


def _no_worse(metric: float, baseline: float, tolerance: float) -> bool:
    if not math.isfinite(baseline):
        return math.isfinite(metric) or metric == baseline
    return math.isfinite(metric) and metric >= baseline - tolerance


def rank_key(v: Verdict):
    """Sort key, best first: verified codes, cleared codes, fewer new findings, larger metric change, then (when
    the change is undefined, e.g. against a baseline that ended in NaN) the larger metric."""
    delta = v.delta if math.isfinite(v.delta) else float("-inf")
    metric = v.metric if math.isfinite(v.metric) else float("-inf")
    return (-len(v.verified), -len(v.cleared), len(v.new), -delta, -metric, v.remedies)


def best_combination(verdicts: list[Verdict], slot_of) -> list[tuple[str, ...]]:
    """The best-ranked verified row for each verified code, with no slot used twice.

    Rows are units (a remedy, or a remedy with its learning rate retuned); a unit whose slots
    overlap a better-ranked chosen unit's is skipped, and so is one that adds no new code.
    """
    chosen: list[tuple[str, ...]] = []
    slots: set[str] = set()
    covered: set[str] = set()
    for v in sorted((v for v in verdicts if v.verified), key=rank_key):
        unit_slots = {slot_of(n) for n in v.remedies}
        if set(v.verified) - covered and not unit_slots & slots:
            chosen.append(v.remedies)
            slots |= unit_slots
            covered |= set(v.verified)
    return chosen


def root_cause(findings) -> str | None:
    """The report's root cause: the code of its first warning or error that no other finding explains
    (``caused_by`` unset; the doctor lists causes first), or None. ``findings`` as ``Finding.to_dict()``."""
    return next((f["code"] for f in findings if f["severity"] in ("warning", "error") and not f.get("caused_by")),
                None)
