"""The gradient along a residual stream: which modules are stream blocks, the measured mean square
against autograd's, and the doctor's verdict on an unnormalized deep residual net and its Fixup-style cure."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import impediments as imp
from impediments import watch
from impediments.monitor.probes.residual import candidates, has_skip_connection
from impediments.monitor.schema import MonitorStats


class Residual(nn.Module):
    def __init__(self, d: int, post_norm: bool = False, inplace: bool = False):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.norm = nn.LayerNorm(d) if post_norm else None
        self.inplace = inplace

    def forward(self, x):
        h = self.f(x)
        if self.inplace:
            h += x
        else:
            h = x + h
        return self.norm(h) if self.norm is not None else h


class Plain(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(d, d), nn.ReLU())

    def forward(self, x):
        return self.f(x)


class Net(nn.Module):
    def __init__(self, block=Residual, depth: int = 12, d: int = 16, **kw):
        super().__init__()
        self.inp = nn.Linear(6, d)
        self.blocks = nn.Sequential(*[block(d, **kw) for _ in range(depth)])
        self.out = nn.Linear(d, 3)

    def forward(self, x):
        return self.out(self.blocks(self.inp(x)))


def _he(net: Net, zero_branches: bool = False) -> Net:
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_branches:
        for b in net.blocks:
            nn.init.zeros_(b.f[2].weight)
    return net


@pytest.mark.parametrize("kw,expected", [({}, True), ({"post_norm": True}, True), ({"inplace": True}, True)])
def test_skip_connection_found_in_the_autograd_graph(kw, expected):
    block = Residual(8, **kw)
    x = torch.randn(4, 8, requires_grad=True) * 1.0     # a non-leaf input, as inside a network
    assert has_skip_connection(block(x), x) is expected
    plain = Plain(8)
    assert has_skip_connection(plain(x), x) is False
    leaf = torch.randn(4, 8, requires_grad=True)         # a leaf input has no node to find
    assert has_skip_connection(block(leaf), leaf) is False


def test_candidates_are_repeated_blocks_in_containers():
    net = Net(depth=3)
    names = {id(m): n for n, m in net.named_modules()}
    assert {names[i] for i in candidates(net)} == {"blocks.0", "blocks.1", "blocks.2"}
    assert candidates(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) == set()   # leaves are never blocks


def test_grad_mean_square_equals_autograd():
    torch.manual_seed(0)
    net = _he(Net(depth=5))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    with watch(net, optimizer=opt, every=1) as mon:
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    stream = mon.stats().residual_stream
    outs = {}
    hooks = [b.register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o) or o.retain_grad())
             for i, b in enumerate(net.blocks)]
    nn.functional.cross_entropy(net(x), y).backward()
    for h in hooks:
        h.remove()
    assert sorted(stream) == [f"blocks.{i}" for i in range(5)]
    for i in range(5):
        s = stream[f"blocks.{i}"]
        assert s.shape == [16] and s.samples == 1 and s.depth == i
        assert s.grad_mean_square == pytest.approx(float(outs[i].grad.double().pow(2).mean()), rel=1e-9)
    # a plain stack of same-shape blocks has no stream
    with watch(Net(block=Plain, depth=4), every=1) as mon2:
        mon2.ctx.model(x).sum().backward()
    assert mon2.stats().residual_stream == {}


def _report(zero_branches: bool, optimizer=torch.optim.SGD):
    torch.manual_seed(0)
    net = _he(Net(depth=12), zero_branches)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    opt = optimizer(net.parameters(), lr=1e-6)
    with watch(net, optimizer=opt) as mon:
        for _ in range(12):
            loss = nn.functional.cross_entropy(net(x + 0.01 * torch.randn_like(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return imp.diagnose(mon.stats())


def test_unnormalized_residual_stream_is_reported_and_zeroed_branches_are_not():
    from impediments.doctor.thresholds import Thresholds

    bad = _report(False)
    (f,) = [f for f in bad.by_code("exploding_gradients") if f.where[0] == "blocks.0"]
    ms = [bad.stats.residual_stream[f"blocks.{i}"].grad_mean_square for i in range(12)]
    assert f.severity == "warning" and f.where == [f"blocks.{i}" for i in range(12)]
    assert ms[0] > ms[-1] * Thresholds().gradient_var_ratio               # measured, 3+ decades
    assert f.evidence["output_over_input_grad_mean_square"] < 1 / Thresholds().gradient_var_ratio
    good = _report(True)                                                  # Fixup-style: branches start at zero
    assert not [f for f in good.findings if f.where and f.where[0] == "blocks.0"]
    adam = _report(False, torch.optim.Adam)                               # per-parameter steps: info only
    (f,) = [f for f in adam.by_code("exploding_gradients") if f.where[0] == "blocks.0"]
    assert f.severity == "info"


def test_residual_stream_survives_json():
    bad = _report(False)
    again = MonitorStats.from_dict(bad.stats.to_dict())
    assert again.residual_stream == bad.stats.residual_stream
