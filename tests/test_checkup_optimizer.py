"""checkup given the optimizer (issue 24 item 5): a gradient trend across depth at init costs nothing under an
optimizer that normalizes each parameter's step by its own gradient scale, so it is info there, and stays a
warning under SGD (whose step is lr g) or when the optimizer is not known."""
import torch
from torch import nn

import impediments as imp


def _deep_relu():
    """Six ReLU layers at PyTorch's default init (kaiming_uniform, a = sqrt 5): each layer scales the
    back-propagated variance by about fan_in Var(w) / 2 = 1/6, about 3.5 decades over six layers."""
    torch.manual_seed(0)
    layers = [nn.Linear(32, 32) if i else nn.Linear(8, 32) for i in range(6)]
    return nn.Sequential(*[m for l in layers for m in (l, nn.ReLU())], nn.Linear(32, 1))


def _trend(report):
    return {f.severity for f in report.findings if f.code == "vanishing_gradients"}


def test_a_depth_trend_at_init_is_info_under_adam_and_a_warning_under_sgd():
    x, y = torch.randn(256, 8, generator=torch.Generator().manual_seed(1)), torch.randn(256, 1)
    model = _deep_relu()
    assert _trend(imp.checkup(model, x, y)) == {"warning"}
    sgd = imp.checkup(model, x, y, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert _trend(sgd) == {"warning"}
    adam = imp.checkup(model, x, y, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
    assert _trend(adam) == {"info"}
    info = next(f for f in adam.findings if f.code == "vanishing_gradients")
    assert info.evidence["optimizer"] == "Adam" and info.evidence["output_over_input_grad_energy"] > 1e3
    before = [p.detach().clone() for p in model.parameters()]
    imp.checkup(model, x, y, optimizer=torch.optim.Adam(model.parameters(), lr=1.0))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))     # never stepped
