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
from impediments.train import Setup
from impediments.monitor import schema as S
from impediments import watch

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


def run(model=None, steps=20, lr=0.05, batch=32, data=None, opt=None, loss_fn=F.cross_entropy, step_fn=None,
        batches=None, scheduler=None):
    model = model if model is not None else mlp()
    X, y = data if data is not None else blobs()
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr)
    setup = Setup(model_fn=lambda: model, X=X, y=y, loss_fn=loss_fn, steps=steps, batch_size=batch, step_fn=step_fn,
                  batches_fn=batches, scheduler_fn=scheduler)
    return train_under_monitor(setup, model=model, optimizer=opt)


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


def reinitialized(model, opt, loss_fn, xb, yb, step):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.reset_parameters()                 # the bug: re-initialized inside the loop
    return healthy_step(model, opt, loss_fn, xb, yb, step)


def healthy_step(model, opt, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def biases_only(model):
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith("bias"))
    return model


def accumulate_whole_run(model, opt, loss_fn, xb, yb, step):
    loss = loss_fn(model(xb), yb)
    loss.backward()
    if (step + 1) % 40 == 0:                     # accumulation over the whole run: one step
        opt.step()
        opt.zero_grad()
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
    "optimizer_rarely_steps": dict(step_fn=accumulate_whole_run, steps=40),
    "almost_all_frozen": dict(model=lambda: biases_only(mlp())),
    "parameters_reset": dict(step_fn=reinitialized),
}


def test_every_loop_code_has_a_broken_loop():
    assert set(BROKEN) == LOOP_CODES and len(LOOP_CODES) == 12


@pytest.mark.parametrize("code", sorted(BROKEN))
def test_each_bug_is_named_within_20_steps(code, recwarn):
    loop = dict(BROKEN[code])
    model = loop.pop("model", mlp)()
    if "opt" in loop:
        loop["opt"] = loop["opt"](model)
    loop.setdefault("steps", 20)
    report = run(model, **loop).report()
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


# --------------------------------------------------------------------------------------------- the rules, pure
def lp(module="fc", order=0, in_optimizer=True, lr=0.1, received=10, gsum=1.0, changed=True, stale=0, wnorm=1.0):
    return S.LoopParamStats(module=module, order=order, in_optimizer=in_optimizer, lr=lr, received=received,
                            gradient_norm_sum=gsum, changed=changed, stale=stale, weight_norm=wnorm)


def ce(calls=10, probs=0, source="AddmmBackward0", classes=10):
    return S.LossCallStats(calls=calls, input_from={source: calls}, classes=classes, probability_rows=probs,
                           max_probability=0.2 if probs else None, shape_mismatches=0, input_shape=None,
                           target_shape=None, broadcast_numel=None)


def loop_stats(**kw):
    base = dict(optimizer_steps=20, forwards_per_step=[1, 1], backwards=10, grad_checks=9, stale_steps=[],
                params={"fc.weight": lp(), "out.weight": lp("out", 1)}, losses={}, target_batches=0,
                targets_per_batch=None, distinct_classes_per_batch=None, class_counts=[], compared_inputs=0,
                repeated_inputs=0, learning_rates=[], clip_calls=0, clip_max_norm=None, clip_at_least=[],
                clip_log_ratio_mean=None)
    base.update(kw)
    return S.LoopStats(**base)


def loop_codes(th=None, **kw):
    s = S.MonitorStats(schema_version=S.SCHEMA_VERSION, steps=20, sampled_steps=10, model_training_steps=20,
                       activations={}, layers={}, params={}, symmetry={}, batchnorm={}, inputs=None, loss=None,
                       nonfinite=None, windows=[], optimizer=None, loop=loop_stats(**kw))
    return {(f.code, f.severity) for f in diagnose(s, th).findings}


def lr_group(first=0.1, last=1e-3, below=(5, 10, None, None, None, None)):
    return {"first": first, "max": first, "min": last, "last": last, "below": list(below), "first_step": 0}


def test_a_healthy_loop_is_quiet_and_each_rule_fires_past_its_threshold_only():
    assert loop_codes() == set()
    stale = {"fc.weight": lp(stale=4), "out.weight": lp("out", 1, stale=4)}
    assert loop_codes(params=stale) == {("gradients_not_cleared", "warning")}            # 4 of 9 checks
    stale = {"fc.weight": lp(stale=5), "out.weight": lp("out", 1)}
    assert loop_codes(params=stale) == {("gradients_not_cleared", "error")}              # 5 of 9 >= 0.5
    assert loop_codes(forwards_per_step=[4, 4]) == {("gradients_not_cleared", "info")}   # accumulation
    assert loop_codes(params={"fc.weight": lp(changed=False), "out.weight": lp("out", 1)}) == {
        ("parameters_not_updated", "warning")}
    assert loop_codes(params={"fc.weight": lp(changed=False, gsum=1e-9)}) == set()       # below float32 resolution
    assert loop_codes(params={"fc.weight": lp(changed=False, lr=0.0, gsum=1e-9)}) == {
        ("parameters_not_updated", "error")}                                              # lr 0 is named
    assert loop_codes(params={"fc.weight": lp(received=0), "out.weight": lp("out", 1)}) == {
        ("parameters_without_gradient", "warning")}
    assert loop_codes(params={"fc.weight": lp(received=0, order=None), "out.weight": lp("out", 1)}) == {
        ("parameters_without_gradient", "info")}
    assert loop_codes(losses={"cross_entropy": ce(probs=5)}) == {("softmax_before_loss", "error")}
    assert loop_codes(losses={"cross_entropy": ce(probs=4)}) == set()
    assert loop_codes(losses={"nll_loss": ce(source="SoftmaxBackward0")}) == {("softmax_before_loss", "error")}
    assert loop_codes(losses={"nll_loss": ce(source="LogSoftmaxBackward0")}) == set()
    broadcast = S.LossCallStats(calls=3, input_from={}, classes=None, probability_rows=0, max_probability=None,
                                shape_mismatches=3, input_shape=[64, 1], target_shape=[64], broadcast_numel=4096)
    assert loop_codes(losses={"mse_loss": broadcast}) == {("loss_broadcast", "error")}
    counts = [100] * 10                                      # E = 10 (1 - 0.9^64) = 9.99 classes per shuffled batch
    assert loop_codes(target_batches=10, targets_per_batch=64.0, distinct_classes_per_batch=4.99,
                      class_counts=counts) == {("unshuffled_batches", "warning")}
    assert loop_codes(target_batches=10, targets_per_batch=64.0, distinct_classes_per_batch=5.01,
                      class_counts=counts) == set()
    assert loop_codes(target_batches=10, targets_per_batch=64.0, distinct_classes_per_batch=1.0,
                      class_counts=[500, 500]) == set()      # a binary task: E <= 2
    restarted = dict(loader_iterators=20, loader_batches=10, loader_batches_drawn=20)   # next(iter(loader))
    assert loop_codes(compared_inputs=10, repeated_inputs=9, **restarted) == {("repeated_batch", "warning")}
    assert loop_codes(compared_inputs=10, repeated_inputs=8, **restarted) == set()
    assert loop_codes(compared_inputs=10, repeated_inputs=9) == {("repeated_batch", "info")}   # full batch, no loader
    assert loop_codes(compared_inputs=10, repeated_inputs=9, loader_iterators=20, loader_batches=1,
                      loader_batches_drawn=40) == {("repeated_batch", "info")}                 # a one-batch loader
    assert loop_codes(compared_inputs=10, repeated_inputs=9, loader_iterators=20, loader_batches=10,
                      loader_batches_drawn=200) == {("repeated_batch", "info")}                # read to the end
    assert loop_codes(optimizer_steps=1, training_forwards=60) == {("optimizer_rarely_steps", "warning")}
    assert loop_codes(optimizer_steps=0, training_forwards=40) == {("optimizer_rarely_steps", "error")}
    assert loop_codes(optimizer_steps=1, training_forwards=31) == set()                  # < 32 forwards per step
    assert loop_codes(optimizer_steps=3, training_forwards=3000) == set()                # 3 steps: a long run
    assert loop_codes({"rare_step_factor": 61}, optimizer_steps=1, training_forwards=60) == set()   # it acts
    assert loop_codes({"loader_first_batch_only": 0.9}, compared_inputs=10, repeated_inputs=9,
                      **restarted) == {("repeated_batch", "info")}                      # it acts
    assert loop_codes(steps_before_backward=6, step_checks=11, params={
        "fc.weight": lp(changed=False), "out.weight": lp("out", 1, changed=False)}) == {("parameters_not_updated",
                                                                                         "error")}
    assert loop_codes(params={"fc.weight": lp(received=0), "out.weight": lp("out", 1, received=0)}) == {
        ("parameters_without_gradient", "error")}                                       # backward reached none
    assert loop_codes(external_write_checks=10, external_writes=10) == {("parameters_reset", "error")}
    assert loop_codes(external_write_checks=10, external_writes=4) == set()             # under half: a one-off
    assert loop_codes({"external_write_fraction": 0.3}, external_write_checks=10, external_writes=4) == {
        ("parameters_reset", "error")}                                                  # it acts
    frozen = dict(frozen_values=9800, trainable_values=200, trainable_only_norm_or_bias=True)
    assert loop_codes(**frozen) == {("almost_all_frozen", "warning")}                  # no loss trend: the cost unknown
    assert loop_codes({"frozen_share": 0.01}, **frozen) == set()                        # 2% trainable: it acts
    assert loop_codes(**{**frozen, "trainable_only_norm_or_bias": False}) == set()     # a linear probe: on purpose
    assert loop_codes(learning_rates=[lr_group()]) == {("learning_rate_collapsed", "warning")}      # by step 10 of 20
    assert loop_codes(learning_rates=[lr_group(below=(5, 11, None, None, None, None))]) == set()   # after half
    assert loop_codes(learning_rates=[lr_group(last=0.05)]) == set()                              # came back up
    assert loop_codes(clip_calls=10, clip_max_norm=1.0, clip_at_least=[10, 9, 2, 0, 0], clip_log_ratio_mean=1.2) == {
        ("gradient_clipping_dominates", "warning")}
    assert loop_codes(clip_calls=10, clip_max_norm=1.0, clip_at_least=[10, 8, 2, 0, 0], clip_log_ratio_mean=1.1) == set()


def test_every_loop_finding_carries_evidence_and_its_example_link():
    import re

    findings = []
    for kw in (dict(params={"fc.weight": lp(stale=9, changed=False), "out.weight": lp("out", 1, received=0)}),
               dict(losses={"cross_entropy": ce(probs=10)}, compared_inputs=5, repeated_inputs=5,
                    learning_rates=[lr_group()], clip_calls=5, clip_at_least=[5, 5, 0, 0, 0], clip_log_ratio_mean=1.5,
                    target_batches=5, targets_per_batch=64.0, distinct_classes_per_batch=1.0,
                    class_counts=[100] * 10, loader_iterators=20, loader_batches=10, loader_batches_drawn=20),
               dict(optimizer_steps=1, training_forwards=60),
               dict(frozen_values=9800, trainable_values=200, trainable_only_norm_or_bias=True,
                    external_write_checks=10, external_writes=10)):
        s = S.MonitorStats(schema_version=S.SCHEMA_VERSION, steps=20, sampled_steps=10, model_training_steps=20,
                           activations={}, layers={}, params={}, symmetry={}, batchnorm={}, inputs=None, loss=None,
                           nonfinite=None, windows=[], optimizer=None, loop=loop_stats(**kw))
        findings += diagnose(s).findings
    broadcast = S.LossCallStats(calls=3, input_from={}, classes=None, probability_rows=0, max_probability=None,
                                shape_mismatches=3, input_shape=[64, 1], target_shape=[64], broadcast_numel=4096)
    s = S.MonitorStats(schema_version=S.SCHEMA_VERSION, steps=20, sampled_steps=10, model_training_steps=20,
                       activations={}, layers={}, params={}, symmetry={}, batchnorm={}, inputs=None, loss=None,
                       nonfinite=None, windows=[], optimizer=None, loop=loop_stats(losses={"mse_loss": broadcast}))
    findings += diagnose(s).findings
    assert {f.code for f in findings} == LOOP_CODES
    for f in findings:
        assert f.evidence and f.explanation and f.where
        [path] = re.findall(r"see: impediments doctor (examples/loop_[a-z_]+\.py)$", f.remedy)
        assert (EXAMPLES.parent / path).is_file() and (EXAMPLES.parent / path.replace(".py", "_fixed.py")).is_file()


def test_accelerator_path_never_reads_a_value_back():
    """On the ``meta`` device any host read or data-dependent shape raises: every probe hook (fingerprints,
    loss calls with class histograms, the backward check, clipping, learning rates) runs there untouched."""
    model = mlp().to("meta")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)
    with watch(model, optimizer=opt, every=1) as mon:
        for step in range(6):
            x, y = torch.randn(16, 8, device="meta"), torch.randint(0, 4, (16,), device="meta")
            loss = F.cross_entropy(model(x).softmax(1), y) + F.mse_loss(model(x)[:, :1], x[:, 0])
            if step % 2:
                opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
    probe = mon.loop
    assert probe.steps == 6 and probe.backwards == 6 and probe.clip["calls"] == 6
    assert {"cross_entropy", "mse_loss"} <= set(probe.loss_calls.losses) and probe.loss_calls.batches == 6
    assert probe.stale_steps == [2, 4]               # no zero_grad before them (norms not read on a device)


class Heads(nn.Module):
    """A body, the classifier the loss uses, and an auxiliary head computed but left out of the loss."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.cls, self.aux = nn.Sequential(nn.Linear(8, 32), nn.ReLU()), nn.Linear(32, 4), nn.Linear(32, 1)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), self.aux(h)


class FrozenUnderNoGrad(nn.Module):
    """Transfer learning written with ``torch.no_grad()``: the backbone keeps requires_grad, the optimizer skips it."""

    def __init__(self):
        super().__init__()
        self.backbone, self.head = mlp()[:4], nn.Linear(32, 4)

    def forward(self, x):
        with torch.no_grad():
            h = self.backbone(x)
        return self.head(h)


def test_dead_end_heads_and_backbones_frozen_under_no_grad_are_info_not_cuts():
    report = run(Heads(), steps=12, loss_fn=lambda out, y: F.cross_entropy(out[0], y)).report()
    [f] = report.by_code("parameters_without_gradient")
    assert f.severity == "info" and f.where == ["aux"]
    model = FrozenUnderNoGrad()
    report = run(model, steps=12, opt=torch.optim.SGD(model.head.parameters(), lr=0.05)).report()
    [f] = report.by_code("parameters_without_gradient")
    assert f.severity == "info" and f.where == ["backbone.0", "backbone.2"] and not flagged(report) & LOOP_CODES
    model = FrozenUnderNoGrad()                  # the same forward, but the optimizer was meant to train it all
    [f] = run(model, steps=12, opt=torch.optim.SGD(model.parameters(), lr=0.05)).report().by_code(
        "parameters_without_gradient")
    assert f.severity == "warning" and f.where[0] == "backbone.2"


@pytest.mark.parametrize("chunk", [1 << 18, 40], ids=["whole", "chunks of 4 rows"])
@pytest.mark.parametrize("kind", ["cross_entropy", "nll_loss"])
def test_gradient_scale_of_probabilities_equals_autograd(kind, chunk, monkeypatch):
    """The measured effect of a softmax in front of the loss: the gradient reaching the logits, over the one the
    loss on the logits gives, against autograd; the same computed over chunks of rows (as for a large vocabulary),
    the last chunk partial."""
    from impediments.monitor.probes.loop import loss_calls
    from impediments.monitor.probes.loop.loss_calls import gradient_scale

    monkeypatch.setattr(loss_calls, "ROW_CHUNK_VALUES", chunk)
    assert len(loss_calls.row_chunks(torch.zeros(32, 10), 1)) == (1 if chunk > 320 else 8)
    torch.manual_seed(0)
    z, y = torch.randn(32, 10, dtype=torch.float64, requires_grad=True), torch.randint(0, 10, (32,))
    p = z.softmax(1)
    F.cross_entropy(p, y).backward() if kind == "cross_entropy" else F.nll_loss(p, y).backward()
    actual = z.grad.clone()
    z.grad = None
    F.cross_entropy(z, y).backward()
    want = actual.norm() / z.grad.norm()
    assert float(gradient_scale(p.detach(), y, kind)) == pytest.approx(float(want), rel=1e-9)


def test_loss_drop_counts_learning_the_label_prior_as_no_learning():
    """A language model whose loss falls from ln V to the unigram entropy learned the class frequencies only: the
    drop the severity rules read is measured against the prior entropy too (with balanced classes, ln C: no change)."""
    from impediments.doctor.rules.base import loss_drop

    counts = [800] + [10] * 20
    prior = -sum(c / 1000 * math.log(c / 1000) for c in counts)
    means = [math.log(21)] + [prior] * 5
    loss = S.LossStats(count=100, first=means[0], last=prior, min=prior, window_means=means, first_nonfinite_step=None)

    def with_loop(**kw):
        return S.MonitorStats(schema_version=S.SCHEMA_VERSION, steps=100, sampled_steps=10, model_training_steps=100,
                              activations={}, layers={}, params={}, symmetry={}, batchnorm={}, inputs=None, loss=loss,
                              nonfinite=None, windows=[], optimizer=None, loop=loop_stats(**kw))
    assert loss_drop(with_loop()) == pytest.approx(1 - prior / math.log(21))          # > 0.25: it "fell"
    assert loss_drop(with_loop(losses={"cross_entropy": ce(classes=21)}, class_counts=counts)) == pytest.approx(0.0)
    balanced = with_loop(losses={"cross_entropy": ce(classes=21)}, class_counts=[10] * 21)
    assert loss_drop(balanced) == pytest.approx(1 - prior / math.log(21))            # H = ln 21 = the start


@pytest.mark.parametrize("chunk", [1 << 18, 24], ids=["whole", "chunks of 3 rows"])
def test_probability_rows_are_found_over_chunks_of_rows_and_one_row_off_is_not(chunk, monkeypatch):
    """Rows that are probabilities are counted whether the rows' sums are taken at once or in chunks (a large
    vocabulary's logits go through in chunks, no float64 copy of the whole); one row off by 1% in the last,
    partial chunk makes the call not probabilities (brute force: every row's sum within 1e-3 of 1)."""
    from impediments.monitor.probes.loop import loss_calls

    monkeypatch.setattr(loss_calls, "ROW_CHUNK_VALUES", chunk)
    model = nn.Linear(5, 8)
    off = torch.ones(10, 1)
    off[-1] = 1.01
    with watch(model, optimizer=None) as mon:
        for step in range(4):
            p = model(torch.randn(10, 5)).softmax(1) * (off if step % 2 else 1.0)
            assert bool(((p.double().sum(1) - 1).abs() <= 1e-3).all()) is (step % 2 == 0)
            F.cross_entropy(p, torch.randint(0, 8, (10,))).backward()
    ce = mon.stats().loop.losses["cross_entropy"]
    assert (ce.calls, ce.probability_rows) == (4, 2)


def test_monitors_exited_out_of_order_leave_only_pass_through_wrappers():
    """Two monitors entered by hand and exited first-in first-out: the later one restores the earlier one's
    clip wrapper as the function it found. That wrapper, detached, passes straight through: it records
    nothing into its finished monitor and works on any device (the meta device here, against torch's own)."""
    original = torch.nn.utils.clip_grad_norm_
    model = nn.Linear(4, 2)
    first, second = watch(model), watch(model)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    try:
        left = torch.nn.utils.clip_grad_norm_
        calls = first.stats().loop.clip_calls
        meta = nn.Linear(4, 2).to("meta")
        meta(torch.randn(3, 4, device="meta")).sum().backward()
        total = left(meta.parameters(), 1.0)
        assert total.device.type == "meta" and first.stats().loop.clip_calls == calls
        cpu = nn.Linear(4, 2)
        cpu(torch.randn(3, 4)).sum().backward()
        want = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in cpu.parameters()]))
        assert torch.allclose(left(cpu.parameters(), 1e9), want)
    finally:
        torch.nn.utils.clip_grad_norm_ = original
