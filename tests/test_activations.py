import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments import activations as A
from impediments.activations.regions import GRID_STEP

NAMES = A.names()
# torch's calculate_gain name (and param) for the catalog entries where torch defines a gain
TORCH_GAIN = {"sigmoid": ("sigmoid", None), "tanh": ("tanh", None), "relu": ("relu", None),
              "leaky_relu": ("leaky_relu", 0.01), "selu": ("selu", None), "identity": ("linear", None)}


def test_catalog_has_the_thirteen_names():
    assert NAMES == ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus",
                     "softsign", "hardtanh", "hardsigmoid", "identity"]


@pytest.mark.parametrize("name", NAMES)
def test_fn_matches_torch_module(name):
    a = A.get(name)
    x = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    torch.testing.assert_close(a.fn(x), a.module()(x))
    assert a.module() is not a.module()


@pytest.mark.parametrize("name", NAMES)
def test_analytic_derivative_matches_autograd(name):
    a = A.get(name)
    # a grid that hits the kinks exactly (0, ±1, ±3) plus far tails
    x = torch.cat([torch.arange(-12, 12.001, 0.125, dtype=torch.float64), torch.tensor([-40.0, 40.0]).double()])
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(a.module()(x).sum(), x)
    torch.testing.assert_close(a.derivative(x.detach()), grad)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_gradcheck_style_finite_differences(name):
    """Away from kinks the analytic derivative equals the central difference in float64."""
    a = A.get(name)
    x = torch.tensor([-4.3, -2.2, -0.7, -0.2, 0.3, 0.8, 2.4, 4.6], dtype=torch.float64)
    h = 1e-6
    fd = (a.fn(x + h) - a.fn(x - h)) / (2 * h)
    torch.testing.assert_close(a.derivative(x), fd, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(TORCH_GAIN))
def test_gain_matches_calculate_gain(name):
    torch_name, param = TORCH_GAIN[name]
    assert A.get(name).gain == pytest.approx(nn.init.calculate_gain(torch_name, param), rel=1e-12)


def test_gain_is_none_where_torch_defines_none():
    assert {n for n in NAMES if A.get(n).gain is None} == set(NAMES) - set(TORCH_GAIN)


def test_sigmoid_saturates_beyond_ln_99():
    (lo_iv, hi_iv) = A.get("sigmoid").saturated_region()
    assert lo_iv[0] == -math.inf and hi_iv[1] == math.inf
    assert -lo_iv[1] == pytest.approx(math.log(99)) and hi_iv[0] == pytest.approx(math.log(99))
    # the boundary is where the definition says: sigma'(b) = tol * sigma'(0)
    b = torch.tensor(hi_iv[0], dtype=torch.float64)
    assert float(A.get("sigmoid").derivative(b)) == pytest.approx(A.SATURATION_TOL * 0.25, rel=1e-6)


def test_saturation_boundary_moves_with_tol_as_closed_form():
    # sigma'(x)/sigma'(0) = 4 s (1-s) = tol  ->  s = (1 + sqrt(1 - tol)) / 2, x = logit(s)
    for tol in (0.1, 0.01, 0.001):
        s = (1 + math.sqrt(1 - tol)) / 2
        expected = math.log(s / (1 - s))
        assert A.get("sigmoid").saturated_region(tol)[1][0] == pytest.approx(expected, rel=1e-9)
        # tanh'(x) = sech^2 x = tol  ->  x = acosh(1/sqrt(tol))
        assert A.get("tanh").saturated_region(tol)[1][0] == pytest.approx(math.acosh(tol ** -0.5), rel=1e-9)


def test_piecewise_regions_are_exact():
    assert A.get("relu").saturated_region() == [(-math.inf, 0.0)]
    assert A.get("relu").linear_region() == [(0.0, math.inf)]
    assert A.get("hardtanh").saturated_region() == [(-math.inf, -1.0), (1.0, math.inf)]
    assert A.get("hardsigmoid").saturated_region() == [(-math.inf, -3.0), (3.0, math.inf)]
    assert A.get("identity").saturated_region() == []
    assert A.get("identity").linear_region() == [(-math.inf, math.inf)]


def test_tanh_linear_region_matches_its_definition():
    (lo, hi), = A.get("tanh").linear_region(0.05)
    assert lo == pytest.approx(-hi)
    # boundary solves (x - tanh x) / x = tol
    assert (hi - math.tanh(hi)) / hi == pytest.approx(0.05, rel=1e-6)
    # sigmoid(x) = 1/2 + tanh(x/2)/2 is a rescaled tanh, so its region is exactly twice as wide
    assert A.get("sigmoid").linear_region(0.05)[0][1] == pytest.approx(2 * hi, rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_classify_fractions_are_the_counts_over_the_size(name):
    """classify() is region_counts() over the number of values (the flat region itself is checked against
    autograd in tests/test_activation_regions.py)."""
    x = torch.arange(-30, 30, 0.01, dtype=torch.float64)
    fractions = A.classify(x, name)
    counts = A.region_counts(x, name)
    assert counts.dtype == torch.int64 and int(counts.sum()) == x.numel()
    torch.testing.assert_close(fractions, counts.float() / x.numel())


def test_classify_values_and_precedence():
    x = torch.tensor([-10.0, -6.0, -1.0, 0.0, 0.5, 2.0, 6.0])
    torch.testing.assert_close(A.region_counts(x, "sigmoid"), torch.tensor([3, 2, 2]))
    # ReLU: x <= 0 saturated (0 included: autograd's relu'(0) = 0), x > 0 linear, nothing active
    torch.testing.assert_close(A.region_counts(x, "relu"), torch.tensor([4, 3, 0]))
    torch.testing.assert_close(A.region_counts(x, "identity"), torch.tensor([0, 7, 0]))
    # hardtanh: |x| >= 1 saturated even though within the (raw) linear interval up to 1.05
    torch.testing.assert_close(A.region_counts(torch.tensor([1.0, 1.04, 0.9]), "hardtanh"), torch.tensor([2, 1, 0]))


def test_classify_tolerances_change_the_split():
    x = torch.linspace(-8, 8, 10001)
    loose = A.classify(x, "tanh", saturation_tol=0.2, linear_tol=0.2)
    strict = A.classify(x, "tanh", saturation_tol=0.001, linear_tol=0.001)
    assert loose[0] > strict[0] and loose[1] > strict[1]


def test_classify_shapes_dtypes_and_empty():
    x = torch.randn(4, 3, 5).half()
    f = A.classify(x, "tanh")
    assert f.shape == (3,) and f.dtype == torch.float32 and float(f.sum()) == pytest.approx(1.0)
    assert A.classify(torch.empty(0), "relu").tolist() == [0.0, 0.0, 0.0]
    assert A.region_counts(torch.tensor(3.0), "relu").tolist() == [0, 1, 0]


def test_classify_does_not_sync_with_the_host(monkeypatch):
    """No .item()/.cpu()/.tolist() on the data path (boundaries are cached Python floats)."""
    x = torch.randn(100)
    A.classify(x, "gelu")  # warm the cache

    def forbid(*args, **kwargs):
        raise AssertionError("host sync")

    for method in ("item", "cpu", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, method, forbid)
    A.classify(x, "gelu")
    A.region_counts(x, "sigmoid")


def test_module_kind():
    assert A.module_kind(nn.ReLU(inplace=True)) == "relu"
    assert A.module_kind(nn.LeakyReLU(0.2)) is None  # regions are for slope 0.01
    assert A.module_kind(A.get("identity").module()) == "identity"
    assert A.module_kind(nn.Identity()) is None
    assert A.module_kind(nn.Linear(2, 2)) is None

    class MyTanh(nn.Tanh):
        pass

    assert A.module_kind(MyTanh()) == "tanh"
    for name in NAMES:
        assert A.module_kind(A.get(name).module()) == name


def test_models_build_activations_from_the_catalog():
    from impediments.models import activation, mlp

    for name in NAMES:
        assert A.module_kind(activation(name)) == name
    m = mlp(3, 2, width=4, depth=1, activation="gelu")
    x = torch.randn(5, 3)
    torch.testing.assert_close(m(x), m.output(F.gelu(m.hidden1.linear(x))))


@pytest.mark.parametrize("bad", ["swish2", "ReLU", ""])
def test_unknown_names(bad):
    with pytest.raises(ValueError, match=rf"{bad}.*valid names: sigmoid, tanh"):
        A.get(bad)
    with pytest.raises(ValueError, match="valid names"):
        A.classify(torch.zeros(3), bad)


def test_bad_types_and_tolerances():
    with pytest.raises(TypeError, match="str"):
        A.get(3)
    with pytest.raises(TypeError, match="ndarray"):
        A.classify(np.zeros(3), "relu")
    for tol in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="tol must be a number in"):
            A.classify(torch.zeros(3), "tanh", saturation_tol=tol)
        with pytest.raises(ValueError, match="linear tol"):
            A.get("tanh").linear_region(tol)


# -- plot_activations (headless) --------------------------------------------------------------------------------
def test_plot_activations_module_call_runs_headless():
    import matplotlib

    import impediments as nnh

    assert matplotlib.get_backend().lower() == "agg"
    fig, axes = nnh.plot_activations(np.arange(-5, 5, 0.1))
    assert len(axes) == len(NAMES) == len(fig.axes) == 13
    assert [ax.get_title() for ax in axes] == NAMES
    # each panel draws a(x) and a'(x) from the catalog on the grid
    tanh_ax = axes[NAMES.index("tanh")]
    fx, dx = (line.get_ydata() for line in tanh_ax.get_lines()[:2])
    np.testing.assert_allclose(fx, np.tanh(np.arange(-5, 5, 0.1)), rtol=1e-12)
    np.testing.assert_allclose(dx, 1 - np.tanh(np.arange(-5, 5, 0.1)) ** 2, rtol=1e-9, atol=1e-12)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_activations_list_of_names_and_shading():
    from impediments.plots import plot_activations

    fig, axes = plot_activations(["relu", "sigmoid"])
    assert len(axes) == 2 == len(fig.axes)
    fig2, axes2 = plot_activations(np.linspace(-8, 8, 50), names="hardtanh")
    spans = [p for p in axes2[0].patches]
    # saturated [-8, -1], [1, 8] and linear [-1, 1] (hardtanh's raw linear interval is cut at +-1)
    extents = sorted(round(p.get_x(), 6) for p in spans)
    assert len(spans) == 3 and extents == [-8.0, -1.0, 1.0]
    import matplotlib.pyplot as plt

    plt.close(fig)
    plt.close(fig2)


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [((np.arange(3.0), ["swish2"]), {}, ValueError, "swish2.*valid names"),
     ((np.arange(3.0), []), {}, ValueError, "empty"),
     ((np.zeros((3, 2)),), {}, ValueError, "1-D"),
     ((np.array([0.0, np.nan]),), {}, ValueError, "finite"),
     (([1.0],), {}, ValueError, "at least 2")],
)
def test_plot_activations_bad_input(args, kwargs, exc, match):
    from impediments.plots import plot_activations

    with pytest.raises(exc, match=match):
        plot_activations(*args, **kwargs)


def test_plots_package_is_lazy(monkeypatch):
    import importlib
    import sys

    import impediments

    for mod in ("impediments.plots", "impediments.plots.activations"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    monkeypatch.delattr(impediments, "plots", raising=False)
    plots = importlib.import_module("impediments.plots")
    assert "impediments.plots.activations" not in sys.modules
    assert callable(plots.plot_activations) and "impediments.plots.activations" in sys.modules
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        plots.nope


def test_module_kind_rejects_lookalikes_with_other_regions():
    from torch import nn

    from impediments.activations import module_kind

    assert module_kind(nn.ReLU6()) is None  # subclasses Hardtanh but saturates at 0 and 6
    assert module_kind(nn.LeakyReLU(0.3)) is None
    assert module_kind(nn.Hardtanh(-2.0, 2.0)) is None
    assert module_kind(nn.LeakyReLU()) == "leaky_relu" and module_kind(nn.Hardtanh()) == "hardtanh"

    class MyReLU(nn.ReLU):
        pass

    assert module_kind(MyReLU()) == "relu"


# --------------------------------------------------------------------------------------------- per-unit regions
@pytest.mark.parametrize("name", A.names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_unit_region_counts_equal_the_reference_masks_value_for_value(name, dtype):
    """The float-kernel path counts exactly what region_counts' boolean masks count, per unit,
    including values exactly on every region boundary, zeros and infinities."""
    from impediments.activations.unit_regions import unit_region_counts

    torch.manual_seed(0)
    ends = [e for iv in A.saturated_intervals(name) + A.linear_intervals(name) for e in iv if math.isfinite(e)]
    x = torch.randn(40, 6, 5) * 4
    specials = torch.tensor(ends + [0.0, math.inf, -math.inf]).to(dtype).float()
    x.view(-1)[torch.randperm(x.numel())[: 10 * len(specials)]] = specials.repeat(10)
    x = x.to(dtype)
    for dim in (1, 2):
        ref = torch.stack([A.region_counts(x.movedim(dim, 0)[u], name) for u in range(x.shape[dim])], 1)
        for finite in (True, False):
            got = unit_region_counts(x, name, dim, finite=finite)
            assert torch.equal(got.long(), ref), (name, dtype, dim, finite)


def test_unit_region_counts_count_nan_as_active_and_reject_scalars():
    from impediments.activations.unit_regions import unit_region_counts

    x = torch.tensor([[float("nan"), -1.0], [2.0, 0.0]])
    assert unit_region_counts(x, "relu", 1).tolist() == [[0.0, 2.0], [1.0, 0.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="unit dimension"):
        unit_region_counts(torch.tensor(1.0), "relu", 0)
