"""The activation catalog: each forward with its analytic derivative right beside it.

Every entry pairs ``a(x)`` with ``a'(x)`` (micrograd style: the backward sits next
to the forward), the matching ``torch.nn`` module and, where
:func:`torch.nn.init.calculate_gain` defines one, the recommended init gain.

Derivatives at kinks follow torch's autograd convention, so ``derivative(x)``
equals ``autograd`` everywhere, kinks included: ``relu'(0) = 0``,
``leaky_relu'(0) = slope``, ``elu'(0) = 1``, ``hardtanh'(±1) = 0``,
``hardsigmoid'(±3) = 0``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

Fn = Callable[[torch.Tensor], torch.Tensor]

LEAKY_SLOPE = 0.01  # torch's default negative_slope
SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. 2017
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


def sigmoid_derivative(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 - s)  # σ' = σ(1 − σ)


def tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def tanh_derivative(x: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(x)
    return 1 - t * t  # tanh' = 1 − tanh²


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x)


def relu_derivative(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)  # 1[x > 0]; autograd takes 0 at the kink


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)


def leaky_relu_derivative(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, 1.0, LEAKY_SLOPE).to(x.dtype)


def elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x)


def elu_derivative(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.exp(x))  # eˣ = elu(x) + 1 for x ≤ 0


def selu(x: torch.Tensor) -> torch.Tensor:
    return F.selu(x)


def selu_derivative(x: torch.Tensor) -> torch.Tensor:
    return SELU_SCALE * torch.where(x > 0, torch.ones_like(x), SELU_ALPHA * torch.exp(x))


def gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)  # exact: x Φ(x)


def gelu_derivative(x: torch.Tensor) -> torch.Tensor:
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))
    pdf = _INV_SQRT_2PI * torch.exp(-0.5 * x * x)
    return cdf + x * pdf  # (xΦ)' = Φ + xφ


def silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


def silu_derivative(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))  # (xσ)' = σ + xσ(1 − σ)


def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


def softplus_derivative(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)  # log(1 + eˣ)' = σ(x)


def softsign(x: torch.Tensor) -> torch.Tensor:
    return F.softsign(x)


def softsign_derivative(x: torch.Tensor) -> torch.Tensor:
    d = 1 + x.abs()
    return 1 / (d * d)  # (x / (1 + |x|))' = 1 / (1 + |x|)²


def hardtanh(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh(x)


def hardtanh_derivative(x: torch.Tensor) -> torch.Tensor:
    return ((x > -1) & (x < 1)).to(x.dtype)


def hardsigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.hardsigmoid(x)  # relu6(x + 3) / 6


def hardsigmoid_derivative(x: torch.Tensor) -> torch.Tensor:
    return ((x > -3) & (x < 3)).to(x.dtype) / 6


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def identity_derivative(x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x)


class IdentityActivation(nn.Identity):
    """``nn.Identity`` used *as an activation* (so monitors can tell it from a structural placeholder)."""


@dataclass(frozen=True)
class Activation:
    """One catalog entry.

    Attributes:
        name: catalog name, e.g. ``"tanh"``.
        fn: the function ``a(x)``.
        derivative: its analytic derivative ``a'(x)`` (autograd's value at kinks).
        module: factory returning a fresh ``nn.Module`` computing ``fn``.
        gain: ``torch.nn.init.calculate_gain`` for this nonlinearity, or ``None`` where torch defines none.
        module_types: ``nn.Module`` classes recognised as this activation by :func:`module_kind`.
        equation: the formula, for docs and plots.
    """

    name: str
    fn: Fn
    derivative: Fn
    module: Callable[[], nn.Module]
    gain: float | None
    module_types: tuple[type, ...]
    equation: str = field(default="", compare=False)

    def saturated_region(self, tol: float | None = None) -> list[tuple[float, float]]:
        """The flat tails: closed intervals reaching ±∞ where ``|a'(x)| < tol · max|a'|`` and ``a'`` vanishes at
        that end (see :mod:`.regions`; named by :func:`flat_region_name`)."""
        from impediments.activations.regions import SATURATION_TOL, saturated_intervals

        return list(saturated_intervals(self.name, SATURATION_TOL if tol is None else tol))

    def linear_region(self, tol: float | None = None) -> list[tuple[float, float]]:
        """Closed interval(s) around 0 where ``a`` follows its tangent at 0 within ``tol`` (see :mod:`.regions`)."""
        from impediments.activations.regions import LINEAR_TOL, linear_intervals

        return list(linear_intervals(self.name, LINEAR_TOL if tol is None else tol))


def _entry(name, fn, derivative, module_type, gain, equation, factory=None) -> Activation:
    return Activation(name, fn, derivative, factory or module_type, gain, (module_type,), equation)


_ENTRIES = (
    _entry("sigmoid", sigmoid, sigmoid_derivative, nn.Sigmoid, 1.0, "σ(x) = 1 / (1 + e^{-x})"),
    _entry("tanh", tanh, tanh_derivative, nn.Tanh, 5.0 / 3.0, "tanh(x)"),
    _entry("relu", relu, relu_derivative, nn.ReLU, math.sqrt(2.0), "max(0, x)"),
    _entry("leaky_relu", leaky_relu, leaky_relu_derivative, nn.LeakyReLU,
           math.sqrt(2.0 / (1 + LEAKY_SLOPE ** 2)), "max(0, x) + 0.01 min(0, x)"),
    _entry("elu", elu, elu_derivative, nn.ELU, None, "x if x > 0 else eˣ − 1"),
    _entry("selu", selu, selu_derivative, nn.SELU, 3.0 / 4.0, "λ (x if x > 0 else α(eˣ − 1))"),
    _entry("gelu", gelu, gelu_derivative, nn.GELU, None, "x Φ(x)"),
    _entry("silu", silu, silu_derivative, nn.SiLU, None, "x σ(x)"),
    _entry("softplus", softplus, softplus_derivative, nn.Softplus, None, "log(1 + eˣ)"),
    _entry("softsign", softsign, softsign_derivative, nn.Softsign, None, "x / (1 + |x|)"),
    _entry("hardtanh", hardtanh, hardtanh_derivative, nn.Hardtanh, None, "clip(x, −1, 1)"),
    _entry("hardsigmoid", hardsigmoid, hardsigmoid_derivative, nn.Hardsigmoid, None, "clip(x / 6 + 1/2, 0, 1)"),
    _entry("identity", identity, identity_derivative, IdentityActivation, 1.0, "x"),
)
CATALOG: dict[str, Activation] = {a.name: a for a in _ENTRIES}


def names() -> list[str]:
    """The catalog names, in catalog order."""
    return list(CATALOG)


def get(name: str) -> Activation:
    """The catalog entry for ``name``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
        TypeError: if ``name`` is not a string.
    """
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a str, got {type(name).__name__} {name!r}")
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(CATALOG)}") from None


_KIND_BY_TYPE = {t: a.name for a in _ENTRIES for t in a.module_types}


@dataclass(frozen=True)
class Taxonomy:
    """What kind of nonlinearity an activation is: the one table the monitor, the doctor and the plots read.

    Attributes:
        family: ``"rectifier"`` (one flat tail on the left: a unit never outside it is dead, He et al.
            2015; Lu et al. 2019), ``"leaky"`` (no flat tail: never dead), ``"saturating"`` (two flat
            tails: sigmoid-like, Glorot & Bengio 2010) or ``"linear"``.
        piecewise: piecewise linear, so on one side of its kink it *is* the identity (ReLU's
            near-linear regime is "no input in the flat part"); smooth kinds use the catalog's
            linear region instead.
        gate: bounded output (in [0, 1] or [-1, 1]) of the shape used to *multiply* another tensor
            (LSTM/GRU gates, squeeze-excitation, GLU; Hochreiter & Schmidhuber 1997, Hu et al. 2018).
            Whether a given call is a gate is observed by the monitor (its output multiplies a
            tensor); this flag says the kind can be one.
    """

    family: str
    piecewise: bool
    gate: bool


#: kind -> taxonomy, for every kind the monitor records (catalog entries and ReLU6, CELU, Mish)
TAXONOMY: dict[str, Taxonomy] = {
    "relu": Taxonomy("rectifier", True, False), "relu6": Taxonomy("rectifier", True, False),
    "gelu": Taxonomy("rectifier", False, False), "silu": Taxonomy("rectifier", False, False),
    "elu": Taxonomy("rectifier", False, False), "selu": Taxonomy("rectifier", False, False),
    "celu": Taxonomy("rectifier", False, False), "softplus": Taxonomy("rectifier", False, False),
    "mish": Taxonomy("rectifier", False, False), "leaky_relu": Taxonomy("leaky", True, False),
    "sigmoid": Taxonomy("saturating", False, True), "tanh": Taxonomy("saturating", False, True),
    "hardsigmoid": Taxonomy("saturating", True, True), "hardtanh": Taxonomy("saturating", True, False),
    "softsign": Taxonomy("saturating", False, False), "identity": Taxonomy("linear", True, False),
}


#: kind -> the ``nn`` module class of that kind, for every kind in :data:`TAXONOMY`: the catalog's own
#: classes, plus the kinds the monitor records that have no catalog regions (ReLU6, CELU, Mish)
MODULE_TYPES: dict[str, type] = {**{a.name: a.module_types[0] for a in _ENTRIES},
                                 "relu6": nn.ReLU6, "celu": nn.CELU, "mish": nn.Mish}


def display_name(kind: str) -> str:
    """How a report names an activation kind: its ``nn`` class (``"relu"`` -> ``"ReLU"``), else the kind.

    >>> display_name("leaky_relu"), display_name("relu6"), display_name("block/relu#0")
    ('LeakyReLU', 'ReLU6', 'block/relu#0')
    """
    module_type = MODULE_TYPES.get(kind)
    return module_type.__name__ if module_type is not None else kind


#: the output range of each bounded kind: where its saturated outputs pile up (sigmoid at 0 and 1, tanh at
#: -1 and 1), the range a linear histogram of its outputs spans
OUTPUT_RANGE: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0), "hardsigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0),
    "hardtanh": (-1.0, 1.0)}


def output_range(kind: str) -> tuple[float, float] | None:
    """The output range of a bounded activation kind (:data:`OUTPUT_RANGE`), or None for an unbounded one.

    >>> output_range("sigmoid"), output_range("relu")
    ((0.0, 1.0), None)
    """
    return OUTPUT_RANGE.get(str(kind).lower())


def taxonomy(kind: str) -> Taxonomy | None:
    """The :class:`Taxonomy` of an activation kind (catalog name, ``"relu6"``, ...), or None if unknown."""
    return TAXONOMY.get(str(kind).lower())


def flat_region_name(kind: str) -> str:
    """What a view calls region 0 (the flat tails of :mod:`~impediments.activations.regions`) for ``kind``.

    ``"inactive"`` for a rectifier (ReLU's ``x <= 0``: the unit outputs a constant and passes no gradient
    on that value; whether the *unit* is dead is a verdict over all its values, the ``dead_units`` rule),
    ``"saturated"`` otherwise (sigmoid, tanh and their hard variants: the output pinned near a bound).

    >>> flat_region_name("relu"), flat_region_name("gelu"), flat_region_name("tanh")
    ('inactive', 'inactive', 'saturated')
    """
    t = taxonomy(kind)
    return "inactive" if t is not None and t.family == "rectifier" else "saturated"


def kinds_of(family: str) -> frozenset:
    """Every kind of one family (``"rectifier"``, ``"leaky"``, ``"saturating"``, ``"linear"``)."""
    return frozenset(k for k, t in TAXONOMY.items() if t.family == family)


def module_kind(module: nn.Module) -> str | None:
    """Catalog name of an activation module instance, else ``None``.

    Subclasses count (``nn.ReLU(inplace=True)`` → ``"relu"``); a plain ``nn.Identity``
    is a structural placeholder and gives ``None`` (only :class:`IdentityActivation`,
    what ``get("identity").module()`` builds, is ``"identity"``). Built-in torch
    subclasses with other shapes (``nn.ReLU6`` subclasses ``nn.Hardtanh``) and modules
    whose hyper-parameters move the regions (a LeakyReLU slope other than 0.01, a
    Hardtanh range other than [-1, 1]) give ``None``: the catalog's regions would be wrong.
    """
    cls0 = type(module)
    if cls0 not in _KIND_BY_TYPE and cls0.__module__.startswith("torch.nn"):
        return None
    if isinstance(module, nn.LeakyReLU) and module.negative_slope != 0.01:
        return None
    if isinstance(module, nn.Hardtanh) and (module.min_val, module.max_val) != (-1.0, 1.0):
        return None
    for cls in type(module).__mro__:
        kind = _KIND_BY_TYPE.get(cls)
        if kind is not None:
            return kind
    return None
