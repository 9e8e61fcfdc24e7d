"""``matched_loss_shapes``: a broadcasting regression loss call inside a custom loss, found and shape-matched."""
from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import impediments as imp
from impediments.fix import REMEDIES, NotApplicable, make_pieces, run_fix
from impediments.fix.remedies import Context, apply_all
from impediments.fix.remedies.loss_shapes import MatchedLoss
from impediments.fix.runner import PiecesSource


def sliced_loss(out, t):
    return F.mse_loss(out[:, :1], t)          # the zoo's bug: (N, 1) against (N,)


def wide_loss(out, t):
    return F.mse_loss(out[:, :2], t[:, None])   # (N, 2) against (N, 1): no reshape means the same thing


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def regression_pieces(loss_fn, steps=50):
    d = imp.load_dataset("digits")
    return make_pieces(model, (d.X_train, d.y_train.float() / 9, d.X_test, d.y_test.float() / 9),
                       optimizer=lambda p: torch.optim.SGD(p, lr=0.05), loss_fn=loss_fn, steps=steps)


def test_matched_loss_equals_the_loss_written_with_matching_shapes():
    out = torch.randn(16, 10, requires_grad=True)
    t = torch.randn(16)
    ref = out.detach().clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not torch.allclose(sliced_loss(out, t), F.mse_loss(out[:, 0], t))   # the bug changes the value
    loss = MatchedLoss(sliced_loss)(out, t)
    expected = F.mse_loss(ref[:, 0], t)
    loss.backward()
    expected.backward()
    assert torch.allclose(loss, expected) and torch.allclose(out.grad, ref.grad)


def test_remedy_names_the_call_line_and_the_edit():
    _, changes = apply_all(regression_pieces(sliced_loss), [REMEDIES["matched_loss_shapes"]],
                           Context((), 0))
    line = inspect.getsourcelines(sliced_loss)[1] + 1
    assert "input (64, 1) and target (64,)" in changes[0].code and "input.squeeze(-1)" in changes[0].code
    assert f"test_fix_loss_shapes.py:{line}" in changes[0].code


def test_remedy_refuses_shapes_of_different_sizes():
    with pytest.raises(NotApplicable, match=r"input \(64, 2\) and target \(64, 1\): different numbers of values"):
        apply_all(regression_pieces(wide_loss), [REMEDIES["matched_loss_shapes"]], Context((), 0))


def test_fix_verifies_the_shape_match_inside_a_custom_loss():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_fix(PiecesSource(regression_pieces(sliced_loss)))
    assert "loss_broadcast" in report.flagged and report.exit_code == 0
    assert "matched_loss_shapes" in report.chosen.name
    assert report.chosen.trials[0].val_loss < report.baseline[0].val_loss
