"""Training-loop bugs (issue 18): the loop probe against brute force, every code on a real loop, look-alikes quiet."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from impediments.cli import main
from impediments.cli.spec import train_under_monitor
from impediments.doctor import CODES, diagnose
from impediments.monitor import schema as S
from impediments.monitor import watch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LOOP_CODES = {c for c in CODES if CODES[c].experiment.startswith("examples/loop_")}


def mlp(seed=0, classes=4):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, classes))


def blobs(n=512, classes=4, seed=0):
    """Separable Gaussian blobs: ``(X, y)`` with ``n / classes`` examples per class, in random order."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    centers = torch.randn(classes, 8, generator=g) * 2
    return centers[y] + torch.randn(n, 8, generator=g), y


def flagged(report):
    return {f.code for f in report.findings if f.severity in ("warning", "error")}


def run(model=None, steps=20, lr=0.05, batch=32, data=None, **loop):
    model = model if model is not None else mlp()
    X, y = data if data is not None else blobs()
    opt = loop.pop("opt", None) or torch.optim.SGD(model.parameters(), lr=lr)
    sched = loop.pop("scheduler", None)
    return train_under_monitor(model, X, y, opt, loop.pop("loss_fn", F.cross_entropy), steps=steps, batch_size=batch,
                               scheduler=sched(opt) if sched else None, **loop)


# --------------------------------------------------------------------------------------------- the probe
def test_probe_counts_equal_brute_force():
    """Stale gradients, received gradients, class histograms, repeated inputs, clipping ratios, learning rates."""
    model, (X, y) = mlp(), blobs()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    original = torch.nn.utils.clip_grad_norm_
    batches = [(X[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]) for i in range(6)]
    batches[4] = batches[3]                                  # one repeated input
    ratios = []
    with watch(model, optimizer=opt, every=1) as mon:
        assert torch.nn.utils.clip_grad_norm_ is not original
        for step, (xb, yb) in enumerate(batches):
            loss = F.cross_entropy(model(xb), yb)
            if step % 2 == 0:
                opt.zero_grad()                              # odd steps keep the previous step's gradient
            loss.backward()
            total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
            ratios.append(float(total) / 0.05)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05)
            opt.step()
    assert torch.nn.utils.clip_grad_norm_ is original and not torch.overrides._get_current_function_mode_stack()
    loop = mon.stats().loop
    assert (loop.optimizer_steps, loop.backwards, loop.grad_checks, loop.stale_steps) == (6, 6, 5, [1, 3, 5])
    assert all(p.stale == 3 and p.received == 6 and p.changed and p.in_optimizer for p in loop.params.values())
    assert [loop.params[n].order for n in ("0.weight", "2.weight", "4.weight")] == [0, 1, 2]
    targets = torch.cat([yb for _, yb in batches])
    assert loop.class_counts == torch.bincount(targets, minlength=4).tolist()
    assert loop.distinct_classes_per_batch == pytest.approx(sum(len(yb.unique()) for _, yb in batches) / 6)
    assert (loop.compared_inputs, loop.repeated_inputs, loop.targets_per_batch) == (5, 1, 32.0)
    assert loop.clip_calls == 6 and loop.clip_max_norm == 0.05
    assert loop.clip_at_least == [sum(r >= 10 ** k for r in ratios) for k in range(5)]
    assert loop.clip_log_ratio_mean == pytest.approx(sum(map(math.log10, ratios)) / 6, rel=1e-6)
    assert loop.forwards_per_step == [1, 1] and loop.learning_rates[0]["max"] == 0.05
    ce = loop.losses["cross_entropy"]
    assert (ce.calls, ce.input_from, ce.classes, ce.probability_rows) == (6, {"AddmmBackward0": 6}, 4, 0)
    back = S.MonitorStats.from_dict(mon.stats().to_dict())
    assert back.loop == loop
    old = mon.stats().to_dict()
    del old["loop"]
    assert S.MonitorStats.from_dict(old).loop is None          # documents written before the loop probe


class Cut(nn.Module):
    """A frozen first layer, a .detach() after ``b``, an unused layer; only ``c`` learns."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.frozen, self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)
        self.unused = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(self.frozen(x))))).detach())


def test_cut_graph_unused_and_not_updated_parameters_are_named():
    model = Cut()
    opt = torch.optim.SGD([model.c.weight, model.a.weight, model.a.bias, model.b.weight, model.b.bias], lr=0.1)
    mon = run(model, steps=12, opt=opt)
    loop = mon.stats().loop
    assert "frozen.weight" not in loop.params                  # requires_grad=False: not trainable, not checked
    assert {n for n, p in loop.params.items() if p.received} == {"c.weight", "c.bias"}
    assert loop.params["unused.weight"].order is None and loop.params["b.weight"].order == 2
    report = mon.report()
    cut, unused = sorted(report.by_code("parameters_without_gradient"), key=lambda f: f.severity != "warning")
    assert cut.severity == "warning" and cut.where[0] == "b" and cut.evidence["cut_after_module"] == "b"
    assert unused.severity == "info" and unused.where == ["unused"]
    [stuck] = report.by_code("parameters_not_updated")        # c.bias gets gradients, the optimizer lacks it
    assert stuck.severity == "warning" and stuck.evidence["parameters"] == ["c.bias"]
    assert stuck.evidence["not_in_optimizer"] == 1


# --------------------------------------------------------------------------------------------- every code, real loops
def no_zero_grad(model, opt, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb)
    loss.backward()
    opt.step()
    return loss


def per_batch_scheduler(model, opt, loss_fn, xb, yb, step, scheduler):
    loss = loss_fn(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    scheduler.step()
    return loss


def tiny_clip(model, opt, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-4)
    opt.step()
    return loss


def sorted_batches(X, y, batch, seed):
    order = torch.argsort(y, stable=True)
    while True:
        yield from DataLoader(TensorDataset(X[order], y[order]), batch_size=batch)


def first_batch(X, y, batch, seed):
    loader = DataLoader(TensorDataset(X, y), batch_size=batch)
    while True:
        yield next(iter(loader))


def other_instance(model):
    return torch.optim.SGD(mlp(seed=1).parameters(), lr=0.05)


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = mlp()[:4], nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.body(x).detach())


BROKEN = {
    "gradients_not_cleared": dict(step_fn=no_zero_grad),
    "parameters_not_updated": dict(opt=other_instance),
    "parameters_without_gradient": dict(model=Detached),
    "softmax_before_loss": dict(loss_fn=lambda out, y: F.cross_entropy(out.softmax(1), y)),
    "loss_broadcast": dict(model=lambda: mlp(classes=1), data=(blobs()[0], blobs()[1].float()), loss_fn=F.mse_loss),
    "unshuffled_batches": dict(batches=sorted_batches),
    "repeated_batch": dict(batches=first_batch),
    "learning_rate_collapsed": dict(step_fn=per_batch_scheduler,
                                    scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 2, gamma=0.1)),
    "gradient_clipping_dominates": dict(step_fn=tiny_clip),
}


def test_every_loop_code_has_a_broken_loop():
    assert set(BROKEN) == LOOP_CODES and len(LOOP_CODES) == 9


@pytest.mark.parametrize("code", sorted(BROKEN))
def test_each_bug_is_named_within_20_steps(code, recwarn):
    loop = dict(BROKEN[code])
    model = loop.pop("model", mlp)()
    if "opt" in loop:
        loop["opt"] = loop["opt"](model)
    report = run(model, steps=20, **loop).report()
    assert code in flagged(report), report
    assert flagged(report) & LOOP_CODES == {code}, "one loop bug, one loop code"
    [f] = [f for f in report.by_code(code) if f.severity != "info"]
    assert f.evidence and f.remedy.endswith(f"see: impediments doctor examples/loop_{code}.py")
    assert (EXAMPLES / f"loop_{code}.py").is_file() and (EXAMPLES / f"loop_{code}_fixed.py").is_file()


# --------------------------------------------------------------------------------------------- look-alikes
def accumulate(model, opt, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb) / 4
    loss.backward()
    if (step + 1) % 4 == 0:
        opt.step()
        opt.zero_grad()
    return loss


def balanced(X, y, batch, seed):
    weights = 1.0 / torch.bincount(y)[y].double()
    sampler = WeightedRandomSampler(weights, len(y), generator=torch.Generator().manual_seed(seed))
    while True:
        yield from DataLoader(TensorDataset(X, y), batch_size=batch, sampler=sampler)


def cosine(model, opt, loss_fn, xb, yb, step, scheduler):
    loss = per_batch_scheduler(model, opt, loss_fn, xb, yb, step, scheduler)   # T_max = the whole run, in batches
    return loss


def clip_at_one(model, opt, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def frozen_first():
    model = mlp()
    model[0].requires_grad_(False)
    return model


LOOK_ALIKES = {
    "gradient_accumulation": dict(step_fn=accumulate, steps=40),
    "frozen_first_layer": dict(model=frozen_first),
    "cosine_per_epoch": dict(scheduler=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10), steps=48),
    "cosine_per_batch_over_the_run": dict(step_fn=cosine, steps=40,
                                          scheduler=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 40)),
    "class_balanced_sampler": dict(batches=balanced, data=blobs(classes=4, n=512)),
    "clipping_spikes_only": dict(step_fn=clip_at_one),
}


@pytest.mark.parametrize("name", sorted(LOOK_ALIKES))
def test_legitimate_look_alikes_are_quiet(name):
    loop = dict(LOOK_ALIKES[name])
    model = loop.pop("model", mlp)()
    report = run(model, **loop).report()
    assert not flagged(report) & LOOP_CODES, report
    if name == "gradient_accumulation":
        [info] = report.by_code("gradients_not_cleared")
        assert info.severity == "info" and info.evidence["forwards_per_optimizer_step"] == [4, 4]


# --------------------------------------------------------------------------------------------- the examples
@pytest.mark.parametrize("code", ["gradients_not_cleared", "softmax_before_loss", "learning_rate_collapsed"])
def test_example_exits_1_naming_the_bug_and_its_fixed_twin_exits_0(code, capsys, recwarn):
    assert main(["doctor", str(EXAMPLES / f"loop_{code}.py"), "--steps", "20"]) == 1
    assert code in capsys.readouterr().out
    assert main(["doctor", str(EXAMPLES / f"loop_{code}_fixed.py"), "--steps", "20"]) == 0


def test_weights_before_batchnorm_count_as_updated_though_their_norm_barely_moves():
    """A layer followed by BatchNorm is scale invariant: its gradient is orthogonal to it, so tiny steps leave its
    norm (and, for BN's weight of ones, its sum) bitwise unchanged; the ramp-weighted fingerprint still sees them.
    The biases right before BatchNorm get gradients that are zero up to rounding: they truly stay put, and are
    not called stuck (their steps are below float32 resolution)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16), nn.BatchNorm1d(16),
                          nn.ReLU(), nn.Linear(16, 4))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mon = run(model, steps=10, step_fn=tiny_clip)
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    loop = mon.stats().loop
    assert {n for n, p in loop.params.items() if p.changed} == moved == set(before) - {"0.bias", "3.bias"}
    assert "parameters_not_updated" not in mon.report().codes
