import math

import pytest
import torch
from scipy import stats
from torch import nn

from impediments import init
from impediments.models import mlp

SHAPE = (384, 128, 3)  # conv-like weight: fan_in = 384, fan_out = 1152, 147k entries
FAN_IN, FAN_OUT = 128 * 3, 384 * 3

# preset -> (formula std, torch reference, distribution family)
PRESETS = {
    "glorot_normal": (math.sqrt(2 / (FAN_IN + FAN_OUT)), lambda t, g: nn.init.xavier_normal_(t, generator=g), "norm"),
    "glorot_uniform": (math.sqrt(2 / (FAN_IN + FAN_OUT)), lambda t, g: nn.init.xavier_uniform_(t, generator=g),
                       "uniform"),
    "he_normal": (math.sqrt(2 / FAN_IN), lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g),
                  "norm"),
    "he_uniform": (math.sqrt(2 / FAN_IN), lambda t, g: nn.init.kaiming_uniform_(t, nonlinearity="relu", generator=g),
                   "uniform"),
    "lecun_normal": (math.sqrt(1 / FAN_IN),
                     lambda t, g: nn.init.kaiming_normal_(t, nonlinearity="linear", generator=g), "norm"),
    "lecun_uniform": (math.sqrt(1 / FAN_IN),
                      lambda t, g: nn.init.kaiming_uniform_(t, nonlinearity="linear", generator=g), "uniform"),
}


def _dist(family: str, std: float):
    if family == "norm":
        return stats.norm(scale=std).cdf
    limit = math.sqrt(3) * std
    return stats.uniform(loc=-limit, scale=2 * limit).cdf


def test_fans_match_torch():
    for shape in [(7, 5), (8, 3, 5), (4, 2, 3, 3)]:
        assert init.fans(torch.empty(shape)) == nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_matches_formula_and_torch(name):
    std, reference, family = PRESETS[name]
    w = getattr(init, name)(torch.empty(SHAPE), seed=3)
    # formula: empirical std within 1 % and the whole distribution by a KS test
    assert float(w.std()) == pytest.approx(std, rel=0.01)
    assert abs(float(w.mean())) < 4 * std / math.sqrt(w.numel())
    assert stats.kstest(w.flatten().numpy()[::7], _dist(family, std)).pvalue > 1e-3
    # torch: same generator state -> bitwise the same draws as the matching torch.nn.init function
    torch.testing.assert_close(w, reference(torch.empty(SHAPE), torch.Generator().manual_seed(3)), rtol=0, atol=0)


@pytest.mark.parametrize("mode,n", [("fan_in", FAN_IN), ("fan_out", FAN_OUT), ("fan_avg", (FAN_IN + FAN_OUT) / 2)])
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_variance_scaling_core(mode, n, distribution):
    g = torch.Generator().manual_seed(0)
    w = init.variance_scaling(torch.empty(SHAPE), scale=3.0, mode=mode, distribution=distribution, generator=g)
    std = math.sqrt(3.0 / n)
    assert float(w.std()) == pytest.approx(std, rel=0.01)
    if distribution == "truncated_normal":
        s = std / 0.87962566103423978
        assert float(w.abs().max()) <= 2 * s * (1 + 1e-6)
        assert stats.kstest(w.flatten().numpy()[::7], stats.truncnorm(-2, 2, scale=s).cdf).pvalue > 1e-3
    elif distribution == "uniform":
        assert float(w.abs().max()) <= math.sqrt(3) * std


def test_simple_presets_and_orthogonal():
    g = torch.Generator().manual_seed(0)
    assert float(init.normal(torch.empty(500, 400), 2.0, generator=g).std()) == pytest.approx(2.0, rel=0.01)
    u = init.uniform(torch.empty(500, 400), 0.3, generator=g)
    assert float(u.abs().max()) <= 0.3 and float(u.std()) == pytest.approx(0.3 / math.sqrt(3), rel=0.01)
    assert torch.equal(init.constant(torch.empty(3, 4), 0.5), torch.full((3, 4), 0.5))
    assert torch.equal(init.zeros(torch.ones(3, 4)), torch.zeros(3, 4))
    q = init.orthogonal(torch.empty(20, 50), seed=0)
    torch.testing.assert_close(q @ q.T, torch.eye(20), atol=1e-5, rtol=0)
    ref = nn.init.orthogonal_(torch.empty(20, 50), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(q, ref, rtol=0, atol=0)


def test_seed_and_generator_are_reproducible():
    a = init.he_normal(torch.empty(10, 10), seed=5)
    b = init.he_normal(torch.empty(10, 10), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, init.he_normal(torch.empty(10, 10), seed=6))


def test_initialize_summary_and_biases():
    model = mlp(64, 10, width=32, depth=3)
    rows = init.initialize(model, "he_normal", bias=-5.0, seed=0)
    assert [r.name for r in rows] == ["hidden1.linear", "hidden2.linear", "hidden3.linear", "output"]
    first = rows[0]
    assert (first.fan_in, first.fan_out) == (64, 32)
    assert first.std == pytest.approx(math.sqrt(2 / 64)) and first.predicted_variance == pytest.approx(2.0)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            assert torch.equal(module.bias, torch.full_like(module.bias, -5.0))
    # the predicted output variance is what a forward pass measures (unit-variance inputs, first layer)
    x = torch.randn(4096, 64, generator=torch.Generator().manual_seed(1))
    measured = float((model.hidden1.linear(x) + 5.0).detach().var())
    assert measured == pytest.approx(first.predicted_variance, rel=0.1)
    # seeded: the same weights twice
    other = mlp(64, 10, width=32, depth=3)
    init.initialize(other, "he_normal", bias=-5.0, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), other.parameters()))


def test_initialize_string_schemes_with_arguments():
    model = mlp(20, 5, width=16, depth=2)
    rows = init.initialize(model, "normal", std=2.0, seed=0)
    assert all(r.std == 2.0 and r.predicted_variance == pytest.approx(4.0 * r.fan_in) for r in rows)
    assert float(model.hidden2.linear.weight.detach().std()) == pytest.approx(2.0, rel=0.2)
    init.initialize(model, "zeros")
    assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())
    rows = init.initialize(model, "constant", value=0.25, bias=None)
    assert rows[0].predicted_variance == pytest.approx(20 * 0.0625)
    init.initialize(model, "uniform", limit=0.1, seed=1)
    assert float(model.output.weight.detach().abs().max()) <= 0.1
    init.initialize(model, "orthogonal", gain=2.0, seed=0)
    w = model.hidden2.linear.weight
    torch.testing.assert_close(w @ w.T, 4 * torch.eye(16), atol=1e-4, rtol=0)


def test_initialize_layer_subset_and_conv():
    model = mlp(8, 3, width=8, depth=2)
    before = model.hidden1.linear.weight.clone()
    rows = init.initialize(model, "zeros", layers=["hidden2.linear", model.output])
    assert [r.name for r in rows] == ["hidden2.linear", "output"]
    assert torch.equal(model.hidden1.linear.weight, before) and float(model.output.weight.detach().abs().sum()) == 0
    conv = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv1d(4, 4, 5))
    rows = init.initialize(conv, "he_uniform", seed=0)
    assert [(r.fan_in, r.fan_out) for r in rows] == [(27, 144), (20, 20)]
    assert init.initialize(nn.Linear(4, 2), "lecun_normal", seed=0)[0].std == pytest.approx(0.5)


def test_preset_on_model_equals_initialize():
    a, b = mlp(10, 4, width=8, depth=2), mlp(10, 4, width=8, depth=2)
    rows = init.glorot_uniform(a, bias=0.1, seed=2)
    assert rows == init.initialize(b, "glorot_uniform", bias=0.1, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert init.normal(a, 0.5, seed=0)[0].std == 0.5


def _train_steps(model, steps=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(64, 12, generator=g), torch.randint(0, 4, (64,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_identical_units_stay_identical_while_he_normal_units_differ(activation):
    sym = mlp(12, 4, width=10, depth=3, activation=activation)
    init.initialize(sym, "identical", bias=0.1, seed=0)
    for k in (1, 2, 3):
        w = getattr(sym, f"hidden{k}").linear.weight.detach()
        assert float(w.std(0).max()) == 0 and float(w.abs().max()) > 0
    _train_steps(sym)
    for k in (1, 2, 3):
        w = getattr(sym, f"hidden{k}").linear.weight.detach()
        assert float((w - w[0]).abs().max()) < 1e-6, f"hidden{k} units diverged"
    rand = mlp(12, 4, width=10, depth=3, activation=activation)
    init.initialize(rand, "he_normal", seed=0)
    _train_steps(rand)
    for k in (1, 2, 3):
        assert float(getattr(rand, f"hidden{k}").linear.weight.detach().std(0).mean()) > 0.05


def test_identical_weights_do_train():
    sym = mlp(12, 4, width=10, depth=2, activation="tanh")
    init.initialize(sym, "identical", seed=0)
    before = sym.hidden1.linear.weight.detach().clone()
    _train_steps(sym, steps=5)
    assert float((sym.hidden1.linear.weight.detach() - before).abs().max()) > 1e-4


@pytest.mark.parametrize("activation,factor", [("relu", 0.5), ("identity", 1.0)])
def test_predicted_variances_closed_form(activation, factor):
    v = init.predicted_variances([50, 100, 100, 100], activation, "normal", std=0.2, input_variance=3.0)
    expected = [50 * 0.04 * 3.0]
    for _ in range(2):
        expected.append(100 * 0.04 * factor * expected[-1])
    assert v == pytest.approx(expected, rel=1e-9)
    assert init.predicted_variances([100] * 6, "relu", "he_normal") == pytest.approx([2.0] * 5)


def test_predicted_variances_match_a_measured_tanh_network():
    torch.manual_seed(0)
    widths = [200, 400, 400, 400, 400]
    pred = init.predicted_variances(widths, "tanh", "normal", std=1.5 / math.sqrt(400), input_variance=1.0)
    x = torch.randn(2000, 200)
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    model = nn.Sequential(*layers)
    init.initialize(model, "normal", std=1.5 / math.sqrt(400), seed=1)  # not the data's seed: W ⟂ x
    h, measured = x, []
    for k, layer in enumerate(layers):
        z = layer(h if k == 0 else torch.tanh(h))
        measured.append(float(z.detach().var()))
        h = z
    assert measured == pytest.approx(pred, rel=0.1)
    # tanh near 0 acts as the identity (factor ~1); saturation shrinks it
    assert init.second_moment("tanh", 0.0, 1e-4) / 1e-4 == pytest.approx(1.0, abs=1e-3)
    assert init.second_moment("tanh", 0.0, 4.0) / 4.0 < 0.2
    assert init.second_moment("relu", 0.0, 3.0) == pytest.approx(1.5, rel=1e-9)


def test_predicted_variances_with_bias_shift():
    # a bias of -5 on ReLU kills almost every unit: the next layer's variance collapses
    v = init.predicted_variances([100, 100, 100], "relu", "he_normal", bias=-5.0)
    assert v[1] < 1e-3 * v[0]


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: init.initialize(mlp(4, 2, width=4, depth=1), "xavier"), ValueError, "xavier.*valid schemes: glorot"),
        (lambda: init.initialize(mlp(4, 2, width=4, depth=1), "normal", std=-1.0), ValueError, "std.*-1.0"),
        (lambda: init.initialize(mlp(4, 2, width=4, depth=1), "uniform", limit=-0.5), ValueError, "limit.*-0.5"),
        (lambda: init.normal(torch.empty(3, 3), float("nan")), ValueError, "std"),
        (lambda: init.initialize(mlp(4, 2, width=4, depth=1), "he_normal", std=1.0), TypeError, "std"),
        (lambda: init.initialize(mlp(4, 2, width=4, depth=1), "he_normal", layers=["hidden1.act"]), TypeError,
         "hidden1.act.*ReLU.*not a Linear or Conv"),
        (lambda: init.initialize(mlp(4, 2, width=4, depth=1), "he_normal", layers=["nope"]), ValueError,
         "nope.*hidden1.linear"),
        (lambda: init.initialize(nn.BatchNorm1d(3), "he_normal"), ValueError, "BatchNorm1d has no Linear or Conv"),
        (lambda: init.initialize(nn.Linear(3, 3).weight, "he_normal"), TypeError, "Parameter"),
        (lambda: init.he_normal(nn.Linear(3, 3).bias), ValueError, "1-D parameter.*bias"),
        (lambda: init.he_normal(nn.BatchNorm1d(3).weight), ValueError, "Linear or Conv"),
        (lambda: init.variance_scaling(torch.empty(3, 3), mode="fan_sum"), ValueError, "fan_sum.*fan_in, fan_out"),
        (lambda: init.variance_scaling(torch.empty(3, 3), distribution="cauchy"), ValueError, "cauchy.*normal"),
        (lambda: init.variance_scaling(torch.empty(3, 3), scale=0.0), ValueError, "scale"),
        (lambda: init.initialize(nn.Linear(3, 3), "zeros", seed=0, generator=torch.Generator()), ValueError,
         "either seed"),
        (lambda: init.initialize(nn.Linear(3, 3), "zeros", bias=float("inf")), ValueError, "bias"),
        (lambda: init.predicted_variances([10], "relu", "he_normal"), ValueError, "widths"),
        (lambda: init.predicted_variances([10, 10], "swish2", "he_normal"), ValueError, "swish2"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
