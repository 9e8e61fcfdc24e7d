"""Rules on activation statistics: dead units, saturation, linear regime, variance with depth.

Each emits at most one finding per (code, severity), listing every layer involved in ``where`` and
the per-layer numbers in ``evidence``. Which kinds can die, saturate or act as gates comes from the
one taxonomy, :data:`impediments.activations.catalog.TAXONOMY`.
"""
from __future__ import annotations

import math

from impediments.activations.catalog import taxonomy
from impediments.doctor.rules.base import by_depth, finding, finite, geometric_ratio, not_checked, rule


def _grade(value: float, warning: float, error: float, info_above: float | None = None) -> str | None:
    if value >= error:
        return "error"
    if value >= warning:
        return "warning"
    if info_above is not None and value > info_above:
        return "info"
    return None


def _group(code, graded: dict, summary, seen: dict, confidence: str, explanation=None, remedy=None) -> list:
    """One finding per severity from ``{layer: (severity, evidence)}``; ``summary(evidence_by_layer)``."""
    out = []
    for severity in ("error", "warning", "info"):
        layers = {k: ev for k, (sev, ev) in graded.items() if sev == severity}
        if layers:
            out.append(finding(code, severity, list(layers), {**summary(layers), "layers": layers},
                               explanation, remedy, seen=seen, confidence=confidence))
    return out


# ------------------------------------------------------------------------------------------------ dead units
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
    (:math:`p_j` from their counts less one, see :func:`dead_units`): a unit active on a fraction
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


def _examples_needed(active_rates: list[float], units: int, alpha: float) -> int:
    rates = sorted(active_rates)
    p = rates[len(rates) // 2] if rates else 0.5
    if p <= 0 or p >= 1:
        return 0
    return math.ceil(math.log(alpha / max(units, 1)) / math.log1p(-p))


def _late_deaths(stats, name, a, th) -> tuple[list[int], object, float]:
    """Units silent in the last window they were measured in although they were active before it.

    A unit active on a fraction :math:`p_i` of its values before that window is silent over the
    window's :math:`N_w` examples by chance with probability :math:`(1 - p_i)^{N_w}`; it counts as
    having died only when that is below ``dead_false_alarm / units`` (Bonferroni over the layer).
    """
    per = max(a.values_per_example, 1)
    for w in reversed(stats.windows):
        if name not in w.silent_units:
            continue
        before = a.unit_total - w.unit_values.get(name, 0)
        examples = w.unit_values.get(name, 0) / per
        died = []
        for i in w.silent_units[name]:
            count = a.unit_active_counts[i] if i < len(a.unit_active_counts) else 0
            if count > 0 and before > 0 and (1 - count / before) ** examples < th.dead_false_alarm / a.units:
                died.append(i)
        return died, w, examples
    return [], None, 0.0


@rule("dead_units", requires=("activations",))
def dead_units(stats, th):
    """Rectifier units never active on any input seen (or that died in the last window of training).

    Units measured active on at most ``nearly_dead_fraction`` of their values count as dead too; the
    evidence keeps the two counts apart. Units never active count only when that many silent units are
    unlikely to be chance (:func:`chance_silent`, :func:`binomial_tail` below ``dead_false_alarm``);
    otherwise they are listed as "not checked: not enough data yet".
    """
    graded, undecided = {}, []
    seen_examples = 0.0
    for name, a in by_depth(stats.activations):
        t = taxonomy(a.kind)
        if (t is None or t.family != "rectifier" or a.units < 1 or a.unit_active_counts is None
                or a.unit_total < th.dead_min_values):
            continue
        counts, total = a.unit_active_counts, a.unit_total
        examples = total / max(a.values_per_example, 1)
        seen_examples = max(seen_examples, examples)
        dead = [i for i, c in enumerate(counts) if c == 0]
        nearly = [i for i, c in enumerate(counts) if 0 < c <= th.nearly_dead_fraction * total]
        # a sibling's rate from its count less the one activation that made it "live": estimating rates only
        # from units seen active overstates them (selection), which would understate the chance of silence.
        # Units seen once say silent ones may lie just below detection, but only in a layer with units seen
        # active more than once: otherwise there is no healthy activity to compare with (a prior 1/2 is used)
        alive = [c for c in counts if c > th.nearly_dead_fraction * total]
        live = [(c - 1) / total for c in alive] if any(c >= 2 for c in alive) else []
        q = chance_silent(live, examples)
        p_value = binomial_tail(a.units, q, len(dead))
        sure = p_value < th.dead_false_alarm        # nearly dead units were measured active <= 0.1%: no chance test
        frac = (len(nearly) + (len(dead) if sure else 0)) / a.units
        if dead and not sure:
            undecided.append((name, len(dead), a.units, examples, q,
                              _examples_needed(live, a.units, th.dead_false_alarm)))
        ev = {"dead_fraction": frac, "dead_units": len(dead), "nearly_dead_units": len(nearly), "units": a.units,
              "values_per_unit": total, "examples": round(examples, 1), "chance_silent_per_unit": q,
              "chance_of_this_many": p_value}
        died, window, w_examples = _late_deaths(stats, name, a, th)
        late = frac + len(died) / a.units
        if died and late > frac and late >= th.dead_warning:
            ev.update(window=[window.start_step, window.end_step], window_dead_fraction=late,
                      window_examples=round(w_examples, 1), died_in_window=len(died),
                      whole_run=f"{frac:.0%} of units never active over all {examples:.0f} examples; "
                                f"{len(died)} more were active before step {window.start_step} and silent over the "
                                f"{w_examples:.0f} examples of steps [{window.start_step}, {window.end_step})")
            frac = late
        sev = _grade(frac, th.dead_warning, th.dead_error, info_above=0.0)
        if sev:
            graded[name] = (sev, ev)
    out = _group(
        "dead_units", graded,
        lambda layers: {"max_dead_fraction": max(ev.get("window_dead_fraction", ev["dead_fraction"])
                                                 for ev in layers.values()),
                        "max_whole_run_dead_fraction": max(ev["dead_fraction"] for ev in layers.values()),
                        "from_windows": {n: ev["window"] for n, ev in layers.items() if "window" in ev},
                        "threshold_warning": th.dead_warning, "threshold_error": th.dead_error},
        seen={"examples": round(seen_examples, 1), "sampled_steps": stats.sampled_steps, "steps": stats.steps},
        confidence=f"each layer's dead count has a chance probability below {th.dead_false_alarm:g} given how "
                   f"active its live units were")
    for name, k, units, examples, q, need in undecided:
        if name not in graded:
            out.append(not_checked("dead_units", [name],
                                   f"not enough data yet: {k}/{units} units silent over {examples:.0f} examples, but "
                                   f"units as active as their live siblings would be silent by chance with "
                                   f"probability {q:.2g} each (about {need} examples needed)"))
    return out


# ------------------------------------------------------------------------------------------------ saturation
@rule("saturated_units", requires=("activations",))
def saturated_units(stats, th):
    """Sigmoid/tanh-like layers (gates included) with most inputs in the zero-derivative region."""
    graded = {}
    for name, a in by_depth(stats.activations):
        t = taxonomy(a.kind)
        if t is None or t.family != "saturating" or not finite(a.saturated_fraction):
            continue
        sev = _grade(a.saturated_fraction, th.saturated_warning, th.saturated_error)
        if sev:
            graded[name] = (sev, {"saturated_fraction": a.saturated_fraction, "kind": a.kind, "gate": a.gate,
                                  "always_saturated_units": len(a.dead_units), "units": a.units,
                                  "pre_activation_std": max(a.input.var, 0.0) ** 0.5, "values": a.input.count})
    return _group(
        "saturated_units", graded,
        lambda layers: {"max_saturated_fraction": max(ev["saturated_fraction"] for ev in layers.values()),
                        "threshold_warning": th.saturated_warning, "threshold_error": th.saturated_error,
                        "saturation_bound": th.saturation_bound},
        seen={"values": sum(ev["values"] for _, ev in graded.values()), "sampled_steps": stats.sampled_steps},
        confidence="fractions over every pre-activation value of the sampled steps")


# ------------------------------------------------------------------------------------------------ linear regime
def _linear_fraction(kind: str, regions) -> float | None:
    """Near-linear fraction from ``[saturated, linear, active]`` fractions: for a piecewise-linear
    rectifier (ReLU) every input outside its flat part; for a smooth kind, the catalog's linear region."""
    t = taxonomy(kind)
    if t is None or t.family not in ("rectifier", "saturating") or t.family == "leaky":
        return None
    sat, lin = regions[0], regions[1]
    if t.family == "rectifier" and t.piecewise:
        return 1.0 - sat if finite(sat) else None
    return float(lin) if finite(lin) else None


@rule("linear_regime", requires=("activations",))
def linear_regime(stats, th):
    """Hidden nonlinearities whose inputs stay in the near-linear region over training.

    Near-linear at init is what LeCun et al. (1998) recommend, so the verdict uses only windows that
    start after the ``transient_steps``: every one of them must be above ``linear_warning``. Gates
    (activations whose output multiplies another tensor: squeeze-excitation, SwiGLU, LSTM gates, the
    ``tanh`` inside tanh-GELU) are not hidden nonlinearities and are not judged.
    """
    graded, gates, early = {}, [], []
    for name, a in by_depth(stats.activations):
        frac = _linear_fraction(a.kind, (a.saturated_fraction, a.linear_fraction))
        if frac is None or frac < th.linear_warning:
            continue
        if a.gate:
            gates.append(name)
            continue
        later = [(w, _linear_fraction(a.kind, w.region_fractions[name])) for w in stats.windows
                 if w.start_step >= th.transient_steps and name in w.region_fractions]
        later = [(w, f) for w, f in later if f is not None]
        if not later:
            early.append(name)
            continue
        if min(f for _, f in later) >= th.linear_warning:
            graded[name] = ("warning", {"linear_fraction": frac, "kind": a.kind, "role": "hidden",
                                        "after_transient_min": min(f for _, f in later),
                                        "windows_after_transient": len(later),
                                        "from_step": later[0][0].start_step,
                                        "pre_activation_mean": a.input.mean,
                                        "pre_activation_std": max(a.input.var, 0.0) ** 0.5})
    out = _group(
        "linear_regime", graded,
        lambda layers: {"min_linear_fraction": min(ev["linear_fraction"] for ev in layers.values()),
                        "threshold": th.linear_warning, "gates_not_judged": gates},
        seen={"steps": stats.steps, "sampled_steps": stats.sampled_steps},
        confidence=f"near-linear in every window after the first {th.transient_steps} steps, not only at init")
    if early:
        out.append(not_checked("linear_regime", early,
                               f"near-linear so far in {len(early)} hidden activation(s) ({', '.join(early[:3])}), "
                               f"as recommended at init; judged only on windows after step {th.transient_steps} "
                               f"(seen {stats.steps} steps)"))
    return out


# ------------------------------------------------------------------------------------------------ depth trends
@rule("vanishing_activations", "exploding_activations", requires=("activations",))
def activation_variance_with_depth(stats, th):
    """Pre-activation variance shrinking or growing geometrically along depth.

    Activations at one depth (the gates, candidate and cell of one LSTM/GRU layer, computed side by
    side) are fitted as measurements of that depth, not as successive layers (:func:`geometric_ratio`).
    """
    chain = [(name, float(a.input.var)) for name, a in by_depth(stats.activations) if finite(a.input.var)]
    depths = [stats.activations[name].depth for name, _ in chain]
    if len(chain) < th.depth_min_layers or len(set(depths)) < 2:
        return []
    ratio = geometric_ratio([max(v, 1e-45) for _, v in chain], depths)
    evidence = {"last_over_first_variance": ratio, "threshold": th.activation_var_ratio, "layers": len(chain),
                "depths": len(set(depths)), "first_variance": chain[0][1], "last_variance": chain[-1][1],
                "variance_by_layer": {n: v for n, v in chain}}
    code = ("vanishing_activations" if ratio < 1 / th.activation_var_ratio else
            "exploding_activations" if ratio > th.activation_var_ratio else None)
    if code is None:
        return []
    return [finding(code, "warning", [n for n, _ in chain], evidence,
                    seen={"layers": len(chain), "values": sum(stats.activations[n].input.count for n, _ in chain),
                          "sampled_steps": stats.sampled_steps},
                    confidence=f"a geometric trend over {len(chain)} activations at {len(set(depths))} depths, "
                               f"{abs(math.log10(ratio)):.1f} decades first to last")]
