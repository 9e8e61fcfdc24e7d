"""The monitor against brute force: every statistic, merge, windows, functional activations, hooks, exactness."""
from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments.activations import region_counts
from impediments import watch
from impediments.monitor import HIST_EDGES
from impediments.monitor.state.bag import Field
from impediments.monitor.state.histogram import HIST_MAX_VALUES, histogram_counts, histogram_subsample
from impediments.monitor.state.moments import batch_moments, merge_moments, moments_dict
from impediments.monitor.export import from_json
from impediments.monitor.hooks.intercept import FUNCTION_KINDS
from impediments.monitor.schedule import default_schedule, make_schedule
from impediments.monitor.state.windows import Windows


def brute_moments(x):
    x = x.double().reshape(-1)
    return dict(count=x.numel(), mean=x.mean().item(), var=x.var(unbiased=False).item(), min=x.min().item(),
                max=x.max().item())


def assert_moments(m, ref, rtol=1e-5):
    assert m.count == ref["count"]
    for k in ("mean", "var", "min", "max"):
        assert getattr(m, k) == pytest.approx(ref[k], rel=rtol, abs=1e-6), k


def brute_hist(x, subsample=True):
    x = x.reshape(-1)
    if subsample:   # the documented subsample: a prime stride >= ceil(n / HIST_MAX_VALUES), at most that many
        stride = -(-x.numel() // HIST_MAX_VALUES)
        while stride > 2 and any(stride % p == 0 for p in range(2, stride)):
            stride += 1
        x = x[::stride]
    x = x.double().numpy()
    x = x[np.isfinite(x)]
    edges = np.asarray(HIST_EDGES)
    return np.histogram(np.clip(x, edges[0], np.nextafter(edges[-1], 0)), bins=edges)[0].tolist()


# --------------------------------------------------------------------------------------------- accumulators
def test_moments_and_histogram_merge_equal_brute_force():
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, generator=g) * s + o for n, s, o in [(1, 1.0, 0.0), (50, 3.0, 2.0), (999, 1e-3, -5.0),
                                                                   (7, 1e4, 0.0)]]
    parts.append(torch.zeros(10))
    state = batch_moments(parts[0])
    for p in parts[1:]:
        state = merge_moments(state, batch_moments(p))
    full = torch.cat(parts)
    got = moments_dict(state)
    ref = brute_moments(full)
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-6)
    assert sum(histogram_counts(p)[:-1] for p in parts).tolist() == brute_hist(full, subsample=False)
    big = torch.randn(3 * HIST_MAX_VALUES + 5)
    assert 0 < histogram_counts(big)[:-1].sum() <= HIST_MAX_VALUES and histogram_counts(big)[:-1].tolist() == brute_hist(big)
    wide = torch.arange(128 * 256).reshape(128, 256)       # the subsample reads every column, not a few
    assert histogram_subsample(wide).remainder(256).unique().numel() == 256
    bad = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 1e9, -1e-9])
    h = histogram_counts(bad)
    assert h[-1] == 3 and h[:-1].tolist() == brute_hist(bad) and moments_dict(batch_moments(bad))["nonfinite"] == 3


def test_per_feature_moments():
    x = torch.randn(40, 6) * torch.arange(1, 7)
    m = merge_moments(batch_moments(x[:13], dim=0), batch_moments(x[13:], dim=0))
    torch.testing.assert_close(m[1], x.double().mean(0))
    torch.testing.assert_close(m[2] / m[0], x.double().var(0, unbiased=False))


def test_windows_are_bounded_and_merge_exactly():
    w = Windows(capacity=4)
    xs = {}
    for step in range(0, 100, 3):
        x = torch.randn(5) + step
        xs[step] = x
        w.at(step).bag("act", "a").add(Field("output", "moments"), batch_moments(x))
        assert len(w.closed) < 4
    starts = [s for s, _, _ in w.all()]
    ends = [e for _, e, _ in w.all()]
    assert starts == sorted(starts) and all(e0 <= s1 for e0, s1 in zip(ends, starts[1:]))
    for s, e, st in w.all():   # each window holds exactly the steps in [s, e)
        ref = torch.cat([x for k, x in xs.items() if s <= k < e])
        assert moments_dict(st[("act", "a")].t["output"])["mean"] == pytest.approx(ref.double().mean().item())
    total = moments_dict(w.total()[("act", "a")].t["output"])
    assert total["var"] == pytest.approx(torch.cat(list(xs.values())).double().var(unbiased=False).item())
    with pytest.raises(ValueError, match="even int"):
        Windows(3)


def test_schedule():
    assert [s for s in range(160) if default_schedule(s)] == list(range(10)) + [50, 100, 150]
    assert default_schedule(10_200) and not default_schedule(10_050)
    assert make_schedule(1)(7) and make_schedule(3)(6) and not make_schedule(3)(7)
    with pytest.raises(ValueError, match="every must be"):
        make_schedule(0)


# --------------------------------------------------------------------------------------------- activations
class Net(nn.Module):
    def __init__(self, inplace=False):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(6, 8), nn.ReLU(inplace=inplace), nn.Linear(8, 8), \
            nn.Linear(8, 3)

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.fc3(torch.tanh(self.fc2(h)))


def capture(model, names):
    seen = {n: [] for n in names}
    mods = dict(model.named_modules())
    hs = [mods[n].register_forward_hook(lambda m, a, o, n=n: seen[n].append(o.detach().clone())) for n in names]
    return seen, hs


def test_activation_layer_and_input_stats_equal_brute_force():
    model = Net()
    seen, hs = capture(model, ["fc1", "fc2", "fc3"])
    xs = [torch.randn(16, 6) * 2 for _ in range(4)]
    with watch(model, every=1) as mon:
        for x in xs:
            model(x).pow(2).mean().backward()
    for h in hs:
        h.remove()
    s = mon.stats()
    pre1, pre2 = torch.cat(seen["fc1"]), torch.cat(seen["fc2"])
    relu, tanh = s.activations["act"], s.activations["/tanh#0"]
    assert (relu.kind, relu.depth, tanh.kind, tanh.depth) == ("relu", 0, "tanh", 1)
    assert_moments(relu.input, brute_moments(pre1))
    assert_moments(relu.output, brute_moments(pre1.relu()))
    assert_moments(tanh.output, brute_moments(pre2.tanh()))
    assert relu.histogram.counts == brute_hist(pre1.relu()) and relu.histogram.edges == HIST_EDGES
    assert relu.unit_active_counts == (pre1 > 0).sum(0).tolist() and relu.unit_total == 64 and relu.units == 8
    assert relu.dead_units == [i for i in range(8) if (pre1[:, i] <= 0).all()]
    tanh_sat = torch.stack([region_counts(pre2[:, u], "tanh") for u in range(8)], 1)   # per-unit reference
    assert tanh.unit_active_counts == (tanh_sat[1] + tanh_sat[2]).tolist() and relu.samples == 4
    assert tanh.saturated_fraction == pytest.approx(float(tanh_sat[0].sum()) / pre2.numel())
    assert_moments(s.layers["fc2"].output, brute_moments(pre2))
    assert [s.layers[n].depth for n in ("fc1", "fc2", "fc3")] == [0, 1, 2]
    X = torch.cat(xs).double()
    np.testing.assert_allclose(s.inputs.mean, X.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(s.inputs.var, X.var(0, unbiased=False).numpy(), rtol=1e-5)
    assert s.inputs.count == 64


def test_layer_grad_var_is_backward_signal():
    model = Net()
    grads = []
    model.fc2.register_forward_hook(lambda m, a, o: [o.register_hook(lambda g: grads.append(g.clone())), None][1])
    with watch(model, every=1) as mon:
        for _ in range(3):
            model(torch.randn(8, 6)).pow(2).sum().backward()
    ref = torch.cat(grads).double().var(unbiased=False).item()
    assert mon.stats().layers["fc2"].grad_var == pytest.approx(ref, rel=1e-5)


def test_region_fractions_come_from_the_activation_catalog():
    from impediments import activations as acts

    model = Net()
    seen, hs = capture(model, ["fc1"])
    with watch(model, every=1) as mon:
        model(torch.randn(32, 6))
    pre = torch.cat(seen["fc1"])
    counts = acts.region_counts(pre, "relu").double()
    a = mon.stats().activations["act"]
    assert [a.saturated_fraction, a.linear_fraction, a.active_fraction] == pytest.approx(
        (counts / counts.sum()).tolist())


FUNCTIONAL = {
    "F.relu": (F.relu, "relu"), "torch.relu": (torch.relu, "relu"), "x.relu": (lambda x: x.relu(), "relu"),
    "relu_": (lambda x: x.relu_(), "relu"), "torch.relu_": (torch.relu_, "relu"),
    "F.relu(inplace)": (lambda x: F.relu(x, inplace=True), "relu"), "torch.sigmoid": (torch.sigmoid, "sigmoid"),
    "x.sigmoid_": (lambda x: x.sigmoid_(), "sigmoid"), "torch.tanh": (torch.tanh, "tanh"),
    "x.tanh": (lambda x: x.tanh(), "tanh"), "F.gelu": (F.gelu, "gelu"), "F.silu": (F.silu, "silu"),
    "F.leaky_relu": (F.leaky_relu, "leaky_relu"), "F.leaky_relu_": (lambda x: F.leaky_relu(x, 0.1, True),
                                                                     "leaky_relu"),
    "F.elu": (F.elu, "elu"), "F.elu_": (lambda x: F.elu(x, inplace=True), "elu"), "F.softplus": (F.softplus,
                                                                                                 "softplus"),
    "F.hardtanh": (F.hardtanh, "hardtanh"), "F.selu": (F.selu, "selu"), "F.softsign": (F.softsign, "softsign"),
    "F.hardsigmoid": (F.hardsigmoid, "hardsigmoid"),
}


@pytest.mark.parametrize("label", sorted(FUNCTIONAL))
def test_each_functional_activation_is_detected(label):
    fn, kind = FUNCTIONAL[label]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 5)

        def forward(self, x):
            return fn(self.lin(x))

    model = nn.Sequential(Block(), nn.Linear(5, 2))
    x = torch.randn(10, 4)
    pre = model[0].lin(x).detach()
    with watch(model, every=1) as mon:
        model(x)
    a = mon.stats().activations
    assert list(a) == [f"0/{kind}#0"]
    assert a[f"0/{kind}#0"].kind == kind
    assert_moments(a[f"0/{kind}#0"].input, brute_moments(pre))           # read before an in-place op
    ref_fn = FUNCTIONAL[label][0]
    assert_moments(a[f"0/{kind}#0"].output, brute_moments(ref_fn(pre.clone())))


def test_repeated_calls_are_indexed_and_modules_not_double_counted():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act = nn.Linear(3, 3), nn.GELU()

        def forward(self, x):
            return F.relu(F.relu(self.act(self.lin(x))) - 1)

    with watch(M(), every=1) as mon:
        mon.ctx.model(torch.randn(4, 3))
    assert sorted(mon.stats().activations) == ["/relu#0", "/relu#1", "act"]
    assert set(FUNCTION_KINDS.values()) >= {"relu", "sigmoid", "tanh", "gelu", "silu", "leaky_relu", "elu",
                                            "softplus", "hardtanh", "selu", "softsign", "hardsigmoid"}


# --------------------------------------------------------------------------------------------- scope
def _no_global_state():
    reg = torch.nn.modules.module
    return (not reg._global_forward_hooks and not reg._global_forward_pre_hooks
            and not torch.overrides._get_current_function_mode_stack())


def test_hooks_removed_on_exception_and_no_reference_kept():
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = (dict(model._forward_hooks), dict(model._forward_pre_hooks), dict(opt._optimizer_step_pre_hooks))

    class Boom(Exception):
        pass

    def bad(m, a, o):
        raise Boom

    h = model.fc2.register_forward_hook(bad)
    with pytest.raises(Boom):
        with watch(model, optimizer=opt, every=1) as mon:
            model(torch.randn(2, 6))
    h.remove()
    assert _no_global_state()
    after = (dict(model._forward_hooks), dict(model._forward_pre_hooks), dict(opt._optimizer_step_pre_hooks))
    assert after == before and not opt._optimizer_step_post_hooks
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(not getattr(p, "_post_accumulate_grad_hooks", None) for p in model.parameters())
    ref = weakref.ref(mon)
    del mon
    gc.collect()
    assert ref() is None
    model(torch.randn(2, 6))   # still usable
    with pytest.raises(Boom):   # without an optimizer: per-parameter grad hooks, removed too
        with watch(model, every=1):
            model(torch.randn(2, 6)).sum().backward()
            raise Boom
    assert _no_global_state()
    assert all(not getattr(p, "_post_accumulate_grad_hooks", None) for p in model.parameters())


def _train(model, steps, every=None, use_watch=True, seed=1):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ctx = watch(model, optimizer=opt, every=every) if use_watch else None
    if ctx is not None:
        ctx.__enter__()
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if ctx is not None:
            ctx.record_loss(loss)
    if ctx is not None:
        ctx.__exit__(None, None, None)
    return ctx


class InplaceNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.fc1, self.bn, self.act = nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(inplace=True)
        self.drop, self.fc2 = nn.Dropout(0.3), nn.Linear(16, 3)

    def forward(self, x):
        h = self.drop(self.act(self.bn(self.fc1(x))))
        return self.fc2(F.silu(h).relu_())


@pytest.mark.parametrize("every", [None, 1])
def test_training_is_bit_identical(every):
    ref, watched = InplaceNet(), InplaceNet()
    _train(ref, 50, use_watch=False)
    mon = _train(watched, 50, every=every)
    for (n, a), (_, b) in zip(ref.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), n
    s = mon.stats()
    assert s.steps == 50 and s.sampled_steps == (50 if every == 1 else sum(map(default_schedule, range(50))))
    assert {"act", "/silu#0", "/relu#0"} <= set(s.activations) and s.loss.count == 50


def test_params_bn_symmetry_and_loss_equal_brute_force():
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    nn.init.constant_(model[0].weight, 0.3)
    nn.init.constant_(model[0].bias, 0.0)
    opt = torch.optim.SGD([{"params": model[0].parameters(), "weight_decay": 1e-3, "lr": 0.0},
                           {"params": list(model[2].parameters()) + list(model[4].parameters())}], lr=0.1)
    torch.manual_seed(0)
    gn, g2w, u2w, losses, bn_dev = [], [], [], [], []
    with watch(model, optimizer=opt, every=1) as mon:
        for step in range(5):
            x, y = torch.randn(12, 4), torch.randint(0, 2, (12,))
            bn = model[2]
            h = model[1](model[0](x)).detach() if False else None
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            w = model[4].weight.detach().clone()
            gn.append(model[4].weight.grad.norm().item())
            g2w.append(gn[-1] / w.norm().item())
            opt.step()
            u2w.append((model[4].weight.detach() - w).norm().item() / w.norm().item())
            losses.append(loss.item())
            mon.record_loss(loss)
    s = mon.stats()
    p = s.params["4.weight"]
    assert p.samples == 5 and p.module == "4"
    assert p.grad_norm == pytest.approx(np.mean(gn), rel=1e-5) and p.grad_norm_max == pytest.approx(max(gn), rel=1e-5)
    assert p.grad_to_weight == pytest.approx(np.mean(g2w), rel=1e-5)
    assert p.update_to_weight == pytest.approx(np.mean(u2w), rel=1e-4)
    assert s.loss.count == 5 and s.loss.first == pytest.approx(losses[0]) and s.loss.last == pytest.approx(losses[-1])
    assert s.loss.min == pytest.approx(min(losses)) and s.loss.window_means == pytest.approx(losses)
    b = s.batchnorm["2"]
    assert (b.values_per_channel, b.training_forwards, b.running_stats_forwards_in_training) == (12, 5, 0)
    assert (b.preceded_by, b.preceded_by_name, b.feeding_layer) == ("Dropout", "1", None)
    assert s.symmetry["0"].groups == [list(range(6))] and s.symmetry["4"].groups == []
    assert s.optimizer["type"] == "SGD" and s.optimizer["groups"][0]["weight_decay"] == 1e-3
    del bn, h


def test_batchnorm_running_stats_and_feeding_layer():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU())
    opt = torch.optim.SGD([{"params": model[0].parameters(), "weight_decay": 5e-4},
                           {"params": model[1].parameters()}], lr=0.1)
    model[1].running_mean.fill_(0.5)
    x = torch.randn(20, 4)
    with torch.no_grad():
        h = model[0](x)
    rm, rv = model[1].running_mean.clone(), model[1].running_var.clone()
    with watch(model, optimizer=opt, every=1) as mon:
        model(x)
        model[1].eval()
        model(x)
    b = mon.stats().batchnorm["1"]
    assert (b.training_forwards, b.running_stats_forwards_in_training, b.feeding_layer) == (2, 1, "0")
    assert b.feeding_weight_decay == 5e-4
    ref = ((h.mean(0) - rm).abs() / (rv + 1e-5).sqrt()).mean().item()
    assert b.batch_mean_vs_running == pytest.approx(ref, rel=1e-5)
    assert b.batch_var_vs_running == pytest.approx((h.var(0, unbiased=False) / rv).mean().item(), rel=1e-5)


# --------------------------------------------------------------------------------------------- non-finite
class Poison(nn.Module):
    """Sequential-like model; ``poison`` = (step, layer index) makes that layer's weight infinite."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))


@pytest.mark.parametrize("every", [None, 1])
@pytest.mark.parametrize("case", ["layer", "input", "loss"])
def test_first_nonfinite_step_and_layer_are_exact(case, every):
    model = Poison().body
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    bad_step = 13     # not sampled by the default schedule
    with watch(model, optimizer=opt, every=every) as mon:
        for step in range(20):
            x = torch.randn(8, 4)
            if step == bad_step and case == "layer":
                with torch.no_grad():
                    model[2].weight[0, 0] = float("inf")
            if step == bad_step and case == "input":
                x[3, 1] = float("nan")
            out = model(x)
            loss = out.pow(2).mean() * (float("inf") if case == "loss" and step == bad_step else 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    nf = mon.stats().nonfinite
    expected = {"layer": ("activation", "2"), "input": ("input", "input"), "loss": ("loss", "loss")}[case]
    assert (nf.step, nf.kind, nf.where) == (bad_step, *expected)


def test_first_nonfinite_names_functional_activation():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.out = nn.Linear(3, 3), nn.Linear(3, 1)
            self.poison = False

        def forward(self, x):
            h = F.softplus(self.lin(x))
            if self.poison:   # inf - inf = nan appears first inside the sigmoid's input, i.e. its output
                h = h * float("inf") - float("inf")
            h = torch.sigmoid(h)
            return self.out(h)

    model = M()
    with watch(model) as mon:
        for step in range(15):
            model.poison = step == 12
            model(torch.randn(4, 3)).sum().backward()
    nf = mon.stats().nonfinite
    assert (nf.step, nf.kind, nf.where) == (12, "activation", "/sigmoid#0")


def test_gradient_nonfinite_names_the_parameter_the_backward_meets_first(fragile):
    model = fragile()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with watch(model, optimizer=opt) as mon:
        for step in range(12):
            model.poison = step == 11
            opt.zero_grad()
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
    nf = mon.stats().nonfinite
    assert (nf.step, nf.kind, nf.where) == (11, "gradient", "a.bias")


# --------------------------------------------------------------------------------------------- persistence
def test_state_dict_merge_and_json_round_trip(tmp_path):
    xs = [torch.randn(8, 6) for _ in range(6)]
    model = Net()

    def run(batches):
        with watch(model, every=1) as mon:
            for x in batches:
                model(x).sum().backward()
        return mon

    whole, a, b = run(xs), run(xs[:3]), run(xs[3:])
    clone = run([])
    clone.load_state_dict(a.state_dict())
    s1, s2 = clone.stats(), a.stats()
    assert s1.activations["act"] == s2.activations["act"]
    merged = a.merge(b).stats()
    ref = whole.stats()
    m, r = merged.activations["act"], ref.activations["act"]
    assert m.histogram == r.histogram and m.unit_active_counts == r.unit_active_counts
    assert m.output.count == r.output.count
    assert m.output.var == pytest.approx(r.output.var, rel=1e-9)
    whole.to_json(tmp_path / "s.json")
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["schema"] == "impediments.monitor.stats" and doc["version"] == 1
    back = from_json(tmp_path / "s.json")
    assert back.activations["act"].histogram == r.histogram and back.layers.keys() == ref.layers.keys()
    with pytest.raises(ValueError, match="supported"):
        clone.load_state_dict({"version": 99})


def test_memory_is_flat_over_20000_steps():
    """Forward + loss every step (steps counted by training-mode forwards), default schedule."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    x = torch.randn(2, 4)
    marks = {}
    with torch.no_grad(), watch(model) as mon:
        for step in range(1, 20_001):
            mon.record_loss(model(x).sum())
            if step % 1000 == 0:
                marks[step] = mon.memory()
    early = [m for k, m in marks.items() if k <= 10_000]
    late = [m for k, m in marks.items() if k > 10_000]
    early = max(m["tensors"] for m in early), max(m["bytes"] for m in early)
    late = max(m["tensors"] for m in late), max(m["bytes"] for m in late)
    assert late[0] <= early[0] and late[1] <= early[1], (early, late)
    s = mon.stats()
    assert s.steps == 20_000 and len(s.windows) <= 33 and s.loss.count == 20_000
    from impediments.monitor.schedule import LATE_PERIOD, LATE_START, PERIOD, WARMUP

    expected = WARMUP + len(range(PERIOD, LATE_START, PERIOD)) + len(range(LATE_START, 20_000, LATE_PERIOD))
    assert s.activations["1"].samples == s.sampled_steps == expected == 259


def test_include_and_bad_arguments():
    model = Net()
    with watch(model, every=1, include=["fc1", "act"]) as mon:
        model(torch.randn(4, 6))
    s = mon.stats()
    assert set(s.layers) == {"fc1"} and "act" in s.activations
    with pytest.raises(TypeError, match="nn.Module"):
        watch("model")
    with pytest.raises(ValueError, match="every must be"):
        watch(model, every=-2)


def test_histogram_numpy_and_torch_paths_agree_with_numpy_histogram_at_exact_edges():
    """Both bin chains (numpy on CPU, torch elsewhere) put every value where np.histogram does,
    including values exactly on an edge (-1.0, 10.0, +-1e-6), beyond the outer edges, and NaN/Inf."""
    from impediments.monitor.state.histogram import _many_numpy, _many_torch

    g = torch.Generator().manual_seed(3)
    edges = torch.tensor(HIST_EDGES, dtype=torch.float64)
    exact = torch.tensor([-1.0, 1.0, 10.0, -10.0, 100.0, 1e-6, -1e-6, 0.0, -0.0, 1e7, -1e7], dtype=torch.float64)
    parts = [torch.cat([exact, edges]), torch.randn(700, generator=g, dtype=torch.float64) * 10 ** torch.randint(
        -8, 8, (700,), generator=g).double(), torch.tensor([float("nan"), float("inf"), -float("inf"), 2.0]).double()]
    want = [brute_hist(p, subsample=False) + [int((~torch.isfinite(p)).sum())] for p in parts]
    assert _many_numpy([p.numpy() for p in parts]).tolist() == want
    assert _many_torch(parts).tolist() == want


def test_batchnorm_forwards_are_counted_at_every_step_not_only_sampled_ones():
    """A BatchNorm left in eval() inside a training model is seen at every step (host counters),
    while the batch-vs-running comparison runs on sampled steps only."""
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with watch(model, optimizer=opt) as mon:
        for step in range(30):
            model[1].train(step < 20)           # eval() for the last 10 steps, none of them sampled
            model(torch.randn(8, 4)).sum().backward()
            opt.step()
            opt.zero_grad()
    b = mon.stats().batchnorm["1"]
    assert (b.training_forwards, b.running_stats_forwards_in_training) == (30, 10)
    assert mon.stats().sampled_steps == sum(map(default_schedule, range(30))) == 10


class MetaNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.fc1, self.drop, self.fc2 = nn.Linear(4 * 8 * 8, 16), nn.Dropout(0.1), nn.Linear(16, 3)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = torch.tanh(self.drop(self.fc1(h.flatten(1))))
        return self.fc2(F.gelu(h))


@pytest.mark.parametrize("every", [None, 1])
@pytest.mark.parametrize("with_optimizer", [True, False])
def test_accelerator_path_never_reads_a_value_back(every, with_optimizer):
    """On the ``meta`` device any host read (``.item()``, ``float()``, ``bool()``, ``.tolist()``,
    ``.cpu()``) and any op whose output size depends on the data (``bincount``, ``unique``,
    ``nonzero``) raises, so a training loop that runs there proves the non-CPU code path of every
    hook free of host-device synchronisation (CI has no GPU)."""
    model = MetaNet().to("meta")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer=opt if with_optimizer else None, every=every) as mon:
        for _ in range(12):
            x, y = torch.randn(5, 1, 8, 8, device="meta"), torch.randint(0, 3, (5,), device="meta")
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    assert mon.sampled_steps == (12 if every == 1 else 10) and mon.training_forwards == 12
    assert {"/relu#0", "/tanh#0", "/gelu#0"} <= set(mon.activations.meta) and "bn" in mon.batchnorm.meta
    assert mon.memory()["tensors"] > 0


def test_empty_batch_batch_of_one_and_bfloat16_are_recorded():
    """Edge inputs: an empty batch adds nothing, a batch of one counts, a bfloat16 model is watched."""
    c = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 2))
    with watch(c, every=1) as mon:
        for n in (4, 1, 0):
            c(torch.randn(n, 2, 8)).sum().backward()
    s = mon.stats()
    relu = s.activations["1"]
    assert (s.steps, s.inputs.count, relu.units, relu.unit_total, relu.output.count) == (3, 5, 3, 5 * 6, 5 * 3 * 6)
    m = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).to(torch.bfloat16)
    x = torch.randn(5, 8, dtype=torch.bfloat16)
    with watch(m, every=1) as mon:
        m(x).float().sum().backward()
    pre = m[0](x).detach()
    g = mon.stats().activations["1"]
    assert g.output.count == 80 and g.saturated_fraction == pytest.approx(
        float(region_counts(pre, "gelu")[0]) / pre.numel())


def test_batchnorm_count_hooks_are_removed_and_keep_no_reference():
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU())
    with watch(model) as mon:
        model(torch.randn(6, 4))
        assert model[1]._forward_pre_hooks                     # the per-step counter is on while watching
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert _no_global_state() and mon.stats().batchnorm["1"].training_forwards == 1
    ref = weakref.ref(mon)
    del mon
    gc.collect()
    assert ref() is None


def test_nonfinite_replay_leaves_batchnorm_buffers_usable_for_backward():
    """Localising a NaN replays the forward; the user's backward through BatchNorm must still work."""
    torch.manual_seed(0)

    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x)

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Log(), nn.Flatten(), nn.Linear(4 * 36, 3))
    x, y = torch.rand(6, 3, 8, 8), torch.randint(0, 3, (6,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [b.clone() for b in model.buffers()]
    with watch(model, optimizer=opt) as mon:
        out = model(x)                            # NaN inside the model: log of a negative BN output
        loss = nn.functional.cross_entropy(out, y)
        mon.record_loss(loss)
        loss.backward()                           # raised "modified by an inplace operation" before
        opt.step()
    assert mon.stats().nonfinite is not None
    assert int(model[1].num_batches_tracked) == int(before[2]) + 1   # the replay's update was discarded
