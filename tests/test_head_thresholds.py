"""The output-head, target and initial-loss thresholds (issue 24) each change a decision: the stats come from
small real runs under the monitor (a few steps each, cached), and moving the threshold from its default to
another value changes the findings. ``tests/test_one_source.py`` reads :data:`ACTING` from here."""
from __future__ import annotations

import dataclasses
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments.doctor import Thresholds, diagnose
from impediments.monitor import Monitor


def _run(model, loss_fn, batches, lr=1e-2, every=1, record=False):
    """Train ``model`` on ``batches`` (a list of ``(x, y)``) under the monitor; the stats."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with Monitor(model, optimizer=opt, every=every) as mon:
        for x, y in batches:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            if record:
                mon.record_loss(loss)
            opt.step()
    return mon.stats()


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=None)
def _constant_half():
    """A linear head whose batch is one example repeated on every other step: the output is identical across the
    batch on half the sampled forwards (not a dead layer, not a one-unit softmax)."""
    torch.manual_seed(0)
    g = _gen(1)
    batches = []
    for step in range(20):
        x = torch.randn(16, 5, generator=g)
        if step % 2:
            x = x[:1].expand(16, 5).clone()
        batches.append((x, torch.randn(16, 3, generator=g)))
    return _run(nn.Sequential(nn.Linear(5, 3)), nn.MSELoss(), batches)


@functools.lru_cache(maxsize=None)
def _logits_spread(scale: float, loss: str):
    """Step 0 of a linear head with weights scaled so the outputs start large: cross-entropy about 3 nats above
    ln C, or MSE / BCE-with-logits several times what a zero output scores."""
    torch.manual_seed(0)
    g = _gen(2)
    model = nn.Linear(16, 4)
    with torch.no_grad():
        model.weight.mul_(scale)
    x = torch.randn(256, 16, generator=g)
    if loss == "cross_entropy":
        return _run(model, F.cross_entropy, [(x, torch.randint(0, 4, (256,), generator=g))])
    return _run(model, F.mse_loss, [(x, 0.3 * torch.randn(256, 4, generator=g))])


@functools.lru_cache(maxsize=None)
def _shuffled_labels():
    """Labels shuffled apart from the inputs (three classes, about 70/20/10): the loss settles at their entropy."""
    torch.manual_seed(0)
    g = _gen(7)
    X = torch.randn(20000, 6, generator=g)
    y = torch.full((20000,), 0)
    y[X[:, 0] > 0.52] = 1
    y[X[:, 0] > 1.28] = 2
    y = y[torch.randperm(20000, generator=g)]
    batches = [(X[i], y[i]) for i in (torch.randint(0, 20000, (100,), generator=g) for _ in range(80))]
    return _run(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), F.cross_entropy, batches, every=None,
                record=True)


def _loss_moved(s, factor: float):
    """The same run with every recorded loss window ``factor`` times its value (the loss settled above H)."""
    windows = [dataclasses.replace(w, loss_mean=None if w.loss_mean is None else w.loss_mean * factor)
               for w in s.windows]
    loss = dataclasses.replace(s.loss, window_means=[None if v is None else v * factor for v in s.loss.window_means])
    return dataclasses.replace(s, windows=windows, loss=loss)


@functools.lru_cache(maxsize=None)
def _multihot(share: float):
    """Cross-entropy on float target rows, ``share`` of them with two labels (the others one-hot)."""
    g = _gen(3)
    x = torch.randn(100, 5, generator=g)
    y = F.one_hot(torch.randint(0, 4, (100,), generator=g), 4).float()
    k = int(share * 100)
    y[:k, 0] = 1.0
    y[:k, 1] = 1.0
    return _run(nn.Sequential(nn.Linear(5, 4)), nn.CrossEntropyLoss(), [(x, y)] * 3)


@functools.lru_cache(maxsize=None)
def _relu_logits():
    """Logits through a ReLU into cross-entropy: about half of them exactly 0."""
    torch.manual_seed(0)
    g = _gen(4)
    x = torch.randn(64, 5, generator=g)
    return _run(nn.Sequential(nn.Linear(5, 4), nn.ReLU()), nn.CrossEntropyLoss(),
                [(x, torch.randint(0, 4, (64,), generator=g))] * 3)


@functools.lru_cache(maxsize=None)
def _regression(mean: float, std: float, bias_at_mean: bool = False, steps: int = 3):
    """An MLP on targets of the given mean and spread (optionally with its output bias already at the mean)."""
    torch.manual_seed(0)
    g = _gen(5)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
    if bias_at_mean:
        with torch.no_grad():
            model[2].bias.fill_(mean)
    batches = []
    for _ in range(steps):
        x = torch.randn(64, 5, generator=g)
        batches.append((x, mean + std * x[:, :1]))
    return _run(model, nn.MSELoss(), batches, every=1, record=steps > 3)


@functools.lru_cache(maxsize=None)
def _outside(share: float):
    """A sigmoid head on targets of which ``share`` lie above 1."""
    g = _gen(6)
    x = torch.randn(100, 5, generator=g)
    y = torch.rand(100, 1, generator=g) * 0.9
    y[: int(share * 100)] = 2.0
    return _run(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), nn.MSELoss(), [(x, y)] * 3)


#: threshold -> (stats, default value, another value): moving the threshold changes a decision
ACTING = {
    "constant_output_fraction": (_constant_half, 0.9, 0.4),
    "initial_loss_excess": (lambda: _logits_spread(8.0, "cross_entropy"), 2.0, 20.0),
    "initial_loss_ratio": (lambda: _logits_spread(8.0, "mse"), 4.0, 1e4),
    "label_entropy_min_update": (_shuffled_labels, 1e-4, 1.0),
    "label_entropy_tolerance": (lambda: _loss_moved(_shuffled_labels(), 1.1), 0.05, 0.3),
    "multihot_fraction": (lambda: _multihot(0.2), 0.1, 0.5),
    "relu_logit_zero_fraction": (_relu_logits, 0.1, 0.9),
    "target_scale": (lambda: _regression(30.0, 5.0), 10.0, 100.0),
    "target_scale_cost": (lambda: _regression(30.0, 5.0, steps=60), 0.5, 0.9),
    "target_scale_reached": (lambda: _regression(30.0, 5.0, bias_at_mean=True), 0.5, 1e-4),
    "targets_outside_error": (lambda: _outside(0.3), 0.5, 0.2),
    "targets_outside_warning": (lambda: _outside(0.1), 0.05, 0.2),
}


def _decisions(report) -> frozenset:
    return frozenset([(f.code, f.severity, tuple(f.where)) for f in report.findings]
                     + [("not checked", k, v) for k, v in report.skipped.items()])


@pytest.mark.parametrize("name", sorted(ACTING))
def test_moving_a_head_threshold_changes_a_decision(name):
    build, value, other = ACTING[name]
    table = {r["name"]: r["value"] for r in Thresholds().describe()}
    assert table[name] == value, f"{name}: the first value is the default"
    s = build()
    assert _decisions(diagnose(s, {name: value})) != _decisions(diagnose(s, {name: other}))
