"""One definition of the flat (saturated / inactive) region, checked against autograd's derivative, on the
module's plotting grid, in the plot's shading, in the monitor's counts and in the doctor's fractions."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from impediments import activations as A
from impediments import watch
from impediments.doctor import diagnose
from impediments.doctor.fractions import dead_count, saturated_fraction
from impediments.doctor.thresholds import Thresholds

matplotlib.use("Agg")

MODULE_GRID = np.arange(-5, 5, 0.1)
#: where lim a'(x) = 0, by hand from each formula (not from the library): the tails that can be flat
VANISHES_LEFT = set(A.names()) - {"leaky_relu", "identity"}
VANISHES_RIGHT = {"sigmoid", "tanh", "softsign", "hardtanh", "hardsigmoid"}


def autograd_derivative(name: str, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().double().requires_grad_(True)
    (d,) = torch.autograd.grad(A.get(name).fn(x).sum(), x)
    return d


def brute_flat(name: str, x: torch.Tensor, peak: float) -> torch.Tensor:
    """Flat where |a'| < tol * peak at x and at every point further out (x merged into a dense grid reaching
    +-40), on a side where a' -> 0. Any shape; the answer has x's shape."""
    flat_x = x.reshape(-1).double()
    pts, order = torch.sort(torch.cat([flat_x, torch.arange(-40, 40, 1e-3, dtype=torch.float64)]))
    small = autograd_derivative(name, pts).abs() < A.SATURATION_TOL * peak
    left = torch.cummin(small.int(), 0).values.bool() if name in VANISHES_LEFT else torch.zeros_like(small)
    right = (torch.cummin(small.int().flip(0), 0).values.flip(0).bool() if name in VANISHES_RIGHT
             else torch.zeros_like(small))
    out = torch.empty_like(small)
    out[order] = left | right
    return out[: flat_x.numel()].reshape(x.shape)


def flat_labels(name: str, x: torch.Tensor) -> torch.Tensor:
    return torch.stack([A.region_counts(v.reshape(1), name)[0] for v in x]).bool()


def peak_of(name: str) -> float:
    return float(autograd_derivative(name, torch.arange(-40, 40, 2.0 ** -10)).abs().max())


def test_default_tolerance_is_sigmoid_within_one_percent_of_a_bound():
    (lo, hi), = [iv for iv in A.get("sigmoid").saturated_region() if iv[0] > 0]
    assert hi == math.inf and lo == pytest.approx(math.log(99), rel=1e-9)         # sigma(ln 99) = 0.99
    assert torch.sigmoid(torch.tensor(lo, dtype=torch.float64)).item() == pytest.approx(0.99, rel=1e-12)
    # tanh is a rescaled sigmoid: within 1% of its range (0.02) from +-1, i.e. tanh = 0.98
    (tlo, _), = [iv for iv in A.get("tanh").saturated_region() if iv[0] > 0]
    assert tlo == pytest.approx(math.atanh(0.98), rel=1e-9)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_sigmoid_and_tanh_saturate_on_the_module_grid(name):
    x = torch.as_tensor(MODULE_GRID)
    flat = flat_labels(name, x)
    assert torch.equal(flat, brute_flat(name, x, peak_of(name)))
    assert bool(flat[x < 0].any()) and bool(flat[x > 0].any())                    # both tails visible


@pytest.mark.parametrize("name", A.names())
def test_flat_region_equals_autograd_definition_on_a_dense_grid(name):
    x = torch.arange(-30, 30, 0.01, dtype=torch.float64)
    ours = A.region_counts(x, name)
    ref = brute_flat(name, x, peak_of(name))
    # equal up to one sample at each finite boundary (bisection vs the grid point)
    assert abs(int(ours[0]) - int(ref.sum())) <= 2


def test_leaky_relu_is_never_flat_and_relu_is_inactive_not_saturated():
    x = torch.linspace(-1e3, 1e3, 20001)
    assert A.get("leaky_relu").saturated_region() == []
    assert A.region_counts(x, "leaky_relu")[0] == 0
    assert [A.flat_region_name(k) for k in ("relu", "gelu", "elu", "leaky_relu", "sigmoid", "tanh", "hardtanh")] == [
        "inactive", "inactive", "inactive", "saturated", "saturated", "saturated", "saturated"]
    # GELU's and SiLU's derivative crosses 0 inside the line (a stationary point), which is no flat tail
    for name, dip in (("gelu", -0.75179), ("silu", -1.27846)):
        assert abs(float(autograd_derivative(name, torch.tensor([dip])))) < 1e-4
        assert A.region_counts(torch.tensor([dip]), name)[0] == 0


def test_plot_shades_the_same_intervals_with_their_names():
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    from impediments.plots import activations as P

    names = ["sigmoid", "tanh", "relu", "leaky_relu"]
    fig, axes = P.plot_activations(MODULE_GRID, names)
    lo, hi = MODULE_GRID[0], MODULE_GRID[-1]
    for ax, name in zip(axes, names):
        color = to_rgb(P.FLAT_COLORS[A.flat_region_name(name)])
        shaded = sorted((p.get_x(), p.get_x() + p.get_width()) for p in ax.patches
                        if to_rgb(p.get_facecolor()) == color)
        expected = [(max(a, lo), min(b, hi)) for a, b in A.get(name).saturated_region() if max(a, lo) < min(b, hi)]
        np.testing.assert_allclose(np.asarray(shaded).reshape(-1, 2), np.asarray(expected).reshape(-1, 2))
    assert len(axes[0].patches) >= 2 and len(axes[3].patches) == 1               # sigmoid: both tails; leaky: linear
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"saturated", "inactive", "linear"} <= set(labels)
    assert all(ax.get_legend() is None for ax in axes)                          # no legend over the data
    plt.close(fig)


class Four(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 16)
        self.tanh, self.sigmoid, self.relu, self.leaky = nn.Tanh(), nn.Sigmoid(), nn.ReLU(), nn.LeakyReLU()

    def forward(self, x):
        h = self.fc(x)
        return self.tanh(h) + self.sigmoid(h) + self.relu(h) + self.leaky(h)


def test_monitor_counts_and_doctor_fractions_use_the_same_definition():
    model = Four()
    pre = []
    model.fc.register_forward_hook(lambda m, a, o: pre.append(o.detach().clone()))
    xs = [torch.randn(32, 4) * 20 for _ in range(3)]
    with watch(model, every=1) as mon:
        for x in xs:
            model(x).pow(2).mean().backward()
    stats = mon.stats()
    h = torch.cat(pre).double()
    for name in ("tanh", "sigmoid", "relu", "leaky"):
        a = stats.activations[name]
        flat = brute_flat(a.kind, h.reshape(-1), peak_of(a.kind)).reshape(h.shape)
        assert a.saturated_fraction == pytest.approx(float(flat.double().mean()))
        assert a.unit_active_counts == (~flat).sum(0).tolist()
    assert saturated_fraction(stats.activations["tanh"]) == stats.activations["tanh"].saturated_fraction
    assert saturated_fraction(stats.activations["relu"]) is None                 # ReLU: inactive, judged as dead
    assert stats.activations["leaky"].dead_units == []
    assert dead_count(stats.activations["leaky"], Thresholds()) is None
    report = diagnose(stats)
    judged = {layer: ev["saturated_fraction"] for f in report.findings if f.code == "saturated_units"
              for layer, ev in f.evidence["layers"].items()}
    for layer, frac in judged.items():
        assert frac == stats.activations[layer].saturated_fraction
    assert "tanh" in judged                                                        # inputs x20: tanh mostly flat
