"""The monitor with optimizers that frameworks own: ``step(closure)`` and wrappers."""
from __future__ import annotations

import math

import torch
from torch import nn

from impediments import watch
from impediments.monitor.probes.params import unwrap_optimizer


def test_step_with_closure_records_the_gradients_of_this_step():
    """Lightning calls ``opt.step(closure)`` with forward and backward inside the closure: the
    gradients must be read after it ran (not the previous step's, nor None at step 0)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs = [torch.randn(16, 4) for _ in range(3)]
    norms = []

    with watch(model, optimizer=opt, every=1) as mon:
        for x in xs:
            def closure():
                opt.zero_grad()
                loss = model(x).pow(2).mean()
                loss.backward()
                norms.append(model[0].weight.grad.norm().item())
                return loss
            opt.step(closure)
    p = mon.stats().params["0.weight"]
    assert p.samples == 3 and mon.steps == 3
    assert math.isclose(p.grad_norm, sum(norms) / 3, rel_tol=1e-6)
    assert p.update_to_weight > 0


class Wrapper:                     # the shape of Lightning's LightningOptimizer
    def __init__(self, opt):
        self._optimizer = opt


def test_unwrap_optimizer_follows_wrappers_and_names_what_it_cannot_hook():
    inner = torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.1)
    assert unwrap_optimizer(Wrapper(Wrapper(inner))) == (inner, "")
    assert unwrap_optimizer(None) == (None, "")
    opt, why = unwrap_optimizer(Wrapper(object()))
    assert opt is None and why.startswith("Wrapper -> object has no torch optimizer step hooks")
