"""One source of truth per fact (issue 23 item 4): display names, the JSON convention, the dead and
saturated fractions every view shows, and thresholds that each change a decision."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from impediments import _json
from impediments.activations import MODULE_TYPES, TAXONOMY, display_name, module_kind
from impediments.doctor import Finding, Report, Thresholds, diagnose
from impediments.doctor.fractions import dead_fraction, layer_fractions, saturated_fraction
from impediments.doctor.terminal import module_types
from test_doctor_rules import _inputs, _make, act, bn, layer, loss, param, stats
from test_head_thresholds import ACTING as HEAD_ACTING
from test_lr_too_low_and_linearity import ACTING as LR_ACTING


# ------------------------------------------------------------------------------------------------ display names
def test_every_kind_has_one_module_type_and_display_name():
    assert set(MODULE_TYPES) == set(TAXONOMY)
    for kind, cls in MODULE_TYPES.items():
        assert issubclass(cls, nn.Module) and display_name(kind) == cls.__name__
        if cls.__module__.startswith("torch.nn") and kind not in ("relu6", "celu", "mish"):
            assert module_kind(cls()) == kind           # the catalog reads the same class back as this kind
    assert [display_name(k) for k in ("relu", "leaky_relu", "gelu", "relu6")] == ["ReLU", "LeakyReLU", "GELU", "ReLU6"]
    assert display_name("block/relu#0") == "block/relu#0"


def test_report_names_sequential_children_by_their_display_name():
    s = stats(activations={"1": act("1", kind="relu"), "net/tanh#0": act("net/tanh#0", kind="tanh", depth=1)})
    assert module_types(s) == {"1": "ReLU"}


def test_the_fix_registry_names_only_the_doctors_codes():
    """``remedies_for`` skips a code the doctor does not define, so a misspelled code in the registry would
    leave its remedy untried without a word: every code the registry names is one of ``CODES``."""
    from impediments.doctor import CODES
    from impediments.fix.remedies.registry import REMEDIES

    named = {code for remedy in REMEDIES.values() for code in remedy.codes}
    assert named and named <= set(CODES), sorted(named - set(CODES))


# ------------------------------------------------------------------------------------------------ JSON
def test_json_round_trips_non_finite_numbers_apart_from_null():
    value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "none": None, "x": [1, 2.5, True, "s"],
             "array": np.array([1.0, np.nan]), "tensor": torch.tensor([np.inf, 0.0]), "np": np.float32(0.5),
             "tuple": (1, 2)}
    text = _json.dumps(value)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))      # strict JSON: no NaN literal
    back = _json.loads(text)
    assert math.isnan(back["nan"]) and back["inf"] == math.inf and back["-inf"] == -math.inf and back["none"] is None
    assert back["x"] == [1, 2.5, True, "s"] and back["tuple"] == [1, 2] and back["np"] == 0.5
    assert back["array"][0] == 1.0 and math.isnan(back["array"][1]) and back["tensor"] == [math.inf, 0.0]
    with pytest.raises(TypeError, match="cannot convert object"):
        _json.to_jsonable(object())
    assert _json.to_jsonable(object(), default=lambda o: "obj") == "obj"


def test_the_doctor_writes_the_one_convention():
    report = Report([Finding("non_finite", "error", ["x"], {"value": math.inf, "ratio": math.nan, "none": None},
                             "", "")])
    doc = json.loads(report.to_json(include_stats=False))
    assert doc["findings"][0]["evidence"] == {"value": "inf", "ratio": "nan", "none": None}
    assert _json.from_jsonable(doc["findings"][0]["evidence"])["value"] == math.inf


# ------------------------------------------------------------------------------------------------ fractions
def _relu_with(counts: list[int], unit_total: int, name="fc.act", depth=0):
    a = act(name, units=len(counts), unit_total=unit_total, sat=0.2, depth=depth)
    a.unit_active_counts = list(counts)
    a.dead_units = [i for i, c in enumerate(counts) if c == 0]
    return a


def _fraction_stats():
    """A ReLU layer with 1 never-active unit and 2 nearly dead ones (active on 3 of 5000 values): the rule
    counts 3/10 dead, ``len(dead_units) / units`` says 1/10. A tanh layer 60% saturated, a sigmoid one 95%."""
    relu = _relu_with([0, 3, 3] + [2500] * 7, 5000)
    tanh = act("t.act", kind="tanh", depth=1, sat=0.6, lin=0.1)
    sig = act("s.act", kind="sigmoid", depth=2, sat=0.95, lin=0.0)
    return stats(activations={a.name: a for a in (relu, tanh, sig)},
                 params={"fc.weight": param("fc")}, layers={"fc": layer(0)})


def _rule_fractions(report) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for code, key in (("dead_units", "dead_fraction"), ("saturated_units", "saturated_fraction")):
        for f in report.by_code(code):
            for name, ev in f.evidence["layers"].items():
                out.setdefault(name, {})[key] = ev[key]
    return out


def test_the_rules_judge_the_one_fraction():
    s = _fraction_stats()
    report = diagnose(s)
    judged = _rule_fractions(report)
    assert judged == {"fc.act": {"dead_fraction": pytest.approx(0.3)}, "t.act": {"saturated_fraction": 0.6},
                      "s.act": {"saturated_fraction": 0.95}}
    a = s.activations["fc.act"]
    assert len(a.dead_units) / a.units == 0.1                       # what the views showed before: not the rule's
    assert layer_fractions(s) == {"fc.act": (pytest.approx(0.3), None), "t.act": (None, 0.6), "s.act": (None, 0.95)}
    # at other thresholds the rule and the fraction move together: units active on 3 of 5000 values no longer
    # count, and next to them one silent unit may be chance: nothing is found, and no fraction is shown
    th = Thresholds(nearly_dead_fraction=0.0)
    assert dead_fraction(a, th) is None and not diagnose(s, th).by_code("dead_units")
    assert saturated_fraction(act("r", kind="relu", sat=0.7)) is None            # a ReLU's flat half is not saturation


def test_silence_that_may_be_chance_is_not_shown_as_a_fraction():
    s = _rare_live_units()
    report = diagnose(s)
    assert not report.by_code("dead_units") and "not enough data yet" in str(report.skipped)
    assert dead_fraction(s.activations["a"]) is None                # a gap in every view, as the rule says
    assert dead_fraction(s.activations["a"], {"dead_false_alarm": 1.0}) == 0.1


def test_playground_and_loggers_show_the_rules_fractions():
    from impediments.integrations._common import summaries
    from impediments.playground.snapshot import monitor_view

    s = _fraction_stats()
    th = Thresholds(nearly_dead_fraction=2e-3)          # a report diagnosed at other thresholds shows its own
    report = diagnose(s, th)
    judged = _rule_fractions(report)
    view = monitor_view(s, report)
    shown = dict(zip(view["layers"], zip(view["dead"], view["saturated"])))
    assert shown == {"fc.act": (pytest.approx(judged["fc.act"]["dead_fraction"]), None),
                     "t.act": (None, judged["t.act"]["saturated_fraction"]),
                     "s.act": (None, judged["s.act"]["saturated_fraction"])}
    logged = summaries(s, report)
    assert logged["impediments/dead_fraction/fc.act"] == pytest.approx(judged["fc.act"]["dead_fraction"])
    assert logged["impediments/saturated_fraction/t.act"] == judged["t.act"]["saturated_fraction"]
    assert "impediments/dead_fraction/t.act" not in logged and "impediments/saturated_fraction/fc.act" not in logged


def test_the_html_report_draws_the_rules_fractions(monkeypatch):
    from impediments.report import doctor_html

    drawn = {}

    def capture(fig, alt):
        if alt == "dead and saturated fractions":
            ax = fig.axes[0]
            labels = [t.get_text() for t in ax.get_xticklabels()]
            heights = [p.get_height() for p in ax.patches]
            n = len(labels)
            drawn.update({name: (heights[i], heights[n + i]) for i, name in enumerate(labels)})
        return ""

    monkeypatch.setattr(doctor_html, "_img", capture)
    s = _fraction_stats()
    report = diagnose(s, {"nearly_dead_fraction": 2e-3})
    doctor_html.render_report(report)
    judged = _rule_fractions(report)
    assert drawn["fc.act"][0] == pytest.approx(judged["fc.act"]["dead_fraction"]) and math.isnan(drawn["fc.act"][1])
    assert math.isnan(drawn["t.act"][0]) and drawn["t.act"][1] == judged["t.act"]["saturated_fraction"]


# ------------------------------------------------------------------------------------------------ thresholds act
def _decisions(report) -> frozenset:
    return frozenset([(f.code, f.severity, tuple(f.where)) for f in report.findings]
                     + [("not checked", k, v) for k, v in report.skipped.items()])


def _linear_regime():
    later = [_make("Window", start_step=s, end_step=s + 10, loss_mean=2.3, region_fractions={"l": [0.0, 0.99, 0.01]})
             for s in range(0, 100, 10)]
    return stats(activations={"l": act("l", kind="tanh", sat=0.0, lin=0.99)}, windows=later)


def _rare_live_units():
    """One silent unit of ten over 40 values; live units active on 2 of 40: silence is likely chance."""
    return stats(activations={"a": _relu_with([0] + [2] * 9, 40)})


def _depth_trend():
    return stats(activations={f"g{i}": act(f"g{i}", depth=i, in_var=10.0 ** i) for i in range(4)})


def _gradient_trend():
    layers = {f"l{i}": layer(i, grad_var=11.0 ** i) for i in range(4)}
    layers["out"] = layer(9)
    return stats(layers=layers)


def _init_gains(gain: float):
    layers = {f"l{i}": layer(i) for i in range(4)}
    for l in layers.values():               # Var(y) / mean(x^2) = gain on the first step
        l.input_at_init, l.output_at_init, l.fan_in = _make("MomentStats", count=100, mean=0.0, var=1.0, min=-3.0,
                                                            max=3.0, nonfinite=0), _make(
            "MomentStats", count=100, mean=0.0, var=gain, min=-30.0, max=30.0, nonfinite=0), 64
    return stats(layers=layers)


def _near_constant_feature():
    return stats(inputs=_inputs([0.0] * 3, [3.9e-5, 0.5, 1.0], lo=[-0.4, -2.0, -3.0], hi=[0.6, 2.0, 3.0]))


def _bn_examples(n):
    b = bn(values=512)
    b.examples_per_batch = n
    return stats(batchnorm={"bn": b})


def _signed(agreement):
    """A first-layer weight whose gradient rows agree in sign by ``agreement`` (the params probe's measure)."""
    p = param("fc")
    p.sign_agreement = agreement
    return p


#: threshold -> (stats, value, another value): moving the threshold from one to the other changes a decision
ACTING = {
    "dead_min_values": (lambda: stats(activations={"a": act("a", dead=range(5))}), 32, 1000),
    "nearly_dead_fraction": (lambda: stats(activations={"a": _relu_with([3] * 3 + [320] * 7, 640)}), 1e-3, 1e-2),
    "dead_warning": (lambda: stats(activations={"a": act("a", dead=range(3))}, loss=loss([2.3] * 6)), 0.25, 0.5),
    "dead_layer_rate": (lambda: stats(activations={"a": _relu_with([5] * 10, 640)}), 0.02, 0.005),
    "trains_loss_drop": (lambda: stats(activations={"a": act("a", dead=range(3))},
                                       loss=loss([2.3, 2.0, 1.8, 1.6, 1.5, 1.4])), 0.25, 0.5),
    "same_sign_rows": (lambda: stats(inputs=_inputs([3.0] * 8, [1.0] * 8), params={"fc.weight": _signed(0.5)}),
                       0.4, 0.6),
    "dead_error": (lambda: stats(activations={"a": act("a", dead=range(8))}), 0.7, 0.9),
    "dead_false_alarm": (_rare_live_units, 0.01, 1.0),
    "saturated_warning": (lambda: stats(activations={"t": act("t", kind="tanh", sat=0.6, lin=0.1)}), 0.5, 0.7),
    "saturated_error": (lambda: stats(activations={"t": act("t", kind="tanh", sat=0.95, lin=0.0)}), 0.9, 0.99),
    "linear_warning": (_linear_regime, 0.98, 0.995),
    "transient_steps": (_linear_regime, 12, 200),
    "depth_min_layers": (_depth_trend, 3, 5),
    "activation_var_ratio": (_depth_trend, 100.0, 1e4),
    "gradient_var_ratio": (_gradient_trend, 1000.0, 1e6),
    "vanishing_grad_norm": (lambda: stats(params={"fc.weight": param("fc", grad_norm=1e-9, grad_max=1e-9)}),
                            1e-7, 1e-12),
    "exploding_update_ratio": (lambda: stats(params={"fc.weight": param("fc", upd=2.0)}), 1.0, 3.0),
    "exploding_grad_norm": (lambda: stats(params={"fc.weight": param("fc", grad_max=1e5)}), 1e4, 1e6),
    "init_gain_too_large": (lambda: _init_gains(20.0), 10.0, 30.0),
    "input_min_count": (lambda: stats(inputs=_inputs([3.0] * 8, [1.0] * 8, count=100)), 64, 200),
    "uncentered_energy": (lambda: stats(inputs=_inputs([1.0] * 8, [1.0] * 8)), 0.5, 0.6),
    "uncentered_sign_share": (lambda: stats(inputs=_inputs([3.0, 3.0, 3.0, -1.0], [1.0] * 4)), 0.9, 0.99),
    "near_constant_share": (_near_constant_feature, 0.01, 0.0),
    "input_var_ratio": (lambda: stats(inputs=_inputs([0.0] * 3, [1.0, 1.0, 1e3])), 1000.0, 1e4),
    "bn_min_values": (lambda: stats(batchnorm={"bn": bn(values=8)}), 32, 8),
    "bn_min_examples": (lambda: _bn_examples(8), 16, 8),
    "bn_error_values": (lambda: stats(batchnorm={"bn": bn(values=2)}), 4, 2),
    "loss_min_windows": (lambda: stats(loss=loss([2.3, 2.29, 2.3])), 3, 4),
    "diverging_factor": (lambda: stats(loss=loss([2.3, 2.3, 3.5, 3.5, 3.5])), 1.5, 2.0),
    "loss_spike_factor": (lambda: stats(loss=loss([2.3, 2.3, 24.0, 2.0, 1.9])), 10.0, 20.0),
    "plateau_min_steps": (lambda: stats(loss=loss([2.3, 2.29, 2.3])), 50, 200),
    "plateau_improvement": (lambda: stats(loss=loss([2.3, 2.28, 2.26])), 0.02, 0.01),
}


@pytest.mark.parametrize("name", sorted(ACTING))
def test_moving_a_threshold_changes_a_decision(name):
    build, value, other = ACTING[name]
    assert Thresholds().describe()[[r["name"] for r in Thresholds().describe()].index(name)]["value"] == value, \
        f"{name}: the table's first value is the default"
    s = build()
    assert _decisions(diagnose(s, {name: value})) != _decisions(diagnose(s, {name: other}))


#: the output-head, target and initial-loss thresholds (issue 24) are moved in tests/test_head_thresholds.py on
#: stats from small real runs (its ACTING); none is left unshown
NOT_YET_SHOWN_ACTING: set[str] = set()


def test_thresholds_not_shown_acting_here_are_named():
    """The thresholds this file does not move (the training-loop ones, the recurrent floor, the learning-rate
    cause) are listed, so a new threshold cannot be added without a test that it acts."""
    elsewhere = {"through_time_floor", "cause_update_ratio", "loop_min_observations", "update_resolution",
                 "stale_gradient_error", "unshuffled_distinct_ratio", "unshuffled_min_classes",
                 "repeated_batch_fraction", "lr_collapse_factor", "lr_collapse_fraction", "clip_dominates_factor",
                 "clip_dominates_fraction", "loader_first_batch_only", "rare_step_factor", "frozen_share", "external_write_fraction",
                 "init_gain_in_place",     # tests/test_cause_chains.py: moving it changes the remedy recommended
                 }
    names = {r["name"] for r in Thresholds().describe()}
    elsewhere |= NOT_YET_SHOWN_ACTING | set(LR_ACTING)     # tests/test_lr_too_low_and_linearity.py: its ACTING
    acting = set(ACTING) | set(HEAD_ACTING)
    untested = sorted(names - acting - elsewhere)
    assert not untested, f"no test that moving {untested} changes a decision: add them to ACTING in {__file__}"
    assert not acting & elsewhere and acting | elsewhere <= names and not set(ACTING) & set(HEAD_ACTING)
    assert "saturation_bound" not in names      # it changed nothing: the monitor counts saturation at record time
