"""Cause chains by mechanism, remedies fitted to what was measured, one finding per code and place (issue 28
item 1), pinned on the examples the doctor is run on, and the fix that removes the named cause with the
smallest change (item 2)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from impediments.doctor import Thresholds
from impediments.doctor.causes import fit_to_model, init_in_place, preserving_gain
from impediments.doctor.codes import CODES
from impediments.doctor.diagnose import one_per_place
from impediments.doctor.finding import Finding
from impediments.doctor.rules.base import finding
from impediments.doctor.rules.init_scale import layer_gains
from test_doctor_rules import _make, act, layer, param, stats

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _doctor(name: str, steps: int = 60):
    """``impediments doctor examples/NAME.py --steps STEPS`` in process: the report."""
    from impediments.cli.spec import build_data, load_spec, spec_setup, train_under_monitor

    torch.manual_seed(0)
    spec = load_spec(EXAMPLES / f"{name}.py")
    X, y = build_data(spec)
    mon = train_under_monitor(spec_setup(spec, X, y, steps=steps, batch_size=64), seed=0)
    return mon.report()


@pytest.fixture(scope="module")
def dead_relu():
    return _doctor("dead_relu")


@pytest.fixture(scope="module")
def zero_init():
    return _doctor("zero_init")


@pytest.fixture(scope="module")
def diverging_lr():
    return _doctor("diverging_lr")


def _own_part(f: Finding) -> str:
    """What a caused finding's remedy says after its cause's: its own remedy."""
    return f.remedy.split("Then, if it remains:", 1)[1]


def test_dead_relu_vanishing_activations_are_caused_by_the_dead_units_not_the_init(dead_relu):
    [dead] = dead_relu.by_code("dead_units")
    [vanishing] = dead_relu.by_code("vanishing_activations")
    [plateau] = dead_relu.by_code("loss_plateau")
    assert dead.caused_by is None and dead_relu.findings[0] is dead
    assert vanishing.caused_by == "dead_units" and plateau.caused_by == "dead_units"
    # the mechanism is the dead units', not "n Var(W) < 1"; the remedy starts with the cause's
    assert "n Var(W) < 1" not in vanishing.explanation and "dead units" in vanishing.explanation
    assert vanishing.remedy.startswith(f"Caused by dead_units (reported above); fix that first: {dead.action}")
    # He init is in use (bias -10 at he_normal): measured n Var(W) at the first layer is He's 2 ...
    gains = [g for g, _ in layer_gains(dead_relu.stats).values()]
    assert gains and all(1.8 < g < 2.2 for g in gains)
    # ... so no remedy recommends it, and the dead units' says the biases are what to change
    for f in (vanishing, plateau):
        assert '"he_normal")' not in _own_part(f) and "already preserves variance" in _own_part(f)
    assert "set the biases to zero" in dead.action and "He weights already in place" in dead.action
    assert "zeros_(layer.bias)" in dead.action


def test_zero_init_linear_regime_and_plateau_are_caused_by_symmetry(zero_init):
    [symmetric] = zero_init.by_code("symmetric_units")
    [linear] = zero_init.by_code("linear_regime")
    [plateau] = zero_init.by_code("loss_plateau")
    assert zero_init.findings[0] is symmetric and symmetric.caused_by is None
    assert linear.caused_by == "symmetric_units" and plateau.caused_by == "symmetric_units"
    assert "symmetry was never broken" in linear.explanation
    assert linear.remedy.startswith("Caused by symmetric_units (reported above); fix that first: Initialize with random")
    # a zero init preserves nothing (n Var(W) = 0): random init is still what to do
    assert init_in_place(zero_init.stats, Thresholds()) is None


def test_a_learning_rate_too_high_on_a_plain_mlp_names_no_init_and_no_residual_experiment(diverging_lr):
    [exploding] = [f for f in diverging_lr.findings if f.code == "exploding_gradients"]
    assert diverging_lr.findings[0] is exploding and exploding.caused_by is None
    assert not diverging_lr.stats.residual_stream                  # the monitor saw no residual block
    assert exploding.link == "see: impediments reproduce bn_learning_rates"
    assert "he_normal" not in exploding.remedy and "learning rate" in exploding.action
    for f in diverging_lr.findings:
        assert "residual_limits" not in f.remedy, f
        assert '"he_normal")' not in f.remedy.replace('"he_normal", bias=0.0)', ""), f
    # one finding per code and place
    places = [(f.code, w) for f in diverging_lr.findings for w in f.where]
    assert len(places) == len(set(places))


# ------------------------------------------------------------------------------------ synthetic, fast
def _gains(gain: float, kind: str = "relu", residual: bool = False):
    """Stats of a 4-layer net whose layers multiply their input's second moment by ``gain`` at init."""
    layers = {f"l{i}": layer(i) for i in range(4)}
    for one in layers.values():
        one.input_at_init = _make("MomentStats", count=100, mean=0.0, var=1.0, min=-3.0, max=3.0, nonfinite=0)
        one.output_at_init = _make("MomentStats", count=100, mean=0.0, var=gain, min=-9.0, max=9.0, nonfinite=0)
        one.fan_in = 64
    extra = {}
    if residual:
        extra["residual_stream"] = {"b0": _make("ResidualStreamStats", depth=0, shape=[4], grad_mean_square=1.0, samples=1)}
    return stats(layers=layers, activations={"a": act("a", kind=kind)}, **extra)


def test_the_measured_init_decides_whether_he_is_recommended_and_moving_init_gain_in_place_changes_it():
    he = finding("exploding_gradients", "error", ["l0.weight"], {})
    assert preserving_gain(_gains(1.6)) == 2.0 and preserving_gain(_gains(1.6, kind="tanh")) == 1.0
    # gain 1.6 on ReLU: 0.8 of He's 2, taken as He at the default 0.75 (no He recommended) ...
    fitted = fit_to_model(he, _gains(1.6), Thresholds())
    assert "he_normal" not in fitted.remedy and "n Var(W) measured at 1.6" in fitted.remedy
    # ... and not at 0.9 (He recommended, the code's own remedy)
    assert "he_normal" in fit_to_model(he, _gains(1.6), Thresholds(init_gain_in_place=0.9)).action
    # PyTorch's default Linear init (1/3) and Glorot on ReLU (1) still get He; an init far too large is not "in place"
    for gain in (1 / 3, 1.0, 50.0):
        assert "he_normal" in fit_to_model(he, _gains(gain), Thresholds()).action
    # tanh at Glorot's 1 is in place
    assert init_in_place(_gains(1.0, kind="tanh"), Thresholds()) is not None


def test_the_residual_experiment_is_linked_only_for_a_residual_model():
    f = finding("exploding_gradients", "error", ["l0.weight"], {})
    assert CODES["exploding_gradients"].experiment == "residual_limits"
    assert fit_to_model(f, _gains(1 / 3), Thresholds()).link == "see: impediments reproduce bn_learning_rates"
    assert fit_to_model(f, _gains(1 / 3, residual=True), Thresholds()).link == \
        "see: impediments reproduce residual_limits"
    # a rule's own remedy keeps its words, its link is fitted all the same
    own = finding("exploding_gradients", "warning", ["l0.weight"], {}, "why", "Lower the learning rate")
    assert fit_to_model(own, _gains(2.0), Thresholds()).remedy == \
        "Lower the learning rate; see: impediments reproduce bn_learning_rates"


def test_one_finding_per_code_and_place_merges_the_parameter_and_the_layer_verdicts():
    s = stats(params={"h1.linear.weight": param("h1.linear"), "h1.linear.bias": param("h1.linear"),
                      "out.weight": param("out")})
    by_params = finding("exploding_gradients", "error", ["h1.linear.weight", "h1.linear.bias"], {"max": 3.0})
    by_layers = finding("exploding_gradients", "warning", ["h1.linear", "h2.linear"], {"ratio": 1e-4})
    elsewhere = finding("exploding_gradients", "info", ["out.weight"], {})
    other_code = finding("dead_units", "error", ["h1.linear"], {})
    merged = one_per_place([by_layers, other_code, by_params, elsewhere], s)
    assert [f.code for f in merged] == ["exploding_gradients", "dead_units", "exploding_gradients"]
    first = merged[0]
    assert first.severity == "error" and first.where == ["h1.linear.weight", "h1.linear.bias", "h1.linear",
                                                         "h2.linear"]
    assert first.evidence["max"] == 3.0 and first.evidence["also"]["ratio"] == 1e-4
    assert first.evidence["also"]["severity"] == "warning"
    assert merged[2] is elsewhere                         # another place: its own finding


# ------------------------------------------------------------------------------------------- fix (item 2)
def test_bias_to_zero_keeps_the_weights_and_zeroes_every_bias():
    from impediments.fix.pieces import make_pieces
    from impediments.fix.remedies import REMEDIES, Context

    def build():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3))
        nn.init.constant_(net[1].bias, -10.0)
        return net

    X, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    pieces = make_pieces(build, (X, y), steps=5)
    change = REMEDIES["zero_biases"](pieces, Context())
    fresh, fixed = pieces.model_fn(), change.pieces.model_fn()
    assert fresh[1].bias.min() == -10.0
    for (name, p), (_, q) in zip(fresh.named_parameters(), fixed.named_parameters()):
        if name.endswith("bias"):
            assert torch.count_nonzero(q) == 0, name
        else:
            torch.testing.assert_close(p, q)
    # the printed lines do to a fresh model what the trial did
    net = build()
    exec(change.code, {"net": net, "torch": torch, "nn": nn})
    for p, q in zip(net.parameters(), fixed.parameters()):
        torch.testing.assert_close(p, q)


def test_fix_prefers_the_smallest_verified_change_that_clears_the_root_cause():
    from impediments.fix.report import Row
    from impediments.fix.runner import smallest_fix
    from impediments.fix.verdict import Verdict, root_cause

    def row(name, verified):
        return Row(Verdict((name,), verified=verified), [])

    lsuv, he, bias, bn = (row("lsuv_init", ["dead_units", "loss_plateau"]), row("variance_preserving_init",
                          ["dead_units", "loss_plateau"]), row("zero_biases", ["dead_units", "loss_plateau"]),
                          row("batchnorm_before_activation", ["dead_units"]))
    findings = [{"code": "dead_units", "severity": "error", "caused_by": None},
                {"code": "loss_plateau", "severity": "warning", "caused_by": "dead_units"}]
    assert root_cause(findings) == "dead_units"
    assert smallest_fix([lsuv, bn, he, bias], "dead_units") is bias
    assert smallest_fix([lsuv, bn, he], "dead_units") is lsuv      # equal extents: the best-ranked
    # none clears the root cause: the best-ranked verified fix, as before
    assert smallest_fix([bn, he], "symmetric_units") is bn
    assert smallest_fix([], "dead_units") is None


def test_every_remedy_that_recommends_an_init_has_words_for_an_init_already_in_place():
    recommends = ("he_normal", "glorot_normal", "variance-preserving init", "init that preserves variance")
    naming = [c for c in CODES.values() if any(r in c.remedy for r in recommends) and c.name != "symmetric_units"]
    assert {"dead_units", "vanishing_activations", "exploding_gradients", "loss_plateau"} <= {c.name for c in naming}
    for c in naming:
        assert c.remedy_init_in_place, c.name
        fitted = c.remedy_init_in_place.replace("{measured}", "n Var(W) measured at 2")
        # it may keep the He weights by name, never recommend re-initializing to them
        assert not any(r in fitted.replace('"he_normal", bias=0.0', "") for r in recommends), c.name
