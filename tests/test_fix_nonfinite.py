"""``non_finite``: the op outside its domain guarded at its line, and NaN inputs dropped (kept in training)."""
from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

import impediments as imp
from impediments.fix import REMEDIES, NotApplicable, make_pieces, run_fix
from impediments.fix.pieces import hold_out
from impediments.fix.remedies import Context, apply_all
from impediments.fix.remedies.op_guard import Guard, locate
from impediments.fix.runner import PiecesSource


class LogNet(nn.Module):
    """``log`` of a ReLU's output: -inf wherever a unit is off, from the first forward."""

    def __init__(self, guarded: bool = False, op: str = "log"):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)
        self.guarded, self.op = guarded, op

    def forward(self, x):
        h = self.body(x)
        if self.guarded:
            h = h.clamp_min(1e-6)
        if self.op == "exp":
            return self.head(torch.exp(h * 1e4))                # an overflow, not a domain error
        return self.head(torch.log(h))


def log_line() -> int:
    lines, start = inspect.getsourcelines(LogNet.forward)
    return start + next(i for i, line in enumerate(lines) if "torch.log(h)" in line)


def digits(model_fn, data=None, steps=50):
    d = imp.load_dataset("digits")
    return make_pieces(model_fn, data or (d.X_train, d.y_train, d.X_test, d.y_test), steps=steps)


def test_locate_names_the_op_and_its_line():
    found = locate(digits(LogNet), 0)
    assert found.op == "log" and found.site.line == log_line() and found.site.file.endswith("test_fix_nonfinite.py")


def test_guard_gives_the_outputs_and_gradients_of_the_model_with_the_clamp_written_in():
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    net, reference = LogNet(), LogNet(guarded=True)
    found = locate(digits(LogNet), 0)
    with Guard(found.op, found.site) as guard:
        loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    nn.functional.cross_entropy(reference(x), y).backward()
    assert guard.guarded == 1 and torch.isfinite(loss)
    for p, q in zip(net.parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_an_overflow_is_left_to_the_learning_rate_remedies():
    with pytest.raises(NotApplicable, match="exp.*an overflow"):
        apply_all(digits(lambda: LogNet(op="exp")), [REMEDIES["guarded_op"]], Context((), 0))


def test_fix_guards_the_log_and_clears_the_non_finite_loss():
    """The guard clears the NaN and the divergence and the model learns. ``log(clamp_min(h, 1e-6))`` puts
    -13.8 on every silent unit, so the guarded model starts far above ln 10; the doctor says so, as info,
    because the loss came down to ln 10 within the run (``initial_loss_high`` graded by its measured cost)."""
    report = run_fix(PiecesSource(digits(LogNet)))
    assert "non_finite" in report.flagged
    row = next(r for r in report.rows if r.name == "guarded_op")
    assert {"non_finite", "diverging_loss"} <= set(row.verdict.cleared) and "initial_loss_high" not in row.verdict.new
    [start] = [f for f in row.trials[0].findings if f["code"] == "initial_loss_high"]
    assert start["severity"] == "info" and start["evidence"]["initial_loss"] > 2 * math.log(10)
    assert start["evidence"]["down_to_uninformed_by_step"] < row.trials[0].steps_run
    code = row.trials[0].changes[0]["code"]
    assert f"test_fix_nonfinite.py:{log_line()}" in code and "clamp_min(1e-6)" in code
    assert row.trials[0].val_acc > 0.5 > report.baseline[0].val_acc


def test_hold_out_keeps_nonfinite_rows_in_training_and_is_unchanged_otherwise():
    X, y = torch.randn(50, 3), torch.arange(50)
    plain = hold_out(X, y)
    X[plain[3][0], 1] = float("nan")                       # a row the plain split holds out
    split = hold_out(X, y)
    assert int(plain[3][0]) in split[1].tolist() and len(split[3]) == len(plain[3])
    assert torch.isfinite(split[2]).all() and not torch.isfinite(split[0]).all()


def test_fix_drops_a_nan_input_row_that_the_split_keeps_in_training():
    d = imp.load_dataset("digits")
    X = d.X_train.clone()
    X[7, 3] = float("nan")
    report = run_fix(PiecesSource(digits(lambda: imp.mlp(64, 10, width=32, depth=2), data=(X, d.y_train))))
    assert "non_finite" in report.flagged and report.exit_code == 0
    assert "drop_nonfinite_examples" in report.chosen.name
    assert report.chosen.trials[0].val_acc > report.baseline[0].val_acc
