"""The rule protocol: ``rule(stats, thresholds) -> list[Finding]``, declaring what it ``requires``.

A rule is a pure function of :class:`~impediments.monitor.schema.MonitorStats`.
It names the ``MonitorStats`` fields it needs; :func:`missing` tells the
doctor when they are absent (None, or an empty dict/list), and the rule is then
skipped with that reason instead of guessing.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from impediments.doctor.codes import CODES
from impediments.doctor.finding import Finding


@dataclass(frozen=True)
class Rule:
    """A registered rule: its name, the codes it may emit, the stats fields it needs, and the function."""

    name: str
    codes: tuple[str, ...]
    requires: tuple[str, ...]
    fn: Callable

    def __call__(self, stats, thresholds) -> list[Finding]:
        return self.fn(stats, thresholds)


RULES: list[Rule] = []


def rule(*codes: str, requires: tuple[str, ...]):
    """Register ``fn`` as a rule emitting ``codes`` that needs the ``requires`` fields of MonitorStats."""
    for code in codes:
        if code not in CODES:
            raise ValueError(f"unknown code {code!r}")

    def register(fn):
        r = Rule(fn.__name__, tuple(codes), tuple(requires), fn)
        RULES.append(r)
        fn.rule = r
        return fn

    return register


def missing(stats, requires) -> list[str]:
    """The required fields that are absent, None, or empty."""
    out = []
    for name in requires:
        value = getattr(stats, name)            # a misspelled requirement fails loudly
        if value is None or (hasattr(value, "__len__") and len(value) == 0):
            out.append(name)
    return out


@dataclass(frozen=True)
class NotChecked:
    """What a rule returns instead of guessing: the code it could not judge yet, and what it lacked.

    :func:`~impediments.doctor.diagnose.diagnose` lists these under ``Report.skipped`` ("not checked").
    """

    code: str
    where: tuple[str, ...]
    reason: str


def finding(code: str, severity: str, where, evidence: dict, explanation: str | None = None,
            remedy: str | None = None, *, seen: dict | None = None, confidence: str | None = None) -> Finding:
    """A Finding whose remedy ends with the experiment link (``see: impediments reproduce ...``).

    ``explanation`` and ``remedy`` default to the code table's (:data:`~impediments.doctor.codes.CODES`).
    ``seen`` (how much data the verdict rests on: values, examples, steps) and ``confidence`` (one
    sentence) are stored in the evidence under those keys.
    """
    row = CODES[code]
    explanation = row.explanation if explanation is None else explanation
    remedy = row.remedy if remedy is None else remedy
    see = row.see
    if "see: impediments" not in remedy:
        remedy = f"{remedy}; {see}"
    if seen is not None:
        evidence = {**evidence, "seen": seen}
    if confidence is not None:
        evidence = {**evidence, "confidence": confidence}
    return Finding(code, severity, list(where), evidence, explanation, remedy)


def not_checked(code: str, where, reason: str) -> NotChecked:
    """A :class:`NotChecked` for ``code`` at ``where`` (layer names)."""
    return NotChecked(code, tuple(str(w) for w in where), reason)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def by_depth(items: dict) -> list[tuple[str, object]]:
    """``(name, item)`` pairs sorted by ``item.depth`` (then name), items without depth last."""
    return sorted(items.items(), key=lambda kv: (kv[1].depth is None, kv[1].depth or 0, kv[0]))


def loss_drop(stats) -> float | None:
    """How much of its first value the loss shed: :math:`1 - \\bar{L}_{last} / L_0`, with :math:`\\bar{L}_{last}` the
    mean of the last third of the window means (in a run too short for three windows, the last loss); None
    without a loss trend (no recorded loss, a non-finite or non-positive one, or a single loss: ``checkup``).

    For a classification loss (only ``cross_entropy`` / ``nll_loss`` seen, with class targets counted) the
    drop is also measured against the labels' prior entropy :math:`H(y) = -\\sum_c \\pi_c \\ln \\pi_c`, the loss
    of a model that learned the class frequencies and nothing of the inputs, and the smaller of the two is
    returned: a language model whose loss falls from :math:`\\ln V` to the unigram entropy has learned the
    prior only (with balanced classes :math:`H(y) = \\ln C`, the start, and nothing changes).

    A property of the network (dead units, uncentered inputs, shrinking activations) is a warning only
    where it costs this run something; a loss that shed ``trains_loss_drop`` of its start shows the run
    learns through it (issue 24: "a warning must mean: this is costing you now").

    A loss that started positive and ended below 0 is unbounded below (a log-likelihood fed values outside
    its domain, such as a Keras-style BCE on targets outside [0, 1]): its fall is not learning, so None.
    """
    loss = stats.loss
    if loss is None or not finite(loss.first) or loss.first <= 0 or loss.first_nonfinite_step is not None:
        return None
    means = [float(v) for v in loss.window_means if v is not None]
    if not all(map(finite, means)):
        return None
    if len(means) >= 3:
        k = max(1, len(means) // 3)
        last = sum(means[-k:]) / k
    elif loss.count >= 2 and finite(loss.last):    # a run too short for windows: its last loss
        last = float(loss.last)
    else:
        return None
    if last < 0:
        return None
    drop = 1.0 - last / loss.first
    prior = _prior_entropy(stats)
    return min(drop, 1.0 - last / prior) if prior else drop


def _prior_entropy(stats) -> float | None:
    """The entropy of the class targets counted at the loss call, when classification is the only loss seen."""
    loop = stats.loop
    if loop is None or not loop.losses or set(loop.losses) - {"cross_entropy", "nll_loss"} or not loop.class_counts:
        return None
    total = sum(loop.class_counts)
    return -sum(c / total * math.log(c / total) for c in loop.class_counts if c) if total else None


def geometric_ratio(values: list[float], depths: list[int] | None = None) -> float:
    """Last/first ratio along the least-squares geometric trend of ``values`` (all > 0).

    Fits ``log v = a + b l`` and returns ``exp(b (L - 1))``, so one odd layer cannot make or hide a
    trend. ``l`` is the rank of each value's depth among the distinct ``depths`` (default: one depth
    per value), and ``L`` their number: values computed side by side at one depth (an LSTM layer's
    gates) are several measurements of one layer, not successive layers. Needs two distinct depths.
    """
    depths = list(range(len(values))) if depths is None else depths
    rank = {d: i for i, d in enumerate(sorted(set(depths)))}
    xs, logs = [rank[d] for d in depths], [math.log(v) for v in values]
    n = len(values)
    xbar, ybar = sum(xs) / n, sum(logs) / n
    sxx = sum((x - xbar) ** 2 for x in xs)
    b = sum((x - xbar) * (y - ybar) for x, y in zip(xs, logs)) / sxx
    return math.exp(b * (len(rank) - 1))
