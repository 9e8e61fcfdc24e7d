"""Verdicts over seeds: each claim's quantities, their mean, 95 % interval and effect size.

A claim is checked at ``k`` seeds (each seed is a separate run). For each
comparison of its condition, the per-seed *margin* (positive on the claimed
side, see :class:`impediments.experiments.claims.Quantity`) is summarized by

.. math:: \\bar m \\pm t_{0.975,\\,k-1} \\, s / \\sqrt{k}, \\qquad d = \\bar m / s

(Student's t interval of the mean; ``d`` is Cohen's effect size of the
margin against zero). The comparison

- **holds** when the whole interval lies on the claimed side,
- **fails** when it lies on the other side,
- is **inconclusive** when it straddles the boundary.

When a margin is infinite or undefined at some seed (a target never
reached), the interval is the range of the per-seed margins instead. A claim
with several comparisons (joined by ``and``) fails if any fails, holds if all
hold, and is inconclusive otherwise. An inconclusive claim does not fail a run.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from impediments.experiments.claims import Claim, parse

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
CONFIDENCE = 0.95


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student t critical value ``t_{(1+confidence)/2, df}``."""
    from scipy.stats import t

    return float(t.ppf((1 + confidence) / 2, df))


@dataclass(frozen=True)
class QuantityVerdict:
    """One comparison of a claim summarized over seeds.

    Attributes:
        text: the comparison as written.
        quantity: the margin whose sign is claimed (``left - right`` for ``>``).
        side: the claimed side of the margin, ``">= 0"`` or ``"> 0"``.
        values: the margin at each seed (positive means it holds at that seed).
        mean, low, high: the mean margin and its 95 % interval.
        effect_size: mean / standard deviation over seeds (``±inf`` when they all agree exactly).
        interval: ``"t"`` or ``"range"`` (the per-seed range, used when a margin is not finite).
        verdict: holds, fails or inconclusive.
    """

    text: str
    quantity: str
    side: str
    values: list[float]
    mean: float
    low: float
    high: float
    effect_size: float
    interval: str
    verdict: str

    def to_dict(self) -> dict:
        return {"comparison": self.text, "quantity": self.quantity, "side": self.side, "values": list(self.values),
                "mean": self.mean, "low": self.low, "high": self.high, "effect_size": self.effect_size,
                "interval": self.interval, "confidence": CONFIDENCE, "verdict": self.verdict}


def summarize(text: str, quantity: str, side: str, inclusive: bool, values: Sequence[float]) -> QuantityVerdict:
    """Mean, interval, effect size and verdict of one comparison's per-seed margins."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        raise ValueError(f"no seeds for {text!r}")
    if np.all(np.isfinite(v)):
        mean = float(v.mean())
        sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        half = t_quantile(len(v) - 1) * sd / math.sqrt(len(v)) if len(v) > 1 else 0.0
        low, high, how = mean - half, mean + half, "t"
        effect = mean / sd if sd > 0 else (math.copysign(math.inf, mean) if mean else 0.0)
    else:
        with np.errstate(invalid="ignore"):
            mean = float(np.mean(v))
        low, high, how = float(np.min(v)), float(np.max(v)), "range"
        if np.any(np.isnan(v)):
            low, high = math.nan, math.nan
        effect = math.nan
    if low > 0 or (inclusive and low >= 0):
        verdict = HOLDS
    elif high < 0 or (not inclusive and high <= 0):
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    return QuantityVerdict(text=text, quantity=quantity, side=side, values=[float(x) for x in v], mean=mean,
                           low=low, high=high, effect_size=effect, interval=how, verdict=verdict)


def combine(verdicts: Sequence[str]) -> str:
    """A conjunction's verdict: fails if any fails, holds if all hold, else inconclusive."""
    if FAILS in verdicts:
        return FAILS
    return HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


@dataclass(frozen=True)
class SeedClaim:
    """A claim checked over seeds: the per-seed numbers, each quantity's summary and the verdict."""

    text: str
    source: str
    condition: str
    seeds: list[int]
    measured: dict[str, list[float]]
    quantities: list[QuantityVerdict]
    verdict: str
    labels: dict[str, str] = field(default_factory=dict)
    paper: str = ""
    inconclusive_reason: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict == FAILS

    def to_dict(self) -> dict:
        return {"text": self.text, "source": self.source, "condition": self.condition, "seeds": list(self.seeds),
                "measured": {k: list(v) for k, v in self.measured.items()}, "labels": dict(self.labels),
                "paper": self.paper, "quantities": [q.to_dict() for q in self.quantities], "verdict": self.verdict,
                "inconclusive_reason": self.inconclusive_reason if self.verdict == INCONCLUSIVE else ""}

    @classmethod
    def from_dict(cls, d: Mapping) -> "SeedClaim":
        qs = [QuantityVerdict(text=q["comparison"], quantity=q["quantity"], side=q["side"], values=list(q["values"]),
                              mean=q["mean"], low=q["low"], high=q["high"], effect_size=q["effect_size"],
                              interval=q["interval"], verdict=q["verdict"]) for q in d["quantities"]]
        return cls(text=d["text"], source=d["source"], condition=d["condition"], seeds=list(d["seeds"]),
                   measured={k: list(v) for k, v in d["measured"].items()}, quantities=qs, verdict=d["verdict"],
                   labels=dict(d.get("labels", {})), paper=d.get("paper", ""),
                   inconclusive_reason=d.get("inconclusive_reason", ""))


def over_seeds(per_seed: Mapping[int, Sequence[Claim]]) -> list[SeedClaim]:
    """Match each seed's claims by position and summarize them over seeds.

    Raises:
        ValueError: if the seeds disagree on the number of claims or on a claim's condition
            (a claim's condition must not depend on the seed).
    """
    seeds = sorted(per_seed)
    lists = [list(per_seed[s]) for s in seeds]
    if len({len(c) for c in lists}) != 1:
        raise ValueError(f"seeds {seeds} made different numbers of claims: {[len(c) for c in lists]}")
    out = []
    for i, first in enumerate(lists[0]):
        row = [claims[i] for claims in lists]
        conditions = {c.condition for c in row}
        if len(conditions) != 1:
            raise ValueError(f"claim {i} ({first.text[:60]!r}) has a seed-dependent condition: {sorted(conditions)}")
        cond = parse(first.condition)
        margins = np.array([cond.margins(c.measured) for c in row], dtype=float)  # (seeds, quantities)
        qs = [summarize(q.text, q.margin_text, q.margin_side, q.inclusive, margins[:, j])
              for j, q in enumerate(cond.quantities)]
        measured = {k: [float(c.measured.get(k, math.nan)) for c in row] for k in first.measured}
        out.append(SeedClaim(text=first.text, source=first.source, condition=first.condition, seeds=seeds,
                             measured=measured, quantities=qs, verdict=combine([q.verdict for q in qs]),
                             labels=first.labels, paper=first.paper, inconclusive_reason=first.inconclusive_reason))
    return out
