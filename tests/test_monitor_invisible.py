"""The monitor is invisible to the user's code (issue 23 item 5), on the scripts users really write:
checkpointing the whole model, EMA / best-model copies, a GCN with sparse features, a forward-forward
net that calls ``.forward()``, manual SGD, LBFGS, multi-input and keyword models, and a loop that never
calls ``record_loss``. Each is compared with the same script run without ``watch()``."""
from __future__ import annotations

import copy
import io
import json
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from impediments import watch
from impediments.doctor import diagnose


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 3))


def _data(n: int = 64, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _train(model, opt, X, y, steps: int, every_step=None) -> list[float]:
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if every_step is not None:
            every_step(step)
    return losses


@pytest.mark.parametrize("with_optimizer", [True, False])
def test_checkpointing_the_whole_model_inside_watch(with_optimizer):
    """``torch.save(model)`` (and plain ``pickle``) inside ``watch()`` works, loads, and computes the same
    function; training continues bit-identically to an unwatched run that saved at the same step."""
    X, y = _data()
    saved = {}

    def checkpoint(step):
        if step == 3:
            buf = io.BytesIO()
            torch.save(model, buf)
            saved["bytes"] = buf.getvalue()
            saved["pickle"] = pickle.dumps(model)
            saved["out"] = model.eval()(X).detach()
            model.train()

    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer=opt if with_optimizer else None) as mon:
        watched = _train(model, opt, X, y, 8, checkpoint)
    plain_model = _mlp()
    plain = _train(plain_model, torch.optim.SGD(plain_model.parameters(), lr=0.1), X, y, 8)
    assert watched == plain
    for restored in (torch.load(io.BytesIO(saved["bytes"]), weights_only=False), pickle.loads(saved["pickle"])):
        torch.testing.assert_close(restored.eval()(X), saved["out"], rtol=0, atol=0)
    assert mon.stats().steps == 8


def test_ema_copy_inside_watch_is_an_unwatched_model():
    """``copy.deepcopy(model)`` (the EMA / keep-the-best pattern) inside ``watch()``: no RecursionError, the
    copy has the same weights and state dict, and running it records nothing."""
    X, y = _data()
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with watch(model, optimizer=opt) as mon:
        _train(model, opt, X, y, 4)
        ema = copy.deepcopy(model)
        sd, sd_copy = model.state_dict(), ema.state_dict()
        assert sd.keys() == sd_copy.keys() and all(torch.equal(sd[k], sd_copy[k]) for k in sd)
        before = mon.training_forwards
        ema.train()(X)                       # the copy is not watched
        assert mon.training_forwards == before
        _train(model, opt, X, y, 2)
    assert mon.stats().steps == 6


def test_state_dict_inside_watch_equals_state_dict_without_it():
    model = _mlp()
    reference = copy.deepcopy(model).state_dict()
    with watch(model):
        inside = model.state_dict()
    assert inside.keys() == reference.keys() and all(torch.equal(inside[k], reference[k]) for k in inside)


class GCN(nn.Module):
    """Kipf & Welling (2017): ``H' = relu(A_hat H W)`` with a sparse normalised adjacency and sparse
    bag-of-words node features, as in the usual Cora example."""

    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(features, hidden), nn.Linear(hidden, classes)

    def forward(self, x, adj):
        h = torch.sparse.mm(adj, self.lin1(x.to_dense()) if x.is_sparse else self.lin1(x))
        return torch.sparse.mm(adj, self.lin2(F.relu(h)))


def _graph(nodes: int = 40, features: int = 30):
    g = torch.Generator().manual_seed(0)
    dense = (torch.rand(nodes, features, generator=g) < 0.1).float()
    edges = torch.randint(0, nodes, (2, 120), generator=g)
    adj = torch.sparse_coo_tensor(torch.cat([edges, torch.arange(nodes).repeat(2, 1)], 1),
                                  torch.ones(120 + nodes), (nodes, nodes)).coalesce()
    deg = torch.sparse.sum(adj, 1).to_dense()
    idx = adj.indices()
    norm = torch.sparse_coo_tensor(idx, adj.values() / (deg[idx[0]] * deg[idx[1]]).sqrt(), adj.shape)
    return dense.to_sparse(), norm.coalesce(), torch.randint(0, 4, (nodes,), generator=g)


def test_gcn_with_sparse_features_trains_under_watch_and_names_what_it_cannot_describe():
    x, adj, y = _graph()
    torch.manual_seed(0)
    model = GCN(30, 16, 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with watch(model, optimizer=opt) as mon:
        for _ in range(15):
            opt.zero_grad()
            loss = F.cross_entropy(model(x, adj), y)
            loss.backward()
            opt.step()
    stats = mon.stats()
    assert stats.steps == 15 and stats.loss.count == 15          # recorded from backward(): no record_loss
    assert stats.inputs is None
    reason = stats.not_checked["inputs"]
    assert "args[0] is a sparse_coo tensor" in reason and "args[1] is a sparse_coo tensor" in reason
    assert {"lin1", "lin2"} <= set(stats.layers)


class MultiInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(3, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, xa, extra, *, mask):
        return self.head(torch.relu(self.a(xa) + self.b(extra[0]) * mask))


def test_multi_input_and_keyword_inputs_are_described_or_named():
    torch.manual_seed(0)
    model = MultiInput()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xa, xb, mask, y = torch.randn(16, 4), torch.randn(16, 3), torch.ones(16, 1), torch.randint(0, 2, (16,))
    with watch(model, optimizer=opt) as mon:
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(xa, [xb], mask=mask), y).backward()
            opt.step()
    stats = mon.stats()
    assert stats.inputs.count == 3 * 16 and len(stats.inputs.mean) == 4   # the first floating input, xa
    torch.testing.assert_close(torch.tensor(stats.inputs.mean, dtype=torch.float64), xa.double().mean(0), rtol=1e-6, atol=1e-7)
    reason = stats.not_checked["inputs"]
    assert "args[1][0]" in reason and "kwargs['mask']" in reason


class ForwardForward(nn.Module):
    """Hinton (2022): each layer learns locally from a goodness on positive and negative data; the
    training loop calls every layer's ``.forward()`` itself, so no module hook ever fires."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(10, 32), nn.Linear(32, 32)])

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(F.normalize(x, dim=1)))
        return x


def test_forward_called_directly_is_said_plainly():
    torch.manual_seed(0)
    net = ForwardForward()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    pos, neg = torch.randn(32, 10) + 1, torch.randn(32, 10) - 1
    with watch(net, optimizer=opt) as mon:
        for _ in range(20):
            h_pos, h_neg = pos, neg
            opt.zero_grad()
            for layer in net.layers:
                h_pos = torch.relu(layer.forward(F.normalize(h_pos, dim=1)))
                h_neg = torch.relu(layer.forward(F.normalize(h_neg, dim=1)))
                loss = F.softplus(torch.cat([2.0 - h_pos.pow(2).sum(1), h_neg.pow(2).sum(1) - 2.0])).mean()
                loss.backward()
                h_pos, h_neg = h_pos.detach(), h_neg.detach()
            opt.step()
    stats = mon.stats()
    assert stats.model_training_steps == 0 and stats.steps == 20
    assert "forward was called directly" in stats.not_checked["forward"]
    assert stats.loss.count == 20 and len(stats.loss.window_means) >= 2      # windows by optimizer step
    report = diagnose(stats)
    assert not any("eval()" in reason for reason in report.skipped.values())


def test_manual_sgd_without_an_optimizer_is_said_plainly():
    X, y = _data()
    model = _mlp()
    with watch(model) as mon:
        for _ in range(5):
            model.zero_grad()
            F.cross_entropy(model(X), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    stats = mon.stats()
    assert stats.steps == 5 and stats.loss.count == 5
    assert "no torch optimizer stepped" in stats.not_checked["optimizer steps"]
    assert all(p.grad_norm > 0 for p in stats.params.values())


def test_a_torch_optimizer_not_passed_to_watch_is_not_reported_as_missing():
    X, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model) as mon:
        _train(model, opt, X, y, 3)
    assert "optimizer steps" not in mon.stats().not_checked


def test_lbfgs_counts_one_sampled_step_per_optimizer_step():
    X, y = _data()
    model = _mlp()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=10)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        return loss

    with watch(model, optimizer=opt) as mon:
        for _ in range(2):
            opt.step(closure)
    stats = mon.stats()
    assert stats.steps == 2 and stats.sampled_steps == 2 and stats.model_training_steps > 2
    assert stats.loss.count == 2                      # the first backward of each step


def test_record_loss_replaces_the_automatic_record_and_never_counts_twice():
    X, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer=opt) as mon:
        wrapped = torch.Tensor.backward
        for _ in range(6):
            opt.zero_grad()
            loss = F.cross_entropy(model(X), y)
            loss.backward()
            opt.step()
            mon.record_loss(loss * 0 + 7.0)
    loss = mon.stats().loss
    assert loss.count == 6 and loss.first == loss.last == loss.min == 7.0
    assert wrapped.__module__ == "impediments.monitor.probes.loss" and torch.Tensor.backward is not wrapped


def test_a_backward_through_another_model_is_not_the_watched_models_loss():
    """Two networks (a GAN's discriminator and generator): each monitor records the backward that follows
    its own model's forward, once per step; a monitor left open records nothing of later code."""
    X, y = _data()
    watched, other = _mlp(0), _mlp(1)
    opt = torch.optim.SGD(watched.parameters(), lr=0.1)
    mon = watch(watched, optimizer=opt).__enter__()
    try:
        _train(watched, opt, X, y, 3)
        for _ in range(4):                       # later code, not the watched model's
            F.cross_entropy(other(X), y).backward()
        assert mon.stats().loss.count == 3
    finally:
        mon.close()


def test_first_watch_does_not_import_dynamo():
    code = ("import sys, torch, impediments as imp\n"
            "m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())\n"
            "with imp.watch(m) as mon:\n"
            "    m(torch.randn(2, 3)).sum().backward()\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_monitor_and_doctor_write_non_finite_values_the_same_way(tmp_path):
    X, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer=opt) as mon:
        _train(model, opt, X, y, 2)
    stats = mon.stats()
    stats.params["0.weight"].update_to_weight = float("nan")
    from impediments.monitor.export import to_dict

    doc = json.loads(json.dumps(to_dict(stats)))
    assert doc["stats"]["params"]["0.weight"]["update_to_weight"] == "nan"
    report = json.loads(diagnose(stats).to_json())
    assert report["stats"]["params"]["0.weight"]["update_to_weight"] == "nan"
