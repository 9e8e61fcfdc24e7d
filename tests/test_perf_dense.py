"""Dense recording (``watch(every=1)``, issue 17 item 2) against brute force.

Dense statistics are recorded at every step, window statistics on the full steps only
(``impediments.monitor.schedule``); the module-hooks-only path sees what the TorchFunctionMode sees;
the fast paths (one-pass variance, host rows, sparse gradient norms) equal their references. Speed
lives in ``benchmarks/overhead.py``, not here.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments import watch
from impediments.monitor.state.bag import Bag, Field
from impediments.monitor.state.moments import batch_moments, merge_moments, moments_dict
from impediments.monitor.probes.params import norms
from impediments.monitor.schedule import FullSchedule, default_count, default_schedule, full_schedule, make_schedule

BATCH, STEPS = 16, 60
FULL = [s for s in range(STEPS) if default_schedule(s)]          # 0..9 and 50


def mlp(inplace=False):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(inplace=inplace), nn.Linear(12, 12), nn.ReLU(inplace=inplace),
                         nn.Linear(12, 3))


def train(model, steps=STEPS, every=1, capture=None, after_forward=None, seed=1):
    """SGD on random batches under ``watch``; ``capture`` gets each Linear output and gradient per step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(seed)
    handles = []
    if capture is not None:
        def keep(name):
            def hook(module, args, out):
                capture.setdefault(name, []).append(out.detach().clone())
                out.register_hook(lambda grad: capture.setdefault(name + ".grad", []).append(grad.clone()))
            return hook
        handles = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    with watch(model, optimizer=opt, every=every) as mon:
        for step in range(steps):
            x, y = torch.randn(BATCH, 6, generator=g), torch.randint(0, 3, (BATCH,), generator=g)
            out = model(x)
            if after_forward is not None:
                after_forward(mon, step)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    for h in handles:
        h.remove()
    return mon


def ref_moments(tensors):
    x = torch.cat([t.double().reshape(-1) for t in tensors])
    return x.numel(), x.mean().item(), x.var(unbiased=False).item()


# --------------------------------------------------------------------------------------------- schedules
def test_full_schedule_paces_window_statistics_at_the_default_rate():
    for step in [0, 5, 9, 10, 49, 50, 51, 9999, 10000, 10199, 10200, 12345]:
        assert default_count(step) == sum(map(default_schedule, range(step + 1)))
    every1 = full_schedule(make_schedule(1))
    assert [s for s in range(1000) if every1.decide(s)] == [s for s in range(1000) if default_schedule(s)]
    assert full_schedule(default_schedule) is default_schedule
    every3 = FullSchedule(make_schedule(3))
    full = [s for s in range(400) if s % 3 == 0 and every3.decide(s)]
    assert full[:10] == list(range(0, 30, 3)) and all(default_count(s) >= i + 1 for i, s in enumerate(full))
    sparse = FullSchedule(lambda s: s % 50 == 25)                   # sparser than the default: all full
    assert all(sparse.decide(s) for s in range(25, 2000, 50))
    again = FullSchedule(make_schedule(1))
    assert again(3) and again.decide(3) and again.decide(3) and again.taken == 1   # one decision per step


# --------------------------------------------------------------------------------------------- dense vs window
def test_dense_statistics_every_step_window_statistics_on_full_steps():
    model, seen = mlp(), {}
    mon = train(model, capture=seen)
    s = mon.stats()
    assert s.steps == s.sampled_steps == STEPS and mon.ctx.full_steps == len(FULL)
    for name in ("0", "2", "4"):                                     # Linear outputs and their gradients: dense
        n, mean, var = ref_moments(seen[name])
        lay = s.layers[name]
        assert (lay.output.count, lay.output.mean, lay.output.var) == (n, pytest.approx(mean, rel=1e-5, abs=1e-9),
                                                                       pytest.approx(var, rel=1e-5))
        assert lay.grad_var == pytest.approx(ref_moments(seen[name + ".grad"])[2], rel=1e-5)
        full_out = [seen[name][i] for i in FULL]                     # extremes: full steps only
        assert lay.output.min == pytest.approx(min(t.min().item() for t in full_out))
        assert lay.output.max == pytest.approx(max(t.max().item() for t in full_out))
    relu = s.activations["1"]
    pre = seen["0"]
    assert relu.input.count == STEPS * BATCH * 12                    # pre-activation moments: dense
    assert relu.input.var == pytest.approx(ref_moments(pre)[2], rel=1e-5)
    assert relu.unit_total == STEPS * BATCH                          # per-unit region counts: dense
    assert relu.unit_active_counts == sum((p > 0).sum(0) for p in pre).tolist()
    assert relu.output.count == len(FULL) * BATCH * 12               # outputs, histograms: full steps
    assert relu.output.var == pytest.approx(ref_moments([pre[i].relu() for i in FULL])[2], rel=1e-5)
    assert sum(relu.histogram.counts) == len(FULL) * BATCH * 12
    assert s.inputs.count == len(FULL) * BATCH
    p = s.params["2.weight"]
    assert p.samples == STEPS and math.isfinite(p.grad_norm) and math.isfinite(p.update_to_weight)
    assert sum(1 for w in s.windows if w.grad_norm) == len(s.windows)   # gradient norms in every window


def test_update_ratios_on_full_steps_equal_brute_force():
    model = mlp()
    ratios = []
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    with watch(model, optimizer=opt, every=1) as mon:
        for step in range(STEPS):
            x, y = torch.randn(BATCH, 6, generator=g), torch.randint(0, 3, (BATCH,), generator=g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            w = model[2].weight.detach().clone()
            opt.step()
            if default_schedule(step):
                ratios.append((model[2].weight.detach() - w).norm().item() / w.norm().item())
            mon.record_loss(loss)
    assert mon.stats().params["2.weight"].update_to_weight == pytest.approx(sum(ratios) / len(ratios), rel=1e-5)


def test_training_is_bit_identical_with_module_hooks_only():
    ref, watched = mlp(inplace=True), mlp(inplace=True)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        x, y = torch.randn(BATCH, 6, generator=g), torch.randint(0, 3, (BATCH,), generator=g)
        loss = F.cross_entropy(ref(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train(watched)
    for (n, a), (_, b) in zip(ref.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), n


# --------------------------------------------------------------------------------------------- module hooks only
@pytest.mark.parametrize("inplace", [False, True])
def test_module_hooks_alone_record_what_the_mode_records(inplace):
    def force_mode(mon, step):
        mon._icpt.modules_suffice = False                            # the next dense forward arms the mode

    seen = {}
    light = train(mlp(inplace), capture=seen).stats()
    heavy = train(mlp(inplace), after_forward=force_mode).stats()
    for name, a in light.activations.items():
        b = heavy.activations[name]
        assert (a.input, a.output, a.unit_active_counts, a.histogram) == (b.input, b.output, b.unit_active_counts,
                                                                          b.histogram), name
    assert light.layers == heavy.layers
    assert light.activations["1"].input.var == pytest.approx(ref_moments(seen["0"])[2], rel=1e-5)  # before relu_


def test_no_mode_during_dense_forwards_when_module_hooks_suffice():
    stacks = {}
    model = mlp()

    def look(module, args, out):
        stacks.setdefault(len(stacks), bool(torch.overrides._get_current_function_mode_stack()))

    model[1].register_forward_hook(look)
    suffice = []
    train(model, steps=14, after_forward=lambda mon, step: suffice.append(mon._icpt.modules_suffice))
    assert all(suffice)
    assert [stacks[i] for i in range(14)] == [True] * 10 + [False] * 4   # full steps: mode; dense: module hooks
    assert not torch.nn.modules.module._global_forward_hooks and not torch.nn.modules.module._global_forward_pre_hooks


class Shifted(nn.ReLU):
    """A catalog module whose catalog call does not see the module's own input."""

    def forward(self, x):
        return F.relu(x - 1.0)


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 12), nn.Linear(12, 3)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


@pytest.mark.parametrize("model, suffice", [
    (lambda: mlp(), True), (lambda: mlp(inplace=True), True),
    (lambda: nn.Sequential(nn.Linear(6, 12), Shifted(), nn.Linear(12, 3)), False),
    (lambda: Functional(), False)])
def test_module_hooks_suffice_only_when_they_see_every_activation(model, suffice):
    seen = []
    mon = train(model(), steps=12, after_forward=lambda mon, step: seen.append(mon._icpt.modules_suffice))
    assert seen[-1] is suffice
    s = mon.stats()
    assert all(a.input.count == 12 * BATCH * 12 for a in s.activations.values())


def test_dense_steps_never_read_a_value_back_on_meta():
    """The module-hooks-only path and device-side parameter rows are sync-free (see test_monitor)."""
    model = mlp().to("meta")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(14):
            loss = F.cross_entropy(model(torch.randn(BATCH, 6, device="meta")),
                                   torch.randint(0, 3, (BATCH,), device="meta"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    assert mon.sampled_steps == 14 and mon._icpt is None and mon.memory()["tensors"] > 0


# --------------------------------------------------------------------------------------------- fast paths
def test_one_pass_variance_and_its_two_pass_fallback_are_exact():
    g = torch.Generator().manual_seed(0)
    for offset, scale in [(0.0, 1.0), (0.3, 1.0), (0.8, 1.0), (100.0, 1e-2), (-5.0, 1e-3)]:   # one-pass, then two-pass
        x = torch.randn(64, 33, generator=g) * scale + offset
        m = moments_dict(batch_moments(x).state())
        ref = x.double()
        assert m["mean"] == pytest.approx(ref.mean().item(), rel=1e-6, abs=1e-9)
        assert m["var"] == pytest.approx(ref.var(unbiased=False).item(), rel=1e-5)
    t = x.t()                                                        # not contiguous: two-pass
    ref_t = t.double().var(unbiased=False).item()
    assert moments_dict(batch_moments(t).state())["var"] == pytest.approx(ref_t, rel=1e-5)
    part = batch_moments(x, extremes=False)
    assert part.v[2:] == (math.inf, -math.inf)                       # not measured: neutral under merge
    both = moments_dict(merge_moments(batch_moments(x[:10]).state(), part.state()))
    assert (both["min"], both["max"]) == (x[:10].min().item(), x[:10].max().item())


def test_sparse_gradient_norms_equal_the_dense_reference():
    i = torch.tensor([[0, 2, 2, 5]])                                 # index 2 twice: uncoalesced
    sparse = torch.sparse_coo_tensor(i, torch.tensor([1.0, 2.0, 3.0, -4.0]), (7,), check_invariants=True)
    dense = torch.randn(3, 4)
    got = norms([dense, sparse, dense * 2])
    torch.testing.assert_close(got, torch.stack([dense.norm(), sparse.to_dense().norm(), (dense * 2).norm()]))
    emb, lin = nn.Embedding(10, 4, sparse=True), nn.Linear(4, 2)
    model = nn.Sequential(emb, lin)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref = []
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(4):
            loss = model(torch.tensor([1, 2, 2, 3])).square().sum()
            opt.zero_grad()
            loss.backward()
            ref.append(emb.weight.grad.to_dense().norm().item())
            opt.step()
            mon.record_loss(loss)
    p = mon.stats().params["0.weight"]
    assert p.grad_norm == pytest.approx(sum(ref) / 4, rel=1e-6) and p.grad_norm_max == pytest.approx(max(ref), rel=1e-6)
    with watch(model, every=1) as mon:                               # the no-optimizer path
        loss = model(torch.tensor([1, 2, 2, 3])).square().sum()
        model.zero_grad()
        loss.backward()
    assert mon.stats().params["0.weight"].grad_norm == pytest.approx(emb.weight.grad.to_dense().norm().item(), rel=1e-6)


def test_host_rows_and_tensors_fold_and_merge_alike():
    rows = [[[1.0, 2.0], [0.5, 0.25]], [[3.0, 1.0], [1.0, 1.0]]]
    a, b = Bag(), Bag()
    for r in rows:
        a.add(Field("grad", "sum"), r)
        a.add(Field("gmax", "max"), r[0])
        a.add(Field("w", "last"), r[1])
        b.add(Field("grad", "sum"), torch.tensor(r, dtype=torch.float64))
        b.add(Field("gmax", "max"), torch.tensor(r[0], dtype=torch.float64))
        b.add(Field("w", "last"), torch.tensor(r[1], dtype=torch.float64))
    for k in ("grad", "gmax", "w"):
        torch.testing.assert_close(a.t[k], b.t[k])
    assert a.t["w"].tolist() == [1.0, 1.0] and a.t["gmax"].tolist() == [3.0, 2.0]
    later = Bag()
    later.add(Field("w", "last"), [7.0, 8.0])
    later.add(Field("gmax", "max"), [0.0, 9.0])
    merged = a.copy().merge(later)
    assert merged.t["w"].tolist() == [7.0, 8.0] and merged.t["gmax"].tolist() == [3.0, 9.0]
    back = Bag.from_state(merged.state())
    assert back.t["grad"].tolist() == [[4.0, 3.0], [1.5, 1.25]]


class Reentrant(nn.Module):
    """Calls itself inside its forward, as Lightning's DDP calls ``training_step`` through ``__call__``."""

    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, x, inner=False):
        return self.net(x) if inner else self(x, inner=True)


def test_no_mode_leaks_when_the_forward_is_reentrant():
    """The loop probe arms its mode after the inner call, above the interceptor's; taking the
    interceptor's off must not pop the probe's instead (one mode leaked per sampled step before)."""
    model = Reentrant()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    depth = []
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(14):
            loss = F.cross_entropy(model(torch.randn(BATCH, 6)), torch.randint(0, 3, (BATCH,)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
            depth.append(len(torch.overrides._get_current_function_mode_stack()))
    assert depth == [0] * 14
    assert mon.stats().activations["net.1"].unit_total == 14 * BATCH   # each forward counted once
