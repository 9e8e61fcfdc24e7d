"""Doctor rules as pure functions of hand-built MonitorStats: each fires past its threshold and not before."""
from __future__ import annotations

import json
import math

import pytest

from impediments.doctor import CODES, RULES, Finding, Report, Thresholds, diagnose
from impediments.doctor.rules.base import geometric_ratio

from impediments.monitor import schema as S
from impediments.report import render_doctor_html


def _make(cls_name, **kw):
    return getattr(S, cls_name)(**kw)


def moments(mean=0.0, var=1.0, count=1000):
    return _make("MomentStats", count=count, mean=mean, var=var, min=-3.0, max=3.0, nonfinite=0)


def act(name, kind="relu", depth=0, units=10, dead=(), sat=0.5, lin=0.3, in_var=1.0, unit_total=640):
    edges = [-1.0, 0.0, 1.0]
    return _make("ActivationStats", name=name, kind=kind, depth=depth, samples=10, output=moments(),
                 input=moments(var=in_var), histogram=_make("Histogram", edges=edges, counts=[1, 2]),
                 saturated_fraction=sat, linear_fraction=lin, active_fraction=1 - sat - lin, units=units,
                 unit_active_counts=[0 if i in dead else unit_total // 2 for i in range(units)], unit_total=unit_total,
                 dead_units=list(dead))


def layer(depth, grad_var=1.0, kind="Linear", positions=1):
    return _make("LayerOutputStats", depth=depth, kind=kind, output=moments(), grad_var=grad_var, positions=positions)


def param(module, grad_norm=0.1, grad_max=0.2, wnorm=1.0, upd=1e-3):
    return _make("ParamStats", module=module, grad_norm=grad_norm, grad_norm_max=grad_max, weight_norm=wnorm,
                 grad_to_weight=grad_norm / wnorm if wnorm else math.inf, update_to_weight=upd, samples=5)


def bn(values=64, training=10, running=0, frozen=False, preceded_by=None, wd=None, feeding="fc1"):
    return _make("BatchNormStats", kind="BatchNorm1d", values_per_channel=values, training_forwards=training,
                 running_stats_forwards_in_training=running, frozen=frozen, preceded_by=preceded_by,
                 preceded_by_name="drop" if preceded_by else None, feeding_layer=feeding, feeding_weight_decay=wd,
                 batch_mean_vs_running=None, batch_var_vs_running=None)


def loss(means, count=100, nonfinite=None):
    return _make("LossStats", count=count, first=means[0], last=means[-1], min=min(means), window_means=list(means),
                 first_nonfinite_step=nonfinite)


def loss_windows(means, span=10):
    """Windows of ``span`` steps from step 0 carrying the given mean losses."""
    return [_make("Window", start_step=i * span, end_step=(i + 1) * span, loss_mean=m) for i, m in enumerate(means)]


def stats(**kw):
    base = dict(schema_version=1, steps=100, sampled_steps=100, model_training_steps=100, activations={}, layers={},
                params={}, symmetry={}, batchnorm={}, inputs=None, loss=None, nonfinite=None, windows=[],
                optimizer=None)
    base.update(kw)
    if base["loss"] is not None and "windows" not in kw:
        base["windows"] = loss_windows(base["loss"].window_means, span=max(1, base["loss"].count //
                                                                          len(base["loss"].window_means)))
    return _make("MonitorStats", **base)


def codes(s, th=None):
    return diagnose(s, th).codes


def healthy_acts(n=4, kind="relu"):
    return {f"a{i}": act(f"a{i}", kind=kind, depth=i) for i in range(n)}


# --------------------------------------------------------------------------------------------- catalogue
def test_every_code_has_a_rule_and_experiment():
    emitted = {c for r in RULES for c in r.codes}
    assert emitted == set(CODES)
    assert all(CODES[c].experiment for c in CODES)


def test_empty_stats_give_no_findings_and_list_skipped_rules():
    report = diagnose(stats())
    assert report.findings == []
    assert "diverging_loss" in report.skipped and "loss" in report.skipped["diverging_loss"]
    assert report.exit_code == 0


# --------------------------------------------------------------------------------------------- dead units
@pytest.mark.parametrize("n_dead,expected", [(0, None), (1, "info"), (2, "info"), (3, "warning"), (6, "warning"),
                                             (7, "error"), (10, "error")])
def test_dead_units_grades_around_thresholds(n_dead, expected):
    """Graded on a loss that never moved (the cost is shown); between dead_warning and dead_error the same
    layer is info on a loss that fell by half, or with no loss trend at all (the live units carry the signal)."""
    flat = loss([2.3, 2.3, 2.3, 2.3, 2.3, 2.3])
    s = stats(activations={"fc.act": act("fc.act", units=10, dead=range(n_dead))}, loss=flat)
    found = diagnose(s).by_code("dead_units")
    assert [f.severity for f in found] == ([expected] if expected else [])
    if expected:
        assert found[0].where == ["fc.act"]
        assert found[0].evidence["layers"]["fc.act"]["dead_fraction"] == pytest.approx(n_dead / 10)
        assert "impediments reproduce dead_bias" in found[0].remedy
    for trend in (loss([2.3, 1.8, 1.4, 1.2, 1.1, 1.0]), None):
        s = stats(activations={"fc.act": act("fc.act", units=10, dead=range(n_dead))}, loss=trend)
        cheap = {"warning": "info"}.get(expected, expected)
        assert [f.severity for f in diagnose(s).by_code("dead_units")] == ([cheap] if cheap else [])


def test_a_layer_that_passes_almost_nothing_is_dead_whatever_its_siblings_say():
    """The module's dead-bias case: 87 of 128 units never active, 41 active 1-5 times in 480 values; the sibling
    test calls the silence chance (the siblings are near-silent too); the layer's active rate decides."""
    counts = [0] * 87 + [1 + i % 5 for i in range(41)]
    a = act("fc.act", units=128, unit_total=480)
    a.unit_active_counts = counts
    a.dead_units = list(range(87))
    [f] = diagnose(stats(activations={"fc.act": a})).by_code("dead_units")
    rate = sum(counts) / (128 * 480)
    assert f.severity == "error" and f.evidence["layers"]["fc.act"]["layer_active_rate"] == pytest.approx(rate)
    assert f.evidence["layers"]["fc.act"]["dead_fraction"] == 1.0          # 5/480 is below 2% of the values
    below = diagnose(stats(activations={"fc.act": a}), {"dead_layer_rate": rate / 2}).by_code("dead_units")
    assert "error" not in [g.severity for g in below]                       # the threshold acts


def test_dead_units_need_enough_values_and_a_relu_like_kind():
    few = stats(activations={"a": act("a", dead=range(10), unit_total=8)})
    assert "dead_units" not in codes(few)
    sigmoid = stats(activations={"a": act("a", kind="sigmoid", dead=range(10))})
    assert "dead_units" not in codes(sigmoid)


def test_dead_units_from_last_window():
    # 10 units active on half their 640 values over the run; in the last window (64 values each) 8 were silent:
    # a unit active on 320/576 of its values before is silent over 64 examples with probability (1 - 0.56)^64
    w = _make("Window", start_step=90, end_step=100, loss_mean=None, dead_fraction={"a": 0.8},
              unit_values={"a": 64}, silent_units={"a": list(range(8))})
    s = stats(activations={"a": act("a")}, windows=[w])
    [f] = diagnose(s).by_code("dead_units")
    ev = f.evidence["layers"]["a"]
    assert f.severity == "error" and ev["window_dead_fraction"] == 0.8 and ev["window"] == [90, 100]
    assert ev["dead_fraction"] == 0.0 and "never active over all 640 examples" in ev["whole_run"]
    # the summary says which number comes from which window, and what the whole run shows
    assert f.evidence["max_dead_fraction"] == 0.8 and f.evidence["max_whole_run_dead_fraction"] == 0.0
    assert f.evidence["from_windows"] == {"a": [90, 100]}


def test_dead_units_silent_in_a_short_window_are_not_dead_when_sparse():
    # squeeze-excitation ReLU: 4 units, one value per example; a unit active on 10% of the examples before is
    # silent over a 16-example window with probability 0.9^16 = 0.19: not evidence that it died
    a = act("se.act", units=4, unit_total=160)
    a.unit_active_counts = [16, 80, 80, 80]
    w = _make("Window", start_step=9, end_step=10, loss_mean=None, unit_values={"se.act": 16},
              silent_units={"se.act": [0]})
    assert "dead_units" not in codes(stats(activations={"se.act": a}, windows=[w]))


def test_dead_units_chance_probability_matches_closed_form_and_brute_force():
    from math import comb

    from impediments.doctor.fractions import binomial_tail, chance_silent

    assert chance_silent([0.05], 48) == pytest.approx(0.95 ** 48) and 0.08 < chance_silent([0.05], 48) < 0.09
    assert chance_silent([], 10) == pytest.approx(2 ** -10)
    for n, q, k in [(10, 0.3, 4), (84, 0.01, 11), (4, 0.5, 1), (50, 1e-4, 0)]:
        brute = sum(comb(n, i) * q ** i * (1 - q) ** (n - i) for i in range(k, n + 1))
        assert binomial_tail(n, q, k) == pytest.approx(brute, rel=1e-9)


def test_dead_units_say_not_enough_data_instead_of_guessing():
    # LeNet-5's fc: siblings active on 2 of 48 examples (rate (2 - 1)/48 once the selection of "seen active"
    # is removed), so each unit is silent by chance with probability (1 - 1/48)^48 = 0.36: 11 of 84 is chance
    a = act("fc.act", units=84, unit_total=48)
    a.unit_active_counts = [0] * 11 + [2] * 73
    a.dead_units = list(range(11))
    report = diagnose(stats(activations={"fc.act": a}))
    assert not report.by_code("dead_units")
    assert "not enough data yet" in report.skipped["dead_units"] and "fc.act" in report.skipped["dead_units"]
    # siblings active on 5 of 48: q = (1 - 4/48)^48 = 0.015, so a quarter silent is no accident
    a.unit_active_counts = [0] * 21 + [5] * 63
    flat = loss([2.3] * 6)                   # a loss that never moved: the cost that makes it a warning
    assert diagnose(stats(activations={"fc.act": a}, loss=flat)).by_code("dead_units")[0].severity == "warning"
    # over 2000 examples 11 silent units are no accident either (a small fraction: info)
    a.unit_total, a.unit_active_counts = 2000, [0] * 11 + [100] * 73
    [f] = diagnose(stats(activations={"fc.act": a})).by_code("dead_units")
    assert f.severity == "info" and f.evidence["layers"]["fc.act"]["chance_of_this_many"] < 0.01


def test_thresholds_are_overridable():
    s = stats(activations={"a": act("a", units=10, dead=range(3))}, loss=loss([2.3] * 6))
    assert diagnose(s).by_code("dead_units")[0].severity == "warning"
    assert diagnose(s, {"dead_error": 0.3}).by_code("dead_units")[0].severity == "error"
    with pytest.raises(ValueError, match="dead_eror.*valid"):
        diagnose(s, {"dead_eror": 0.3})
    with pytest.raises(ValueError, match="non-negative"):
        Thresholds(dead_error=-1)


# --------------------------------------------------------------------------------------------- saturation / linear
@pytest.mark.parametrize("sat,expected", [(0.49, None), (0.5, "warning"), (0.89, "warning"), (0.9, "error")])
def test_saturated_units_thresholds(sat, expected):
    s = stats(activations={"h": act("h", kind="tanh", sat=sat, lin=0.0)})
    assert [f.severity for f in diagnose(s).by_code("saturated_units")] == ([expected] if expected else [])


def test_relu_negative_inputs_are_not_saturation():
    s = stats(activations={"h": act("h", kind="relu", sat=0.95, lin=0.0)})
    assert "saturated_units" not in codes(s)


@pytest.mark.parametrize("kind,sat,lin,fires", [("tanh", 0.0, 0.99, True), ("tanh", 0.0, 0.97, False),
                                                ("sigmoid", 0.0, 0.985, True), ("relu", 0.01, 1.0, True),
                                                ("relu", 0.3, 1.0, False), ("identity", 0.0, 1.0, False)])
def test_linear_regime(kind, sat, lin, fires):
    w = [_make("Window", start_step=i * 10, end_step=i * 10 + 10, loss_mean=None,
               region_fractions={"h": [sat, lin, 1 - sat - lin]}) for i in range(10)]
    s = stats(activations={"h": act("h", kind=kind, sat=sat, lin=lin)}, windows=w)
    assert ("linear_regime" in codes(s)) is fires


def test_linear_regime_only_when_it_persists_and_never_for_gates():
    def windows(later_lin):
        return [_make("Window", start_step=s, end_step=s + 6, loss_mean=None,
                      region_fractions={"h": [0.0, 1.0 if s < 12 else later_lin, 0.0]}) for s in range(0, 60, 6)]
    tanh = act("h", kind="tanh", sat=0.0, lin=0.99)
    [f] = diagnose(stats(activations={"h": tanh}, windows=windows(0.99))).by_code("linear_regime")
    assert f.evidence["layers"]["h"]["role"] == "hidden" and f.evidence["layers"]["h"]["from_step"] == 12
    assert "linear_regime" not in codes(stats(activations={"h": tanh}, windows=windows(0.9)))   # training left it
    # at init (a checkup: no window after the transient) it is what LeCun et al. 1998 recommend: not judged yet
    init = diagnose(stats(steps=1, activations={"h": tanh}, windows=windows(0.99)[:2]))
    assert "linear_regime" not in init.codes and "as recommended at init" in init.skipped["linear_regime"]
    gate = act("se/sigmoid#0", kind="sigmoid", sat=0.0, lin=1.0)
    gate.gate = True
    assert "linear_regime" not in codes(stats(activations={"se/sigmoid#0": gate}, windows=windows(1.0)))


@pytest.mark.parametrize("last,severity", [(0.95, "warning"), (0.76, "warning"), (0.70, "info"), (0.3, "info")])
def test_linear_regime_is_a_warning_only_where_the_loss_stalls(last, severity):
    """Hidden layers composing to a near-linear map cost the run only where the loss shows it (issue 24):
    shed under trains_loss_drop (0.25) of its start, a warning; more, info with the evidence kept."""
    w = [_make("Window", start_step=i * 10, end_step=i * 10 + 10, loss_mean=1.0 + (last - 1.0) * i / 9,
               region_fractions={"h": [0.0, 1.0, 0.0]}) for i in range(10)]
    means = [x.loss_mean for x in w]
    s = stats(activations={"h": act("h", kind="tanh", sat=0.0, lin=1.0)}, windows=w, loss=loss(means))
    [f] = diagnose(s).by_code("linear_regime")
    drop = 1 - sum(means[-3:]) / 3
    assert f.severity == severity and f.evidence["loss_drop"] == pytest.approx(drop)
    assert ("not_a_warning" in f.evidence["layers"]["h"]) is (severity == "info")
    # no loss recorded: no cost shown, info
    [f] = diagnose(stats(activations={"h": act("h", kind="tanh", sat=0.0, lin=1.0)}, windows=w)).by_code(
        "linear_regime")
    assert f.severity == "info"


def test_linear_regime_leaves_the_output_head_out():
    w = [_make("Window", start_step=i * 10, end_step=i * 10 + 10, loss_mean=1.0,
               region_fractions={"h": [0.0, 1.0, 0.0], "head": [0.0, 1.0, 0.0]}) for i in range(10)]
    head = act("head", kind="sigmoid", depth=1, sat=0.0, lin=1.0)
    head.model_output = True
    s = stats(activations={"h": act("h", kind="tanh", sat=0.0, lin=1.0), "head": head}, windows=w,
              loss=loss([1.0] * 10))
    [f] = diagnose(s).by_code("linear_regime")
    assert f.where == ["h"] and f.evidence["output_heads_not_judged"] == ["head"] and f.severity == "warning"
    assert "linear_regime" not in codes(stats(activations={"head": head}, windows=w, loss=loss([1.0] * 10)))


# --------------------------------------------------------------------------------------------- depth trends
def test_geometric_ratio_matches_closed_form():
    assert geometric_ratio([1.0, 0.5, 0.25, 0.125]) == pytest.approx(0.125)
    assert geometric_ratio([3.0, 3.0, 3.0]) == pytest.approx(1.0)


@pytest.mark.parametrize("factor,code", [(0.2, "vanishing_activations"), (0.22, None), (4.5, None),
                                         (5.0, "exploding_activations")])
def test_activation_variance_with_depth(factor, code):
    acts = {f"a{i}": act(f"a{i}", depth=i, in_var=factor ** i) for i in range(4)}
    found = codes(stats(activations=acts)) & {"vanishing_activations", "exploding_activations"}
    assert found == ({code} if code else set())


def test_activation_depth_rule_needs_three_layers():
    acts = {f"a{i}": act(f"a{i}", depth=i, in_var=1e-6 ** i) for i in range(2)}
    assert "vanishing_activations" not in codes(stats(activations=acts))


@pytest.mark.parametrize("factor,code", [(10.5, "vanishing_gradients"), (9.5, None), (1 / 9.5, None),
                                         (1 / 10.5, "exploding_gradients")])
def test_gradient_energy_with_depth(factor, code):
    # hidden layers 0..3 with grad_var = factor ** d (output side / input side = factor ** 3); output layer ignored
    layers = {f"l{i}": layer(i, grad_var=factor ** i) for i in range(4)}
    layers["out"] = layer(4, grad_var=1e-30)
    found = codes(stats(layers=layers)) & {"vanishing_gradients", "exploding_gradients"}
    assert found == ({code} if code else set())


def test_gradient_depth_rule_leaves_out_batchnorm_fed_layers_and_heads():
    # BN nets: d loss / d conv output grows toward the input at init (Yang et al. 2019) but those weights are
    # scale-invariant; a pooler/classifier after the positions were pooled is not the last hidden layer
    layers = {f"conv{i}": layer(i, grad_var=10.0 ** -i, kind="Conv2d", positions=64) for i in range(6)}
    layers["fc"] = layer(6, positions=1)
    assert "exploding_gradients" in codes(stats(layers=layers))
    bns = {f"bn{i}": bn(feeding=f"conv{i}") for i in range(6)}
    report = diagnose(stats(layers=layers, batchnorm=bns))
    assert "exploding_gradients" not in report.codes and "feed BatchNorm" in report.skipped["vanishing_gradients"]
    body = {f"enc{i}": layer(i, grad_var=1.0, positions=32) for i in range(4)}
    body.update(pooler=layer(4, grad_var=1e4, positions=1), cls=layer(5, grad_var=1e5, positions=1))
    assert "vanishing_gradients" not in codes(stats(layers=body))
    body["pooler"].positions = 32                 # run on every position: then it is a hidden layer of the body
    assert "vanishing_gradients" in codes(stats(layers=body))


def test_gradient_spread_under_adam_needs_spread_updates():
    layers = {f"l{i}": layer(i, grad_var=11.0 ** i) for i in range(4)}
    layers["out"] = layer(9)
    adam = {"type": "AdamW", "groups": []}
    even = {f"l{i}.weight": param(f"l{i}", upd=2.7e-2) for i in range(4)}
    assert "vanishing_gradients" not in codes(stats(layers=layers, params=even, optimizer=adam))
    spread = {f"l{i}.weight": param(f"l{i}", upd=1e-5 * 20.0 ** i) for i in range(4)}
    assert "vanishing_gradients" in codes(stats(layers=layers, params=spread, optimizer=adam))
    assert "vanishing_gradients" in codes(stats(layers=layers, params=even, optimizer={"type": "SGD", "groups": []}))


def test_gradient_energy_accounts_for_layer_size():
    # per-element gradient variance 16x smaller per layer towards the input, but 16x more values per example
    # (wider / larger feature maps): the energy n_l Var(g_l) is level, so nothing vanishes
    layers = {f"l{i}": layer(i, grad_var=16.0 ** (i - 3)) for i in range(4)}
    for i in range(4):
        layers[f"l{i}"].output.count = 10 * 16 ** (3 - i)
    layers["out"] = layer(4)
    assert codes(stats(layers=layers)) == set()
    for i in range(4):
        layers[f"l{i}"].output.count = 10          # same sizes: now it is a 4096x drop
    assert "vanishing_gradients" in codes(stats(layers=layers))


def test_overall_gradients():
    tiny = stats(params={"fc.weight": param("fc", grad_norm=1e-9, grad_max=1e-9)})
    assert diagnose(tiny).by_code("vanishing_gradients")[0].severity == "error"
    ok = stats(params={"fc.weight": param("fc", grad_norm=1e-3, grad_max=1e-3)})
    assert codes(ok) == set()
    jump = stats(params={"fc.weight": param("fc", upd=2.0)})
    [f] = diagnose(jump).by_code("exploding_gradients")
    assert f.where == ["fc.weight"] and f.evidence["max_update_to_weight"] == 2.0
    assert "exploding_gradients" not in codes(stats(params={"fc.weight": param("fc", upd=0.5)}))
    # a zero-initialized weight's update ratio is meaningless, and biases are not judged by it
    assert codes(stats(params={"fc.weight": param("fc", upd=5.0, wnorm=0.0), "fc.bias": param("fc", upd=5.0)})) == set()
    assert "exploding_gradients" in codes(stats(params={"fc.weight": param("fc", grad_max=1e5)}))


# --------------------------------------------------------------------------------------------- symmetry
def test_symmetric_units_skip_output_layer_and_grade_by_step():
    layers = {"hidden": layer(0), "out": layer(1)}
    sym = {"hidden": _make("SymmetryStats", units=8, groups=[list(range(8))], checked_at_step=0),
           "out": _make("SymmetryStats", units=10, groups=[list(range(10))], checked_at_step=0)}
    [f] = diagnose(stats(layers=layers, symmetry=sym)).by_code("symmetric_units")
    assert f.where == ["hidden"] and f.severity == "warning" and f.evidence["largest_group"] == 8
    sym["hidden"] = _make("SymmetryStats", units=8, groups=[[0, 1]], checked_at_step=50)
    [f] = diagnose(stats(layers=layers, symmetry=sym)).by_code("symmetric_units")
    assert f.severity == "error"
    sym["hidden"] = _make("SymmetryStats", units=8, groups=[], checked_at_step=50)
    assert "symmetric_units" not in codes(stats(layers=layers, symmetry=sym))


# --------------------------------------------------------------------------------------------- inputs
def _inputs(mean, var, count=1000, lo=None, hi=None):
    return _make("InputStats", count=count, mean=list(mean), var=list(var), min=list(lo or []), max=list(hi or []))


def test_uncentered_inputs_energy_and_sign():
    # energy = m^2 / (m^2 + v): 0.5 exactly at m = 1, v = 1
    assert "uncentered_inputs" in codes(stats(inputs=_inputs([1.0] * 8, [1.0] * 8)))
    assert "uncentered_inputs" not in codes(stats(inputs=_inputs([0.9] * 8, [1.0] * 8)))
    # mixed signs: large means but no shared sign
    assert "uncentered_inputs" not in codes(stats(inputs=_inputs([3.0, -3.0] * 4, [1.0] * 8)))
    assert "uncentered_inputs" in codes(stats(inputs=_inputs([-3.0] * 8, [1.0] * 8)))
    # too few examples: skip
    assert codes(stats(inputs=_inputs([3.0] * 8, [1.0] * 8, count=10))) == set()


def test_unequal_input_scales_ignores_constant_features():
    assert "unequal_input_scales" in codes(stats(inputs=_inputs([0.0] * 3, [1.0, 1.0, 1e3])))
    assert "unequal_input_scales" not in codes(stats(inputs=_inputs([0.0] * 3, [1.0, 1.0, 999.0])))
    assert "unequal_input_scales" not in codes(stats(inputs=_inputs([0.0] * 3, [0.0, 1.0, 2.0])))


def test_unequal_input_scales_says_nothing_about_near_constant_features():
    # a border pixel: background on all but a few examples (Var / range^2 = 3.9e-5 / 1.0 < 1%), next to pixels
    # that vary on every example (Var / range^2 = 1/16): not an impediment
    var, lo, hi = [3.9e-5, 0.5, 1.0], [-0.4, -2.0, -3.0], [0.6, 2.0, 3.0]
    [f] = [f for f in diagnose(stats(inputs=_inputs([0.0] * 3, var, lo=lo, hi=hi))).findings] or [None]
    assert f is None
    # the same variance on a feature that varies on every example (small units) is an impediment
    lo[0], hi[0] = -0.025, 0.025
    [f] = diagnose(stats(inputs=_inputs([0.0] * 3, var, lo=lo, hi=hi))).by_code("unequal_input_scales")
    assert f.evidence["near_constant_features_left_out"] == 0 and f.evidence["min_feature"] == 0


# --------------------------------------------------------------------------------------------- BatchNorm
def test_bn_rules():
    assert diagnose(stats(batchnorm={"bn": bn(values=8)})).by_code("bn_small_batch")[0].severity == "warning"
    assert diagnose(stats(batchnorm={"bn": bn(values=2)})).by_code("bn_small_batch")[0].severity == "error"
    assert "bn_small_batch" not in codes(stats(batchnorm={"bn": bn(values=32)}))
    [f] = diagnose(stats(batchnorm={"bn": bn(preceded_by="Dropout")})).by_code("dropout_before_bn")
    assert f.where == ["drop", "bn"]
    assert "dropout_before_bn" not in codes(stats(batchnorm={"bn": bn(preceded_by="Linear")}))
    assert diagnose(stats(batchnorm={"bn": bn(running=5)})).by_code("bn_inference_mode_in_training")[0].severity \
        == "warning"
    assert diagnose(stats(batchnorm={"bn": bn(running=5, frozen=True)})).by_code(
        "bn_inference_mode_in_training")[0].severity == "info"
    [f] = diagnose(stats(batchnorm={"bn": bn(wd=5e-4)})).by_code("weight_decay_with_bn")
    assert f.severity == "info" and f.where == ["fc1"]
    assert codes(stats(batchnorm={"bn": bn(wd=0.0)})) == set()


# --------------------------------------------------------------------------------------------- loss, non-finite
def test_loss_rules():
    # windows of 10 steps from step 0: the first two (steps 0-19) start inside the 12-step transient
    assert "diverging_loss" in codes(stats(loss=loss([2.3, 2.3, 3.5, 3.5, 3.5])))      # 3.5 / 2.3 >= 1.5
    assert "diverging_loss" not in codes(stats(loss=loss([2.3, 2.3, 3.4, 3.4, 3.4])))
    spike = diagnose(stats(loss=loss([2.3, 2.3, 24.0, 2.0, 1.9]))).by_code("diverging_loss")   # 24 > 10 x 2.3
    assert [f.severity for f in spike] == ["warning"] and spike[0].evidence["peak_over_first"] > 10
    assert "diverging_loss" not in codes(stats(loss=loss([2.3, 2.3, 22.0, 2.0, 1.9])))
    assert diagnose(stats(loss=loss([2.3, 2.3, 2.3], nonfinite=7))).by_code("diverging_loss")[0].evidence[
        "first_nonfinite_step"] == 7
    assert "loss_plateau" in codes(stats(loss=loss([2.3, 2.29, 2.3])))
    assert "loss_plateau" in codes(stats(loss=loss([2.3, 2.28, 2.26])))       # 1.7% < 2%
    assert "loss_plateau" not in codes(stats(loss=loss([2.3, 2.25, 2.2])))    # 4.3%
    # thirds of the windows, not single noisy windows
    assert "loss_plateau" in codes(stats(loss=loss([2.3, 2.0, 2.3, 2.31, 2.25, 2.3])))
    assert "loss_plateau" not in codes(stats(loss=loss([2.3, 2.3, 2.3], count=20)))
    assert codes(stats(loss=loss([2.3, 1.0, 0.5]))) == set()


def test_loss_transient_of_the_first_dozen_steps_is_no_verdict():
    # PNASNet after 12 steps: the loss rose over the first steps (momentum building up), nothing after them yet
    short = diagnose(stats(steps=12, loss=loss([2.3, 2.6, 2.9, 3.2], count=12)))
    assert "diverging_loss" not in short.codes
    assert "not enough steps yet" in short.skipped["diverging_loss"] and "12 steps" in short.skipped["diverging_loss"]
    # the same rise, then a fall, over 60 steps: no verdict either
    assert "diverging_loss" not in codes(stats(loss=loss([2.3, 3.4, 3.0, 2.2, 2.0, 1.8], count=60)))
    # a rise that outlasts the transient (3x the start for steps 20-39), then recovers: a warning
    rose = diagnose(stats(loss=loss([3.5, 12.0, 12.0, 11.0, 6.0, 4.0], count=60))).by_code("diverging_loss")
    assert [f.severity for f in rose] == ["warning"] and rose[0].evidence["first_third_over_first"] > 1.5


def test_non_finite_names_where_and_step():
    s = stats(nonfinite=_make("NonFinite", step=12, where="block.2.act", kind="activation"))
    [f] = diagnose(s).findings
    assert f.code == "non_finite" and f.where == ["block.2.act"] and f.evidence["step"] == 12
    assert f.severity == "error" and diagnose(s).exit_code == 1


# --------------------------------------------------------------------------------------------- report
def _mixed_report():
    return diagnose(stats(activations={"a": act("a", units=10, dead=range(8)), "b": act("b", units=10, dead=[1])},
                          batchnorm={"bn": bn(wd=1e-4)}, loss=loss([2.3, 2.3, 2.3])))


def test_report_order_codes_exit_and_json_roundtrip(tmp_path):
    report = _mixed_report()
    # causes first: the dead units explain the plateau, which follows them and is marked as their consequence
    assert [(f.code, f.severity, f.caused_by) for f in report.findings] == [
        ("dead_units", "error", None), ("dead_units", "info", None), ("loss_plateau", "warning", "dead_units"),
        ("weight_decay_with_bn", "info", None)]
    assert report.findings[2].remedy.startswith("Caused by dead_units")
    assert report.codes == {"dead_units", "weight_decay_with_bn", "loss_plateau"}
    assert report.exit_code == 1
    path = tmp_path / "r.json"
    report.to_json(path)
    doc = json.loads(path.read_text())
    assert doc["schema"] == "impediments.doctor.report" and doc["version"] == 1
    assert doc["summary"]["counts"] == {"info": 2, "warning": 1, "error": 1}
    back = Report.from_dict(doc)
    assert [f.to_dict() for f in back.findings] == [f.to_dict() for f in report.findings]
    assert back.stats == report.stats          # MonitorStats round-trips through the report JSON
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_info_only_report_exits_zero():
    report = diagnose(stats(batchnorm={"bn": bn(wd=1e-4)}))
    assert report.codes == {"weight_decay_with_bn"} and report.exit_code == 0


def test_terminal_rendering_lists_findings_and_remedies():
    text = _mixed_report().render(width=1000)
    assert str(_mixed_report()).count("dead_units") >= 2
    for needle in ("severity", "dead_units", "error", "fix:", "impediments reproduce dead_bias", "loss_plateau"):
        assert needle in text
    assert "No impediments found" in str(Report())


def test_report_path_in_missing_folder_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _mixed_report().to_json(tmp_path / "nope" / "r.json")
    assert not (tmp_path / "nope").exists()


def test_finding_validates_code_and_severity():
    with pytest.raises(ValueError, match="valid: dead_units"):
        Finding("dead_unit", "error", [], {}, "", "")
    with pytest.raises(ValueError, match="info, warning, error"):
        Finding("dead_units", "fatal", [], {}, "", "")


def test_json_encodes_non_finite_numbers():
    f = Finding("non_finite", "error", ["x"], {"value": math.inf}, "", "")
    assert json.loads(Report([f]).to_json(include_stats=False))["findings"][0]["evidence"]["value"] == "inf"


# --------------------------------------------------------------------------------------------- HTML
def test_html_is_self_contained_with_findings_first_and_plots(tmp_path):
    import re

    hist = lambda i: [1 + i, 2]  # noqa: E731 - the two bins of act()'s edges
    w = [_make("Window", start_step=i * 10, end_step=i * 10 + 9, loss_mean=2.0, activation_var={"a": 1.0, "b": 0.5},
               dead_fraction={"a": 0.1 * i, "b": 0.0}, grad_norm={"fc.weight": 0.1}, histograms={"a": hist(i)})
         for i in range(3)]
    s = stats(activations={"a": act("a", units=10, dead=range(8)), "b": act("b", kind="tanh", depth=1, sat=0.2)},
              params={"fc.weight": param("fc")}, windows=w)
    path = tmp_path / "r.html"
    html = render_doctor_html(diagnose(s), path)
    assert path.read_text() == html
    assert html.index("<h2>Findings</h2>") < html.index("<img")
    assert html.count("<img") == 5     # distributions, fractions, gradient norms, history, distributions over time
    assert 'alt="distributions over time"' in html
    refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', html)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "http://" not in html and "https://" not in html
    assert "dead_units" in html and "impediments reproduce dead_bias" in html


def test_symmetry_checked_after_a_nan_is_ignored():
    layers = {"hidden": layer(0), "out": layer(1)}
    sym = {"hidden": _make("SymmetryStats", units=8, groups=[list(range(8))], checked_at_step=20)}
    nan = _make("NonFinite", step=12, where="hidden", kind="parameter")
    assert diagnose(stats(layers=layers, symmetry=sym, nonfinite=nan)).codes == {"non_finite"}
    early = _make("NonFinite", step=30, where="hidden", kind="parameter")
    assert "symmetric_units" in diagnose(stats(layers=layers, symmetry=sym, nonfinite=early)).codes


def _everything():
    """Hand-built stats that fire every code at least once."""
    acts = {"d": act("d", units=10, dead=range(10)), "s": act("s", kind="tanh", depth=1, sat=0.95, lin=0.0),
            "l": act("l", kind="tanh", depth=2, sat=0.0, lin=0.99, in_var=1e-8)}
    later = [_make("Window", start_step=s, end_step=s + 10, loss_mean=2.3,
                   region_fractions={"l": [0.0, 0.99, 0.01]}) for s in range(0, 100, 10)]
    mode = _make("ModeStats", eval_forwards=5, eval_only_steps=5, trained_steps=0, batchnorm=1)
    grow = {f"g{i}": act(f"g{i}", depth=10 + i, in_var=10.0 ** i) for i in range(4)}
    layers = {f"l{i}": layer(i, grad_var=11.0 ** i) for i in range(4)}
    layers["out"] = layer(9)
    rev = {f"r{i}": layer(i, grad_var=11.0 ** -i) for i in range(4)}
    rev["out"] = layer(9)
    for r in rev.values():                    # every layer multiplies its input's variance by 64: std 1.0 at fan_in 64
        r.input_at_init, r.output_at_init, r.fan_in = moments(var=1.0), moments(var=64.0), 64
    bns = {"bn": bn(values=2, running=3, preceded_by="Dropout", wd=1e-4)}
    s1 = stats(activations={**acts}, layers=layers, params={"w.weight": param("w", upd=3.0)},
               symmetry={"l0": _make("SymmetryStats", units=4, groups=[[0, 1]], checked_at_step=5)},
               batchnorm=bns, inputs=_inputs([50.0, 50.0, 50.0], [1.0, 1.0, 2e3]), loss=loss([2.3, 2.3, 2.3]),
               nonfinite=_make("NonFinite", step=99, where="d", kind="activation"), windows=later, mode=mode)
    s2 = stats(activations=grow, layers=rev, params={"w.weight": param("w", grad_norm=0.0, grad_max=0.0)},
               loss=loss([2.3, 5.0, 9.0, 9.0, 9.0]))
    return diagnose(s1).findings + diagnose(s2).findings


def test_every_code_fires_and_every_remedy_names_real_functions():
    import importlib
    import re

    findings = _everything()
    # codes shown by a broken example (loop bugs, the output head: ``see: impediments doctor examples/...``) are
    # checked on those examples (tests/test_loop_bugs.py, tests/test_head_rules.py)
    mine = {c for r in RULES if r.fn.__module__ not in ("impediments.doctor.rules.loop", "impediments.doctor.rules.head")
            for c in r.codes if not CODES[c].experiment.endswith(".py")}
    assert {f.code for f in findings} == mine
    for f in findings:
        assert f.explanation and f.remedy and f.where
        assert f.evidence["seen"] and f.evidence["confidence"], f.code      # how much it saw, how sure
        assert re.search(r"see: impediments reproduce [a-z_0-9]+", f.remedy), f.remedy
        for dotted in re.findall(r"\bimpediments(?:\.[A-Za-z_]\w*)+", f.remedy):
            module, _, attr = dotted.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), f"{f.code}: {dotted} does not exist"


@pytest.mark.parametrize("count,fires", [(1, True), (2, True), (3, False)])
def test_nearly_dead_units(count, fires):
    a = act("a", units=10, unit_total=2000)
    a.unit_active_counts = [count] * 8 + [1000] * 2  # active on count/2000 of the values; threshold 1e-3 = 2/2000
    found = diagnose(stats(activations={"a": a})).by_code("dead_units")   # (2 live siblings: the layer passes signal)
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "error" and found[0].evidence["layers"]["a"]["nearly_dead_units"] == 8


def test_doctor_core_never_imports_matplotlib():
    import subprocess
    import sys

    code = ("import sys, impediments.doctor, impediments.cli.doctor; "
            "from impediments.doctor import diagnose; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_input_scales_of_a_conv_net_are_per_channel():
    # two channels of 2x2 pixels; inside a channel a "border" pixel varies 1e4x less, but the conv's shared weights
    # see each channel pooled over positions: E[x^2] = mean(var + mean^2) - mu^2 per channel
    var = [1e-4, 1.0, 1.0, 1.0] * 2
    mean = [0.0] * 8
    conv_first = {"conv": layer(0, kind="Conv2d", positions=4), "fc": layer(1)}
    inputs = _make("InputStats", count=1000, mean=mean, var=var, shape=[2, 2, 2])
    assert "unequal_input_scales" not in codes(stats(inputs=inputs, layers=conv_first))
    assert "unequal_input_scales" in codes(stats(inputs=inputs, layers={"fc1": layer(0), "fc2": layer(1)}))
    from impediments.doctor.rules.inputs import per_channel

    pooled = per_channel(_make("InputStats", count=10, mean=[1.0, 3.0, 0.0, 0.0], var=[1.0, 1.0, 2.0, 2.0],
                               shape=[2, 2]))
    # channel 0 values: two features of mean 1 and 3, var 1 each -> pooled var = (1 + 1 + 1 + 9) / 2 - 2^2 = 2
    assert pooled.mean == [2.0, 0.0] and pooled.var == [2.0, 2.0]
    across_channels = _make("InputStats", count=1000, mean=mean, var=[1e-4] * 4 + [1.0] * 4, shape=[2, 2, 2])
    assert "unequal_input_scales" in codes(stats(inputs=across_channels, layers=conv_first))


def test_bn_small_batch_counts_examples_not_correlated_positions():
    conv_bn = bn(values=2 * 16 * 16)                 # batch 2 of 16x16 feature maps: 512 values, 2 examples
    conv_bn.examples_per_batch = 2
    [f] = diagnose(stats(batchnorm={"bn": conv_bn})).by_code("bn_small_batch")
    assert f.severity == "error" and f.evidence["min_examples_per_channel"] == 2
    conv_bn.examples_per_batch = 32
    assert "bn_small_batch" not in codes(stats(batchnorm={"bn": conv_bn}))
    conv_bn.examples_per_batch = 16                  # Wu & He 2018: 23.7% at batch 16 vs 23.6% at 32
    assert "bn_small_batch" not in codes(stats(batchnorm={"bn": conv_bn}))
    conv_bn.examples_per_batch = 8
    assert diagnose(stats(batchnorm={"bn": conv_bn})).by_code("bn_small_batch")[0].severity == "warning"


def test_a_plateau_after_the_loss_fell_is_info_and_one_that_never_moved_is_a_warning():
    """The windows compared are flat in both; what differs is the first loss: 2.3 (the loss fell 57% before
    the plateau: convergence, info) or 1.0 (it never moved: a stall, warning)."""
    def flat_after(first):
        return stats(loss=_make("LossStats", count=100, first=first, last=1.0, min=1.0, window_means=[1.0] * 6,
                                first_nonfinite_step=None))
    [settled] = diagnose(flat_after(2.3)).by_code("loss_plateau")
    assert settled.severity == "info" and settled.evidence["fell_before_plateau"] == pytest.approx(1 - 1 / 2.3)
    [stall] = diagnose(flat_after(1.0)).by_code("loss_plateau")
    assert stall.severity == "warning" and stall.evidence["never_moved"] is True
    assert diagnose(flat_after(2.3), {"trains_loss_drop": 0.6}).by_code("loss_plateau")[0].severity == "warning"


def test_vanishing_activations_is_a_warning_only_where_the_loss_shows_its_cost():
    acts = {f"g{i}": act(f"g{i}", depth=i, in_var=0.1 ** i) for i in range(4)}      # 1e-3 first to last
    for trend, severity in ((loss([2.3] * 6), "warning"), (loss([2.3, 1.5, 1.0, 0.8, 0.7, 0.6]), "info"),
                            (None, "info")):
        [f] = diagnose(stats(activations=acts, loss=trend)).by_code("vanishing_activations")
        assert f.severity == severity and f.evidence["last_over_first_variance"] == pytest.approx(1e-3)
