"""``impediments fix``: surgery, remedies, verdicts, and end-to-end runs on real training (digits)."""
from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

import impediments as imp
from impediments.cli import main
from impediments.fix import REMEDIES, NotApplicable, make_pieces, remedies_for, replace_module, swap_modules
from impediments.fix.remedies import Context, apply_all
from impediments.fix.remedies.base import probe_model
from impediments.fix.surgery import functional_activations, input_shapes
from impediments.fix.trial import Trial
from impediments.fix.verdict import accuracy_tolerance, best_combination, judge
from impediments.report import render_fix_html
from impediments.train.zoo import FunctionalMLP

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def digits_xy():
    d = imp.load_dataset("digits")
    return d.X_train, d.y_train, d.X_test, d.y_test


def pieces_for(model_fn, **kw):
    return make_pieces(model_fn, digits_xy(), **kw)


def dead_mlp():
    net = imp.mlp(64, 10, width=32, depth=3)
    imp.init.initialize(net, "he_normal", bias=-10.0, seed=0)
    return net


def changed(pieces, name, findings=(), seed=0):
    new, changes = apply_all(pieces, [REMEDIES[name]], Context(tuple(findings), seed))
    return new, changes[0]


# --------------------------------------------------------------------------------------------- surgery
def test_replace_module_by_name_and_errors_list_valid_names():
    net = imp.mlp(8, 2, width=4, depth=2)
    old = replace_module(net, "hidden2.act", nn.Tanh())
    assert isinstance(old, nn.ReLU) and isinstance(net.hidden2.act, nn.Tanh)
    with pytest.raises(ValueError, match="no submodule named 'hidden9.act'; valid: .*hidden1.act"):
        replace_module(net, "hidden9.act", nn.Tanh())


def test_swap_modules_replaces_outermost_matches_only():
    net = nn.Sequential(nn.Sequential(nn.ReLU()), nn.ReLU())
    swap = swap_modules(net, lambda n, m: isinstance(m, (nn.ReLU, nn.Sequential)), lambda n, m: nn.Identity())
    assert swap.replaced == ["0", "1"] and all(isinstance(m, nn.Identity) for m in net)


def test_functional_activations_found_and_module_ones_not():
    x = torch.randn(4, 64)
    assert functional_activations(FunctionalMLP(), x) == {"FunctionalMLP/relu": "relu"}   # F.relu in its forward
    assert functional_activations(imp.mlp(64, 10, width=8, depth=2), x) == {}


def test_input_shapes_of_named_modules():
    net = imp.cnn2d((1, 8, 8), 10, width=4, depth=2)
    names = [n for n, m in net.named_modules() if isinstance(m, nn.ReLU)]
    shapes = input_shapes(net, torch.randn(3, 1, 8, 8), names)
    assert all(s[0] == 3 and s[1] == 4 and len(s) == 4 for s in shapes.values()) and set(shapes) == set(names)


# -------------------------------------------------------------------------------------------- remedies
def test_variance_preserving_init_matches_the_library_initializer():
    pieces = pieces_for(dead_mlp)
    new, change = changed(pieces, "variance_preserving_init", seed=3)
    reference = dead_mlp()
    imp.init.initialize(reference, "he_normal", bias=0.0, seed=3)
    torch.manual_seed(0)
    for a, b in zip(new.model_fn().parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)
    assert change.code == 'imp.init.initialize(net, "he_normal", bias=0.0, seed=3)'
    tanh = pieces_for(lambda: imp.mlp(64, 10, width=8, depth=2, activation="tanh"))
    assert "glorot_normal" in changed(tanh, "variance_preserving_init")[1].code


def test_functional_relu_is_redirected_and_a_norm_before_it_is_refused():
    pieces = pieces_for(FunctionalMLP)
    new, change = changed(pieces, "leaky_relu_swap")
    assert "FunctionalMLP/relu" in change.note and "F.leaky_relu(x, 0.01)" in change.code
    torch.manual_seed(0)
    swapped = new.model_fn()
    torch.manual_seed(0)
    plain = FunctionalMLP()
    x = torch.randn(5, 64)
    h = x
    for layer in plain.layers:
        h = torch.nn.functional.leaky_relu(layer(h), 0.01)
    torch.testing.assert_close(swapped(x), plain.out(h))            # every F.relu of forward() redirected
    assert not torch.allclose(swapped(x), plain(x))
    with pytest.raises(NotApplicable, match=r"cannot insert a norm before FunctionalMLP/relu: called as a function"):
        changed(pieces, "batchnorm_before_activation")


def test_activation_swap_and_norm_insertion_keep_shapes():
    pieces = pieces_for(lambda: imp.mlp(64, 10, width=16, depth=2, activation="sigmoid"))
    tanh = probe_model(changed(pieces, "tanh_for_sigmoid")[0], 0)
    assert [type(m) for m in tanh.modules() if type(m) in (nn.Sigmoid, nn.Tanh)] == [nn.Tanh, nn.Tanh]
    bn = probe_model(changed(pieces, "batchnorm_before_activation")[0], 0)
    assert isinstance(bn.hidden1.act.norm, nn.BatchNorm1d) and bn.hidden1.act.norm.num_features == 16
    assert bn(torch.randn(5, 64)).shape == (5, 10)
    conv = pieces_for(lambda: imp.cnn2d((1, 8, 8), 10, width=4, depth=2))
    conv = make_pieces(conv.model_fn, (conv.X.view(-1, 1, 8, 8), conv.y))
    ln = probe_model(changed(conv, "layernorm_before_activation")[0], 0)
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 and m.num_channels == 4 for m in ln.modules())


def test_groupnorm_replaces_every_batchnorm_and_larger_batch():
    pieces = pieces_for(lambda: imp.mlp(64, 10, width=16, depth=2, norm="batch"), batch_size=4)
    gn = probe_model(changed(pieces, "groupnorm_for_batchnorm")[0], 0)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in gn.modules())
    assert sum(isinstance(m, nn.GroupNorm) and m.num_groups == 8 for m in gn.modules()) == 2
    assert changed(pieces, "larger_batch")[0].batch_size == 32


def test_dropout_moved_after_the_last_batchnorm():
    def build():
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 64), nn.Dropout(0.3),
                             nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))

    new, change = changed(pieces_for(build), "dropout_after_batchnorm")
    kinds = [type(m).__name__ for m in probe_model(new, 0)]
    assert kinds == ["Linear", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert probe_model(new, 0)[5].p == 0.5 and "nn.Dropout(0.5)" in change.code


def test_standardizer_fitted_on_training_inputs_only():
    d = imp.load_dataset("digits", standardize=False)
    pieces = make_pieces(dead_mlp, (d.X_train, d.y_train, d.X_test, d.y_test))
    new, _ = changed(pieces, "standardize_inputs")
    ref = imp.data.Standardizer().fit(d.X_train)
    torch.testing.assert_close(new.X, ref.transform(d.X_train))
    torch.testing.assert_close(new.X_val, ref.transform(d.X_test))
    assert pieces.X is d.X_train and torch.equal(pieces.X, d.X_train)      # the user's tensors untouched


def test_learning_rate_and_weight_decay_remedies_rebuild_the_optimizer():
    pieces = pieces_for(lambda: imp.mlp(64, 10, width=8, depth=1, norm="batch"),
                        optimizer=lambda p: torch.optim.SGD(p, lr=0.3, weight_decay=1e-3))
    opt = changed(pieces, "lr_down_3")[0].opt_fn(probe_model(pieces, 0).parameters())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    findings = [{"code": "weight_decay_with_bn", "severity": "info", "where": ["hidden1.linear"], "evidence": {}}]
    new = changed(pieces, "no_decay_before_batchnorm", findings)[0]
    model = new.model_fn()
    groups = new.opt_fn(model.parameters()).param_groups
    free = [g for g in groups if g["weight_decay"] == 0.0]
    assert len(free) == 1 and free[0]["params"] == [model.hidden1.linear.weight]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_nonfinite_inputs_dropped_only_when_the_inputs_are_the_cause():
    X, y, Xv, yv = digits_xy()
    X = X.clone()
    X[7, 3] = float("nan")
    pieces = make_pieces(dead_mlp, (X, y, Xv, yv))
    cause = [{"code": "non_finite", "severity": "error", "where": ["input"], "evidence": {"kind": "input"}}]
    new = changed(pieces, "drop_nonfinite_examples", cause)[0]
    assert len(new.X) == len(X) - 1 and torch.isfinite(new.X).all()
    with pytest.raises(NotApplicable, match="came from gradient"):
        changed(pieces, "drop_nonfinite_examples", [{**cause[0], "evidence": {"kind": "gradient"}}])


def test_registry_skips_codes_the_doctor_does_not_define(monkeypatch):
    from impediments.doctor.codes import CODES
    from impediments.fix.remedies import registry

    assert remedies_for("not_a_code") == []
    monkeypatch.setitem(registry.REMEDIES, "future", registry.Remedy("future", ("future_code",), "init", "x",
                                                                     lambda p, c: None))
    assert "future_code" not in CODES and remedies_for("future_code") == []
    assert all(r.slot for r in REMEDIES.values()) and {r.name for r in remedies_for("dead_units")} >= {
        "variance_preserving_init", "lsuv_init", "leaky_relu_swap", "gelu_swap", "lr_down_10"}


# -------------------------------------------------------------------------------------------- verdicts
def trial(flagged=(), acc=0.5, steps=60, run=60, error=None, seed=0):
    return Trial((), seed, [{"code": c, "severity": "warning", "where": [], "evidence": {}} for c in flagged],
                 run, steps, val_acc=acc, error=error)


def test_verdict_conditions():
    base = [trial({"dead_units", "loss_plateau"}, 0.5)]
    ok = judge(("a",), {"dead_units"}, base, [trial(set(), 0.9)], 0.01, 50)
    assert ok.status == "verified fix" and ok.verified == ["dead_units", "loss_plateau"]
    assert judge(("a",), {"dead_units"}, base, [trial({"non_finite"}, 0.9)], 0.01, 50).status == "new findings"
    assert judge(("a",), {"dead_units"}, base, [trial(set(), 0.48)], 0.01, 50).status == "metric worse"
    assert judge(("a",), {"dead_units"}, base, [trial(set(), 0.495)], 0.01, 50).verified      # within tolerance
    assert judge(("a",), {"dead_units"}, base, [trial({"dead_units"}, 0.9)], 0.01, 50).status == "did not clear"
    short = judge(("a",), {"dead_units"}, [trial({"dead_units"}, 0.5, steps=20, run=20)],
                  [trial(set(), 0.9, steps=20, run=20)], 0.01, 50)
    assert short.status == "too short to tell" and not short.verified


def test_a_fix_must_hold_on_every_seed():
    base = [trial({"dead_units"}, 0.5, seed=0), trial({"dead_units"}, 0.5, seed=1)]
    mixed = judge(("a",), {"dead_units"}, base, [trial(set(), 0.9, seed=0), trial({"dead_units"}, 0.9, seed=1)],
                  0.0, 50)
    assert not mixed.verified and mixed.cleared == []


def test_tolerance_is_one_binomial_standard_error():
    assert accuracy_tolerance(0.9, 400) == pytest.approx(math.sqrt(0.9 * 0.1 / 400))
    assert accuracy_tolerance(None, 400) == 0.0


def test_combination_takes_one_remedy_per_slot():
    base = [trial({"dead_units", "uncentered_inputs"}, 0.5)]
    rows = [judge((n,), set(REMEDIES[n].codes), base, [trial(left, acc)], 0.0, 50) for n, left, acc in (
        ("variance_preserving_init", {"uncentered_inputs"}, 0.8), ("lsuv_init", {"uncentered_inputs"}, 0.7),
        ("standardize_inputs", {"dead_units"}, 0.6))]
    assert best_combination(rows, lambda n: REMEDIES[n].slot) == [("variance_preserving_init",),
                                                                  ("standardize_inputs",)]


# ------------------------------------------------------------------------------------------ end to end
def test_fix_dead_relu_mlp_finds_a_verified_fix_and_never_touches_the_user_model():
    net = dead_mlp()
    before = copy.deepcopy(net.state_dict())
    report = imp.fix(net, digits_xy(), steps=60)
    assert {"dead_units", "loss_plateau"} <= set(report.flagged)
    assert report.chosen is not None and report.chosen.verdict.status == "verified fix"
    assert report.exit_code == 0 and report.remaining == []
    base_acc, after_acc = report.baseline[0].val_acc, report.chosen.trials[0].val_acc
    # the smallest change that clears the root cause: the biases, not the He weights already in place
    assert report.chosen.verdict.remedies == ("zero_biases",)
    assert base_acc < 0.3 < 0.8 < after_acc
    also = {r.verdict.remedies for r in report.rows if r.verdict.verified and r is not report.chosen}
    assert ("lsuv_init",) in also                       # the other verified fixes are shown
    failing = [r for r in report.rows if r.verdict.status != "verified fix"]
    assert failing and any(r.verdict.remedies == ("lr_down_10",) for r in failing)        # shown, not hidden
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    text = str(report)
    assert "baseline" in text and "did not clear" in text and report.snippet().splitlines()[1] in text
    doc = json.loads(report.to_json())
    assert doc["schema"] == "impediments.fix.report" and doc["chosen"]["name"] == report.chosen.name
    html = render_fix_html(report)
    assert "data:image/png;base64," in html and "verified fix" in html


def test_fix_changes_nothing_on_a_healthy_setup():
    def healthy():
        net = imp.mlp(64, 10, width=32, depth=2)
        imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
        return net

    report = imp.fix(healthy, digits_xy(), steps=60)
    assert report.flagged == [] and report.rows == [] and report.chosen is None and report.exit_code == 0
    assert report.snippet().startswith("# nothing to change")


def test_cli_fix_example_in_worker_processes(tmp_path, capsys):
    out_json, out_html = tmp_path / "fix.json", tmp_path / "fix.html"
    code = main(["fix", str(EXAMPLES / "dropout_before_bn.py"), "--steps", "60", "--jobs", "2", "--seeds", "2",
                 "--json", str(out_json), "--html", str(out_html)])
    printed = capsys.readouterr().out
    assert code == 0 and "dropout_after_batchnorm" in printed and "nn.Dropout(0.5)" in printed
    doc = json.loads(out_json.read_text())
    assert doc["settings"]["jobs"] == 2 and doc["chosen"]["name"] == "dropout_after_batchnorm"
    processes = {t["process"] for t in doc["baseline"] + doc["rows"][0]["trials"]}
    assert os.getpid() not in processes and 1 <= len(processes) <= 2             # ran in the worker pool
    assert doc["remaining"] == [] and out_html.read_text().startswith("<!DOCTYPE html>")


ITEM_CUT_SPEC = """
import torch
from torch import nn

STEPS = 30


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.body(x)
        return self.head(torch.full_like(h, h.mean().item()))   # a Python number: no gradient


def model():
    torch.manual_seed(0)
    return Net()


def data():
    return "digits"
"""


def test_cli_fix_exit_1_when_no_remedy_clears_the_finding(tmp_path, capsys):
    spec = tmp_path / "item_cut.py"
    spec.write_text(ITEM_CUT_SPEC)
    code = main(["fix", str(spec), "--jobs", "1"])
    printed = capsys.readouterr().out
    # (the head's constant input also makes the output constant: output_head_mismatch stays flagged beside it)
    still = next(line for line in printed.splitlines() if "still flagged after it:" in line)
    assert code == 1 and "parameters_without_gradient" in still, still
    assert "cannot be neutralised automatically" in printed and "item_cut.py:16" in printed   # said in full


def test_cli_fix_names_the_line_that_cuts_the_graph(capsys):
    code = main(["fix", str(EXAMPLES / "loop_parameters_without_gradient.py"), "--jobs", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and "remove `.detach()` at " in printed and "loop_parameters_without_gradient.py:19" in printed


@pytest.mark.parametrize("argv, message", [
    (["fix", "missing_spec.py"], "does not exist"),
    (["fix", str(EXAMPLES / "dead_relu.py"), "--html", "/nonexistent-folder/fix.html"], "does not exist"),
])
def test_cli_fix_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_fix_seeds_and_run_budget(tmp_path, capsys):
    out = tmp_path / "fix.json"
    code = main(["fix", str(EXAMPLES / "small_batch_bn.py"), "--steps", "50", "--seeds", "2", "--budget-runs", "2",
                 "--jobs", "1", "--json", str(out)])
    doc = json.loads(out.read_text())
    assert [t["seed"] for t in doc["baseline"]] == [0, 1] and len(doc["rows"]) == 1
    assert [t["seed"] for t in doc["rows"][0]["trials"]] == [0, 1]
    assert doc["not_tried"] and "not tried (run budget)" in capsys.readouterr().out
    assert code == (0 if doc["remaining"] == [] else 1)


def test_raw_inputs_beside_dead_units_are_info_and_one_remedy_fixes_the_cause():
    """Raw digits (0..16) beside dead units: the uncentered inputs are info since severity follows the
    measured cost (issue 24 item 5), so only the dead units need a fix, and one remedy clears them. (This
    was the end-to-end test of a two-remedy combination; ``best_combination`` keeps its unit test above.)"""
    d = imp.load_dataset("digits", standardize=False)
    report = imp.fix(dead_mlp, (d.X_train, d.y_train, d.X_test, d.y_test), steps=60, budget_runs=3,
                     optimizer=lambda p: torch.optim.SGD(p, lr=0.01))
    assert "dead_units" in report.flagged and "uncentered_inputs" not in report.flagged
    assert report.chosen is not None and report.remaining == [] and report.exit_code == 0
    assert len(report.chosen.verdict.remedies) == 1


def test_an_optimizer_instance_is_a_clear_error_before_any_training():
    net = dead_mlp()
    with pytest.raises(ValueError, match=r"optimizer must be callable, got SGD \(pass a factory"):
        imp.fix(net, digits_xy(), optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        imp.fix(net, digits_xy(), steps=0)
