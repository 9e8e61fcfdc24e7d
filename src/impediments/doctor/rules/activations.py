"""Rules on activation statistics: dead units, saturation, linear regime, variance with depth.

Each emits at most one finding per (code, severity), listing every layer involved in ``where`` and
the per-layer numbers in ``evidence``. Which kinds can die, saturate or act as gates comes from the
one taxonomy, :data:`impediments.activations.catalog.TAXONOMY`.
"""
from __future__ import annotations

import math
import re

from impediments.activations.catalog import taxonomy
from impediments.doctor.fractions import dead_count, saturated_fraction
from impediments.doctor.rules.base import by_depth, finding, finite, geometric_ratio, loss_drop, not_checked, rule


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
    unlikely to be chance; otherwise they are listed as "not checked: not enough data yet". The count
    is :func:`impediments.doctor.fractions.dead_count`, the one every view of the dead fraction shows.

    Severity by measured cost: a layer that passes almost nothing (``dead_layer_rate``) or has lost
    ``dead_error`` of its units is an error. Between ``dead_warning`` and ``dead_error`` the live siblings
    carry the signal, and it is a warning only where the run shows a cost: the loss shed less than
    ``trains_loss_drop`` of its start, or units died during training (a window after they were active).
    Otherwise (the loss falls, or no loss trend yet: ``checkup``) it is info, with the evidence kept.

    A layer whose every unit's pre-activation took one value in each call saw one input per call,
    not a batch of examples (:attr:`~impediments.doctor.fractions.DeadCount.one_input_per_call`): not
    checked, with the reason.
    """
    graded, undecided, one_input = {}, [], []
    seen_examples = 0.0
    drop = loss_drop(stats)
    for name, a in by_depth(stats.activations):
        count = dead_count(a, th)
        if count is None:
            continue
        seen_examples = max(seen_examples, count.examples)
        if count.one_input_per_call:
            one_input.append((name, count.never_active, a.units, a.samples))
            continue
        frac = count.fraction
        if count.never_active and not count.sure:
            undecided.append((name, count.never_active, a.units, count.examples, count.chance_silent,
                              count.examples_needed))
        ev = {"dead_fraction": frac, "dead_units": count.never_active, "nearly_dead_units": count.nearly_dead,
              "units": a.units, "values_per_unit": a.unit_total, "examples": round(count.examples, 1),
              "chance_silent_per_unit": count.chance_silent, "chance_of_this_many": count.chance_of_this_many,
              "layer_active_rate": count.layer_active_rate, "loss_drop": drop}
        if count.dead_layer:
            ev.update(dead_layer=True, dead_layer_rate=th.dead_layer_rate,
                      whole_layer=f"the layer was active on {count.layer_active_rate:.2%} of its values (a healthy "
                                  f"ReLU layer: about half): it passes almost nothing to the next")
        died, window, w_examples = _late_deaths(stats, name, a, th)
        late = frac + len(died) / a.units
        if died and late > frac and late >= th.dead_warning:
            ev.update(window=[window.start_step, window.end_step], window_dead_fraction=late,
                      window_examples=round(w_examples, 1), died_in_window=len(died),
                      whole_run=f"{frac:.0%} of units never active over all {count.examples:.0f} examples; "
                                f"{len(died)} more were active before step {window.start_step} and silent over the "
                                f"{w_examples:.0f} examples of steps [{window.start_step}, {window.end_step})")
            frac = late
        sev = "error" if count.dead_layer else _grade(frac, th.dead_warning, th.dead_error, info_above=0.0)
        if sev == "warning" and (drop is None or drop >= th.trains_loss_drop):
            sev = "info"
            ev["not_a_warning"] = ("the live units carry the signal: " + (
                f"the loss shed {drop:.0%} of its start" if drop is not None else
                "no loss trend yet to show a cost (checkup, or a short run)"))
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
    for name, k, units, calls in one_input:
        out.append(not_checked("dead_units", [name],
                               f"{k}/{units} units silent, but every unit was on for all or none of the values of "
                               f"each of its {calls} calls: its input did not vary across the examples of a call "
                               f"(an input the model fills with one default value when it is not passed), so the "
                               f"examples are not independent draws and no unit can be judged dead from them"))
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
        frac = saturated_fraction(a)
        if frac is None:
            continue
        sev = _grade(frac, th.saturated_warning, th.saturated_error)
        if sev:
            graded[name] = (sev, {"saturated_fraction": frac, "kind": a.kind, "gate": a.gate,
                                  "always_saturated_units": len(a.dead_units), "units": a.units,
                                  "pre_activation_std": max(a.input.var, 0.0) ** 0.5, "values": a.input.count})
    return _group(
        "saturated_units", graded,
        lambda layers: {"max_saturated_fraction": max(ev["saturated_fraction"] for ev in layers.values()),
                        "threshold_warning": th.saturated_warning, "threshold_error": th.saturated_error},
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
    r"""Hidden nonlinearities whose inputs stay in the near-linear region over training.

    Near-linear at init is what LeCun et al. (1998) recommend, so the verdict uses only windows that
    start after the ``transient_steps``: every one of them must be above ``linear_warning``. Gates
    (activations whose output multiplies another tensor: squeeze-excitation, SwiGLU, LSTM gates, the
    ``tanh`` inside tanh-GELU) are not hidden nonlinearities and are not judged. Neither is the output
    head (:attr:`~impediments.monitor.probes.activations.ActivationStats.model_output`: a sigmoid or tanh
    whose output is the model's): a monotone map on the last layer's output adds no expressive power
    whatever region it runs in (a threshold on :math:`\sigma(z)` is a threshold on :math:`z`); its linear
    region only says the outputs are moderate probabilities, not that the network is linear.

    Severity by measured cost (issue 24): hidden layers that compose to a near-linear map
    :math:`f(x) \approx W_L \cdots W_1 x` cost the run only where a linear map is not enough, and the loss
    shows it: it stalls. A warning where the loss shed less than ``trains_loss_drop`` of its start
    (against the label prior for classification, :func:`loss_drop`); where it shed more, or no loss
    trend was recorded, info with the evidence kept.
    """
    graded, gates, heads, early = {}, [], [], []
    drop = loss_drop(stats)
    for name, a in by_depth(stats.activations):
        frac = _linear_fraction(a.kind, (a.saturated_fraction, a.linear_fraction))
        if frac is None or frac < th.linear_warning:
            continue
        if a.gate:
            gates.append(name)
            continue
        if a.model_output:
            heads.append(name)
            continue
        later = [(w, _linear_fraction(a.kind, w.region_fractions[name])) for w in stats.windows
                 if w.start_step >= th.transient_steps and name in w.region_fractions]
        later = [(w, f) for w, f in later if f is not None]
        if not later:
            early.append(name)
            continue
        if min(f for _, f in later) >= th.linear_warning:
            ev = {"linear_fraction": frac, "kind": a.kind, "role": "hidden",
                  "after_transient_min": min(f for _, f in later), "windows_after_transient": len(later),
                  "from_step": later[0][0].start_step, "pre_activation_mean": a.input.mean,
                  "pre_activation_std": max(a.input.var, 0.0) ** 0.5, "loss_drop": drop}
            severity = "warning"
            if drop is None or drop >= th.trains_loss_drop:
                severity = "info"
                ev["not_a_warning"] = (f"the loss shed {drop:.0%} of its start: a near-linear map is enough for "
                                       f"what this run learned so far" if drop is not None else
                                       "no loss trend recorded to show a cost")
            graded[name] = (severity, ev)
    out = _group(
        "linear_regime", graded,
        lambda layers: {"min_linear_fraction": min(ev["linear_fraction"] for ev in layers.values()),
                        "threshold": th.linear_warning, "gates_not_judged": gates, "output_heads_not_judged": heads,
                        "loss_drop": drop, "trains_loss_drop": th.trains_loss_drop},
        seen={"steps": stats.steps, "sampled_steps": stats.sampled_steps},
        confidence=f"near-linear in every window after the first {th.transient_steps} steps, not only at init")
    if early:
        out.append(not_checked("linear_regime", early,
                               f"near-linear so far in {len(early)} hidden activation(s) ({', '.join(early[:3])}), "
                               f"as recommended at init; judged only on windows after step {th.transient_steps} "
                               f"(seen {stats.steps} steps)"))
    return out


# ------------------------------------------------------------------------------------------------ depth trends
def _end_ratio(chain: list[tuple[str, float]], depths: list[int]) -> float:
    """Geometric mean variance at the last depth over that at the first (several activations may share one)."""
    def mean_log(d):
        logs = [math.log(max(v, 1e-45)) for (_, v), e in zip(chain, depths) if e == d]
        return sum(logs) / len(logs)
    return math.exp(mean_log(max(depths)) - mean_log(min(depths)))


#: a path component that is an index into a container (``layers.3``, ``features.12``): repeated blocks share a role
_INDEX = re.compile(r"(?<=\.)\d+(?=\.|/|$)|^\d+(?=\.|/|$)")


def activation_role(name: str, kind: str) -> str:
    """The place of an activation in its block, the same in every repeat of the block: the name with the container
    indices wildcarded, and its kind (``model.layers.3.mlp.act_fn/gelu#0`` -> ``model.layers.*.mlp.act_fn/gelu#0``)."""
    return f"{_INDEX.sub('*', name)}|{kind}"


def _within_role_ratio(chain: list[tuple[str, float]], depths: list[int], roles: list[str]) -> float:
    """:func:`geometric_ratio` with one intercept per role (:func:`activation_role`): ``log v = a_role + b l``.

    Activations in different roles sit at different scales by design: Gemma 2's soft-caps ``c tanh(s / c)`` see the
    attention scores divided by the cap 50 (variance about 1e-8) and the logits divided by 30 (about 3e-5), between
    MLP GELUs that see about 0.025. A line through the interleaved chain reads the offsets between the roles as
    growth with depth. The slope is fitted on the variation within each role across the repeated blocks (the
    fixed-effects estimator); a chain with one role (a plain stack) gets the plain fit. Where no role is seen at two
    depths there is no variation within a role to fit, and the plain fit is returned.
    """
    rank = {d: i for i, d in enumerate(sorted(set(depths)))}
    groups: dict[str, list[tuple[int, float]]] = {}
    for (_, v), d, r in zip(chain, depths, roles):
        groups.setdefault(r, []).append((rank[d], math.log(max(v, 1e-45))))
    sxy = sxx = 0.0
    for points in groups.values():
        xbar = sum(x for x, _ in points) / len(points)
        ybar = sum(y for _, y in points) / len(points)
        sxy += sum((x - xbar) * (y - ybar) for x, y in points)
        sxx += sum((x - xbar) ** 2 for x, _ in points)
    if sxx == 0:
        return geometric_ratio([max(v, 1e-45) for _, v in chain], depths)
    return math.exp(sxy / sxx * (len(rank) - 1))


def activation_depth_trend(stats, th) -> tuple[str, float, list[tuple[str, float]], list[int]] | None:
    """``(code, ratio, chain, depths)`` where the pre-activation variance shrinks (``vanishing_activations``) or
    grows (``exploding_activations``) along depth past ``activation_var_ratio`` (the within-role fit,
    :func:`_within_role_ratio`, in the direction of the first depth to the last); None where it does neither.

    The one predicate ``activation_variance_with_depth`` reports and ``learning_rate_too_low`` reads as another
    cause of small steps (tiny signals, not the rate)."""
    chain = [(name, float(a.input.var)) for name, a in by_depth(stats.activations) if finite(a.input.var)]
    depths = [stats.activations[name].depth for name, _ in chain]
    if len(chain) < th.depth_min_layers or len(set(depths)) < 2:
        return None
    ratio = _within_role_ratio(chain, depths, [activation_role(n, stats.activations[n].kind) for n, _ in chain])
    code = ("vanishing_activations" if ratio < 1 / th.activation_var_ratio else
            "exploding_activations" if ratio > th.activation_var_ratio else None)
    if code is None or (_end_ratio(chain, depths) > 1) != (ratio > 1):
        return None       # not a trend: the line's direction is not the one from the first depth to the last
    return code, ratio, chain, depths


@rule("vanishing_activations", "exploding_activations", requires=("activations",))
def activation_variance_with_depth(stats, th):
    """Pre-activation variance shrinking or growing geometrically along depth.

    Shrinking (``vanishing_activations``) is a warning only where its cost shows: a loss that shed less
    than ``trains_loss_drop`` of its start; without a loss trend (``checkup``), or on a loss that falls,
    it is info with the evidence kept. Growing is a warning at init (``checkup``: large pre-activations
    saturate and overflow from the first forward) and wherever its cost shows: a loss that shed less than
    ``trains_loss_drop`` of its start (measured against the label entropy for classification, so a loss
    falling from a huge start counts only below the prior), a non-finite loss, or a growing layer's
    saturating activation saturated at ``saturated_warning`` or more. A network that grew its activations
    while the loss fell, with nothing saturated (a regression whose outputs grew to its raw targets' scale),
    trains through it: info, with the evidence.

    Activations at one depth (the gates, candidate and cell of one LSTM/GRU layer, computed side by
    side) are fitted as measurements of that depth, not as successive layers (:func:`geometric_ratio`),
    and each role in a repeated block keeps its own scale: the trend is the one within roles
    (:func:`_within_role_ratio`).

    A trend is claimed only where the variance moved the same way from the first depth to the last as
    the fitted line says. Where normalization layers reset the scale part-way (a conv stem whose
    variance shrinks under BatchNorm's epsilon, then LayerNorm'd transformer blocks: MobileViT, whose
    BatchNorm weights start at N(0, 0.02^2)), the profile is a V and one line through it can point up
    while the last activation's variance sits below the first's: neither growth nor shrinkage along depth.
    """
    trend = activation_depth_trend(stats, th)
    if trend is None:
        return []
    code, ratio, chain, depths = trend
    evidence = {"last_over_first_variance": ratio, "threshold": th.activation_var_ratio, "layers": len(chain),
                "depths": len(set(depths)), "first_variance": chain[0][1], "last_variance": chain[-1][1],
                "variance_by_layer": {n: v for n, v in chain}}
    severity = "warning"
    drop = loss_drop(stats)
    if code == "vanishing_activations" and (drop is None or drop >= th.trains_loss_drop):
        severity = "info"             # a shrinking signal costs only if learning stalls: shown by the loss
        evidence.update(loss_drop=drop, not_a_warning=(
            f"the loss shed {drop:.0%} of its start: this run trains through it" if drop is not None else
            "no loss trend yet (checkup, or a short run): PyTorch's default init shrinks a ReLU stack's variance "
            "about 3x per layer and such stacks train; the loss under watch() tells whether it costs this one"))
    saturated = {n: x for n, _ in chain if (x := saturated_fraction(stats.activations[n])) is not None}
    if (code == "exploding_activations" and drop is not None and drop >= th.trains_loss_drop
            and all(x < th.saturated_warning for x in saturated.values())):
        severity = "info"             # grown while the loss fell, nothing saturated: no cost shown in this run
        evidence.update(loss_drop=drop, saturated_fraction_by_layer=saturated, not_a_warning=(
            f"the loss shed {drop:.0%} of its start and no growing layer's activation saturates: this run trains "
            "through it"))
    return [finding(code, severity, [n for n, _ in chain], evidence,
                    seen={"layers": len(chain), "values": sum(stats.activations[n].input.count for n, _ in chain),
                          "sampled_steps": stats.sampled_steps},
                    confidence=f"a geometric trend over {len(chain)} activations at {len(set(depths))} depths, "
                               f"{abs(math.log10(ratio)):.1f} decades first to last")]
