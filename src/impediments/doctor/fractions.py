"""The one dead fraction and the one saturated fraction of an activation.

The ``dead_units`` and ``saturated_units`` rules decide with these, and every view shows these same
numbers: the HTML report's bars, the playground's layer chart and the framework loggers' scalars.
Each is a pure function of one :class:`~impediments.monitor.schema.ActivationStats` and the
:class:`~impediments.doctor.thresholds.Thresholds`; ``None`` means "not judged" (a kind that cannot die
or saturate, too few values yet, or silent units that may be chance), which a view shows as a gap, never as 0.

* dead: a rectifier unit counts as dead when it was active on at most ``nearly_dead_fraction`` of
  its values, or never active *and* that many silent units are unlikely to be chance
  (:func:`chance_silent`, :func:`binomial_tail` below ``dead_false_alarm``). ``len(dead_units) /
  units`` is not this number: it counts every silent unit, chance included, and ignores nearly dead
  ones.
* saturated: the fraction of pre-activation values in the zero-derivative region, for the kinds whose
  taxonomy family is ``"saturating"`` (sigmoid, tanh and their hard variants). For a rectifier the same
  region is its flat half, which is what "dead" judges per unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from impediments.activations.catalog import taxonomy
from impediments.doctor.thresholds import Thresholds


def binomial_tail(n: int, q: float, k: int) -> float:
    """:math:`P(X \\ge k)` for :math:`X \\sim \\mathrm{Binomial}(n, q)` (exact sum in log space)."""
    if k <= 0:
        return 1.0
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    lq, l1q = math.log(q), math.log1p(-q)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lq + (n - i) * l1q
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def chance_silent(active_rates: list[float], examples: float) -> float:
    """Probability that a unit as active as a random one of ``active_rates`` is silent over ``examples``.

    :math:`q = \\frac{1}{m} \\sum_j (1 - p_j)^N` over the less active half of the live units
    (:math:`p_j` from their counts less one, see :func:`dead_count`): a unit active on a fraction
    :math:`p` of its values misses :math:`N` independent examples with probability :math:`(1 - p)^N`
    (a unit active 5% of the time is silent over 48 examples 8.5% of the time). Conv channels see several positions per
    example; using the per-value rate as the per-example one overstates :math:`q` (conservative).
    The silent units come from the low tail of the layer's activity, so the reference is the less
    active half of the live units (LeNet-5's fc at init: rates from 1/32 to 32/32, with a long low
    tail). With no live unit to learn from, a symmetric ReLU unit (:math:`p = 1/2`) is assumed.
    """
    if not active_rates:
        return 0.5 ** examples
    low = sorted(active_rates)[: (len(active_rates) + 1) // 2]
    return sum((1.0 - p) ** examples for p in low) / len(low)


def examples_needed(active_rates: list[float], units: int, alpha: float) -> int:
    """Examples after which a unit as active as the median live one is silent by chance with
    probability below ``alpha / units`` (0 when the median rate says nothing)."""
    rates = sorted(active_rates)
    p = rates[len(rates) // 2] if rates else 0.5
    if p <= 0 or p >= 1:
        return 0
    return math.ceil(math.log(alpha / max(units, 1)) / math.log1p(-p))


@dataclass(frozen=True)
class DeadCount:
    """The dead-unit count of one rectifier activation over the whole run.

    Attributes:
        fraction: units counted dead (nearly dead, plus never active when ``sure``) over ``units``.
        never_active: units with no value outside the flat region.
        nearly_dead: units active on at most ``nearly_dead_fraction`` of their values.
        units: units of the layer.
        examples: examples seen per unit (values per unit over values per example).
        chance_silent: probability that one unit as active as its live siblings is silent by chance.
        chance_of_this_many: probability of at least ``never_active`` such units by chance.
        sure: ``chance_of_this_many`` is below ``dead_false_alarm``: the never-active units count.
        examples_needed: about how many examples would make the count sure (for "not enough data yet").
        layer_active_rate: the share of all the layer's values (units x values per unit) that were active.
        dead_layer: ``layer_active_rate`` below ``dead_layer_rate``: the layer as a whole passes almost
            nothing, so its near-silent siblings are no reference for a chance test; every unit active on
            less than ``dead_layer_rate`` of its values counts as dead.
        one_input_per_call: no unit's pre-activation took more than one value within a call (measured:
            ``unit_varied_calls`` all zero, at least 2 values per call): the layer's input did not vary across the
            examples of a call (MarkupLM's xpath embeddings when no xpath tags are passed: every token gets
            the padding tag), so a call is one input, not a batch of examples, and the chance test, which
            takes examples as independent draws, does not apply. Silent units are then not counted.
    """

    fraction: float
    never_active: int
    nearly_dead: int
    units: int
    examples: float
    chance_silent: float
    chance_of_this_many: float
    sure: bool
    examples_needed: int
    layer_active_rate: float = 1.0
    dead_layer: bool = False
    one_input_per_call: bool = False

    @property
    def decided(self) -> bool:
        """The rule judges this layer: no silent unit is left to chance, or units already count as dead. A layer
        whose only candidates are silent units that may be chance is "not checked: not enough data yet"."""
        return self.sure or not self.never_active or self.fraction > 0


def dead_count(a, th: Thresholds) -> DeadCount | None:
    """The :class:`DeadCount` of activation ``a``; None for a kind that cannot die (not a rectifier), a
    layer without per-unit counts, or fewer than ``dead_min_values`` values per unit."""
    t = taxonomy(a.kind)
    if (t is None or t.family != "rectifier" or a.units < 1 or a.unit_active_counts is None
            or a.unit_total < th.dead_min_values):
        return None
    counts, total = a.unit_active_counts, a.unit_total
    examples = total / max(a.values_per_example, 1)
    never = [i for i, c in enumerate(counts) if c == 0]
    nearly = [i for i, c in enumerate(counts) if 0 < c <= th.nearly_dead_fraction * total]
    # a sibling's rate from its count less the one activation that made it "live": estimating rates only
    # from units seen active overstates them (selection), which would understate the chance of silence.
    # Units seen once say silent ones may lie just below detection, but only in a layer with units seen
    # active more than once: otherwise there is no healthy activity to compare with (a prior 1/2 is used)
    alive = [c for c in counts if c > th.nearly_dead_fraction * total]
    live = [(c - 1) / total for c in alive] if any(c >= 2 for c in alive) else []
    q = chance_silent(live, examples)
    p_value = binomial_tail(a.units, q, len(never))
    sure = p_value < th.dead_false_alarm        # nearly dead units were measured active <= 0.1%: no chance test
    rate = sum(counts) / (a.units * total)
    if rate < th.dead_layer_rate:               # a dead layer: the siblings are no reference, the rate is the test
        silent = sum(1 for c in counts if c < th.dead_layer_rate * total)
        return DeadCount(fraction=silent / a.units, never_active=len(never), nearly_dead=len(nearly), units=a.units,
                         examples=examples, chance_silent=q, chance_of_this_many=p_value, sure=True,
                         examples_needed=0, layer_active_rate=rate, dead_layer=True)
    if (never and a.unit_varied_calls is not None and a.samples > 0 and total // a.samples >= 2
            and not any(a.unit_varied_calls)):
        return DeadCount(fraction=len(nearly) / a.units, never_active=len(never), nearly_dead=len(nearly),
                         units=a.units, examples=examples, chance_silent=q, chance_of_this_many=p_value, sure=False,
                         examples_needed=0, layer_active_rate=rate, one_input_per_call=True)
    return DeadCount(fraction=(len(nearly) + (len(never) if sure else 0)) / a.units, never_active=len(never),
                     nearly_dead=len(nearly), units=a.units, examples=examples, chance_silent=q,
                     chance_of_this_many=p_value, sure=sure,
                     examples_needed=examples_needed(live, a.units, th.dead_false_alarm), layer_active_rate=rate)


def dead_fraction(a, th: Thresholds | None = None) -> float | None:
    """The dead fraction the ``dead_units`` rule judges (its evidence's ``dead_fraction``); None where the rule
    does not judge the layer (not a rectifier, too few values, or only silent units that may be chance)."""
    count = dead_count(a, Thresholds.coerce(th))
    return count.fraction if count is not None and count.decided else None


def saturated_fraction(a) -> float | None:
    """The saturated fraction the ``saturated_units`` rule judges: pre-activations in the zero-derivative
    region of a saturating kind; None for other kinds or when nothing finite was measured."""
    t = taxonomy(a.kind)
    if t is None or t.family != "saturating":
        return None
    x = a.saturated_fraction
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def thresholds_of(report) -> Thresholds:
    """The :class:`Thresholds` a :class:`~impediments.doctor.Report` was diagnosed with (its rows), so a
    view of the report shows the numbers its rules judged; defaults for a report without rows."""
    names = set(Thresholds.__dataclass_fields__)
    return Thresholds.coerce({row["name"]: row["value"] for row in report.thresholds if row["name"] in names})


def layer_fractions(stats, th: Thresholds | None = None) -> dict[str, tuple[float | None, float | None]]:
    """``{activation name: (dead fraction, saturated fraction)}`` for every activation of ``stats``."""
    th = Thresholds.coerce(th)
    return {name: (dead_fraction(a, th), saturated_fraction(a)) for name, a in stats.activations.items()}
