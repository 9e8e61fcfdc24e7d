"""torch.compile under watch(): no dynamo warnings or extra graphs, user names, same statistics as eager.

Dynamo's "eager" backend is used so the test spends its time in tracing (where the monitor's code
used to be traced, recompiled and warned about), not in inductor's C++ compiler; the inductor timing
is in benchmarks/overhead.py.
"""
from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments import watch
from impediments.monitor.hooks.compiled import clean_name, uncompiled

STEPS = 14      # default schedule: steps 0-9 sampled, 10-13 not


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.BatchNorm1d(32), nn.Tanh(),
                         nn.Linear(32, 4))


def data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g)) for _ in range(STEPS)]


def train(model, monitored, compile_model):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    run = torch.compile(model, backend="eager") if compile_model else model
    opt = torch.optim.SGD(run.parameters(), lr=0.05)
    mon = watch(run, optimizer=opt) if monitored else None
    if mon is not None:
        mon.__enter__()
    try:
        for x, y in data():
            loss = F.cross_entropy(run(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if mon is not None:
                mon.record_loss(loss)
    finally:
        if mon is not None:
            mon.close()
    graphs = int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    return mon, graphs


@pytest.fixture()
def captured(caplog):
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught, caplog


def test_compiled_model_under_watch_has_no_warnings_and_no_extra_graphs(captured):
    caught, caplog = captured
    _, plain_graphs = train(make_model(), monitored=False, compile_model=True)
    mon, graphs = train(make_model(), monitored=True, compile_model=True)
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if "torch" in r.name] == []
    assert graphs == plain_graphs >= 1           # the monitor's code never became part of a graph
    report = mon.report()
    assert "torch.compile" in report.skipped and "eagerly" in report.skipped["torch.compile"]


def test_compiled_statistics_match_the_eager_model_with_user_names():
    eager, _ = train(make_model(), monitored=True, compile_model=False)
    comp, _ = train(make_model(), monitored=True, compile_model=True)
    se, sc = eager.stats(), comp.stats()
    assert set(sc.activations) == set(se.activations) == {"4", "1"}
    assert set(sc.layers) == set(se.layers) == {"0", "2", "5"}
    assert set(sc.params) == set(se.params) and "0.weight" in sc.params
    assert set(sc.batchnorm) == {"3"}
    assert sc.steps == se.steps == STEPS and sc.sampled_steps == se.sampled_steps == 10
    for name, a in se.activations.items():
        b = sc.activations[name]
        assert b.output.count == a.output.count
        assert math.isclose(b.output.mean, a.output.mean, rel_tol=1e-4, abs_tol=1e-6)
        assert math.isclose(b.output.var, a.output.var, rel_tol=1e-4)
        assert b.unit_active_counts == a.unit_active_counts
    for name, p in se.params.items():
        assert math.isclose(sc.params[name].grad_norm, p.grad_norm, rel_tol=1e-4)
        assert math.isclose(sc.params[name].update_to_weight, p.update_to_weight, rel_tol=1e-4)
    assert se.batchnorm["3"].training_forwards == STEPS            # counted at every eager step
    assert sc.batchnorm["3"].training_forwards == 10               # compiled: sampled (eager) steps only
    assert "torch.compile" in sc.not_checked and not se.not_checked


# torch itself warns on sampled steps that the monitor's global module hooks (armed for one eager
# forward) also fire for a nested OptimizedModule; the root-compiled case above has no warning at all
@pytest.mark.filterwarnings("ignore:Using `torch.compile\\(module\\)` when there are global hooks")
def test_names_of_nested_compiled_submodules_lose_orig_mod():
    torch._dynamo.reset()
    model = make_model()
    model[0] = torch.compile(model[0], backend="eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with watch(model, optimizer=opt) as mon:
        for x, y in data()[:3]:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    s = mon.stats()
    assert "0" in s.layers and "0.weight" in s.params
    assert not any("_orig_mod" in n for n in [*s.layers, *s.params, *s.activations])
    assert clean_name("enc._orig_mod.1") == "enc.1" and clean_name("_orig_mod") == ""
    assert uncompiled(torch.compile(model[1])) is model[1]


def test_hooks_and_stance_are_restored_after_an_exception():
    torch._dynamo.reset()
    model = make_model()
    run = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(run.parameters(), lr=0.05)
    with pytest.raises(RuntimeError):
        with watch(run, optimizer=opt):
            run(torch.randn(4, 7))                   # wrong width: raises inside the sampled, eager forward
    from torch._dynamo.eval_frame import _stance

    assert _stance.stance == "default"
    assert not run._forward_pre_hooks and not run._forward_hooks and not model._forward_pre_hooks
