"""``reconnected_graph``: the cut inside ``forward()`` located by mechanism, neutralised, and verified by retraining."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import impediments as imp
from impediments.fix import REMEDIES, NotApplicable, make_pieces, run_fix
from impediments.fix.graph_cuts import find_cuts
from impediments.fix.remedies import Context, apply_all
from impediments.fix.remedies.graph import Reconnect
from impediments.fix.runner import PiecesSource
from impediments.fix.trial import run_trial


class Cut(nn.Module):
    """``body`` then ``head``, with the graph between them cut by ``how`` (or not, for the reference)."""

    def __init__(self, how: str = "none"):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)
        self.how = how

    def forward(self, x):
        if self.how == "detach":
            h = self.body(x).detach()
        elif self.how == "data":
            h = self.body(x).data
        elif self.how == "no_grad":
            with torch.no_grad():
                h = self.body(x)
        elif self.how == "item":
            h = self.body(x)
            h = torch.full_like(h, h.mean().item())
        elif self.how == "int":
            h = self.body(x).round().long().float()
        else:
            h = self.body(x)
        return self.head(h)


def line_of(text: str) -> int:
    lines, start = inspect.getsourcelines(Cut.forward)
    return start + next(i for i, line in enumerate(lines) if text in line)


def finding(where=("body.2", "body.0")):
    return {"code": "parameters_without_gradient", "severity": "warning", "where": list(where),
            "evidence": {"cut_after_module": where[0]}}


def digits_pieces(how: str, steps: int = 50):
    d = imp.load_dataset("digits")
    return make_pieces(lambda: Cut(how), (d.X_train, d.y_train, d.X_test, d.y_test), steps=steps)


@pytest.mark.parametrize("how,kind,text", [("detach", "detach", ".detach()"), ("data", "data", ".data"),
                                            ("no_grad", "no_grad", "h = self.body(x)\n"),
                                            ("item", "python_number", ".item()"), ("int", "integer", ".long()")])
def test_find_cuts_names_the_mechanism_and_the_source_line(how, kind, text):
    net = Cut(how).train()
    sources = list(net.body.parameters())
    cuts = find_cuts(net, torch.randn(8, 64), sources)
    assert cuts and cuts[0].kind == kind
    lines, start = inspect.getsourcelines(Cut.forward)
    expected = [start + i for i, line in enumerate(lines) if text.strip() in line and
                (how != "no_grad" or "with" not in line)]
    assert cuts[0].site.line in expected and cuts[0].site.file.endswith("test_fix_graph.py")


def test_the_reference_model_has_no_cut():
    assert find_cuts(Cut().train(), torch.randn(8, 64), list(Cut().body.parameters())) == []


@pytest.mark.parametrize("how", ["detach", "data", "no_grad"])
def test_neutralised_cut_gives_autograds_gradients_of_the_model_without_it(how):
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    broken, reference = Cut(how).train(), Cut().train()
    cuts = find_cuts(broken, x, list(broken.body.parameters()))
    with Reconnect(broken, cuts):
        out = broken(x)
        nn.functional.cross_entropy(out, y).backward()
    nn.functional.cross_entropy(reference(x), y).backward()
    assert torch.equal(out.detach(), reference(x).detach())
    for (name, p), q in zip(broken.named_parameters(), reference.parameters()):
        assert p.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-7), name


def test_reconnect_leaves_eval_mode_and_other_lines_alone():
    net = Cut("detach").eval()
    cuts = find_cuts(Cut("detach").train(), torch.randn(4, 64), list(Cut("detach").body.parameters()))
    with Reconnect(net, cuts) as mode:
        net(torch.randn(4, 64))
        other = torch.randn(3, requires_grad=True).detach()      # same kind, another line
    assert mode.neutralised == 0 and not other.requires_grad


def test_remedy_refuses_a_python_number_cut_and_names_its_line():
    pieces = digits_pieces("item")
    with pytest.raises(NotApplicable, match=rf"cannot be neutralised.*test_fix_graph.py:{line_of('.item()')}"):
        apply_all(pieces, [REMEDIES["reconnected_graph"]], Context((finding(),), 0))


def test_remedy_needs_the_doctors_warning():
    with pytest.raises(NotApplicable, match="no module cut off"):
        apply_all(digits_pieces("detach"), [REMEDIES["reconnected_graph"]], Context((), 0))


@pytest.mark.parametrize("how,edit", [("detach", "remove `.detach()`"), ("no_grad", "out of the `torch.no_grad()`")])
def test_fix_verifies_the_reconnected_graph_by_retraining(how, edit):
    report = run_fix(PiecesSource(digits_pieces(how)))
    assert "parameters_without_gradient" in report.flagged and report.exit_code == 0
    assert report.chosen.name == "reconnected_graph"
    change = report.chosen.trials[0].changes[0]["code"]
    assert edit in change and "test_fix_graph.py:" in change
    assert report.chosen.trials[0].val_acc > report.baseline[0].val_acc + 0.1
    # the retrained copy is the model without the cut: same accuracy as training that model directly
    reference = run_trial(PiecesSource(digits_pieces("none")), ())
    assert reference.val_acc == pytest.approx(report.chosen.trials[0].val_acc)
    assert reference.curve == pytest.approx(report.chosen.trials[0].curve)
