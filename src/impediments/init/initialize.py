"""``initialize(model, scheme)``: apply a named scheme to every Linear/Conv layer and report it.

The schemes are the weight-level initializers of :mod:`.variance_scaling`; this module
chooses the layers, sets the biases, seeds the draws and returns one summary row per
layer with the std used and the predicted output variance

.. math:: \\operatorname{Var}(y_i) = n_\\text{in}\\, \\mathbb E[W^2]\\, \\mathbb E[x^2]
          \\quad (\\text{reported for } \\mathbb E[x^2] = 1),

the module's ``Var(out) = n Var(W) Var(in)`` (zero-mean weights), with ``E[W²] = std² + mean²``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from impediments.init import variance_scaling as vs

INITIALIZABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Scheme:
    """A named weight initializer: ``fill(tensor, generator=, **params)`` and its weight std/mean."""

    fill: Callable[..., torch.Tensor]
    params: tuple[str, ...]
    std: Callable[[int, int, dict], float]
    mean: Callable[[dict], float] = lambda kw: 0.0


def _vs_std(scale: float, mode: str) -> Callable[[int, int, dict], float]:
    def std(fan_in: int, fan_out: int, kw: dict) -> float:
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        return math.sqrt(scale / n)
    return std


SCHEMES: dict[str, Scheme] = {
    "glorot_normal": Scheme(vs.glorot_normal, (), _vs_std(1.0, "fan_avg")),
    "glorot_uniform": Scheme(vs.glorot_uniform, (), _vs_std(1.0, "fan_avg")),
    "he_normal": Scheme(vs.he_normal, (), _vs_std(2.0, "fan_in")),
    "he_uniform": Scheme(vs.he_uniform, (), _vs_std(2.0, "fan_in")),
    "lecun_normal": Scheme(vs.lecun_normal, (), _vs_std(1.0, "fan_in")),
    "lecun_uniform": Scheme(vs.lecun_uniform, (), _vs_std(1.0, "fan_in")),
    "zeros": Scheme(vs.zeros, (), lambda fi, fo, kw: 0.0),
    "constant": Scheme(vs.constant, ("value",), lambda fi, fo, kw: 0.0, lambda kw: float(kw.get("value", 0.0))),
    "normal": Scheme(vs.normal, ("std",), lambda fi, fo, kw: float(kw.get("std", 0.01))),
    "uniform": Scheme(vs.uniform, ("limit",), lambda fi, fo, kw: float(kw.get("limit", 0.05)) / math.sqrt(3)),
    "identical": Scheme(vs.identical, ("std",),
                        lambda fi, fo, kw: kw["std"] if kw.get("std") is not None else 1 / math.sqrt(fi)),
    "orthogonal": Scheme(vs.orthogonal, ("gain",),
                         lambda fi, fo, kw: float(kw.get("gain", 1.0)) / math.sqrt(max(fi, fo))),
}


class LayerInit(NamedTuple):
    """One row of :func:`initialize`'s summary."""

    name: str
    fan_in: int
    fan_out: int
    std: float
    predicted_variance: float


def get_scheme(name: str) -> Scheme:
    if not isinstance(name, str) or name not in SCHEMES:
        raise ValueError(f"unknown init scheme {name!r}; valid schemes: {', '.join(SCHEMES)}")
    return SCHEMES[name]


def make_generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    """A CPU generator from ``seed``, or ``generator`` itself; both given is an error."""
    if seed is not None and generator is not None:
        raise ValueError("pass either seed= or generator=, not both")
    if seed is None:
        return generator
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def select_layers(model: nn.Module, layers: Iterable | str | None = None) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the Linear/Conv layers to initialise, in module order.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` (e.g. a bare parameter), or a chosen layer is not Linear/Conv.
        ValueError: an unknown layer name (valid names listed), or no initialisable layer at all.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"initialize needs an nn.Module (a model or a Linear/Conv layer), got "
                        f"{type(model).__name__}; to fill a single weight tensor call the preset on it directly")
    named = [(n or type(m).__name__, m) for n, m in model.named_modules()]
    valid = [(n, m) for n, m in named if isinstance(m, INITIALIZABLE)]
    if layers is None:
        if not valid:
            raise ValueError(f"{type(model).__name__} has no Linear or Conv layer to initialise")
        return valid
    layers = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
    by_name, by_id = dict(named), {id(m): n for n, m in named}
    chosen = []
    for item in layers:
        name = item if isinstance(item, str) else by_id.get(id(item))
        module = by_name.get(name) if isinstance(item, str) else item
        if name is None or module is None:
            raise ValueError(f"layer {item!r} is not in the model; initialisable layers: "
                             f"{', '.join(n for n, _ in valid)}")
        if not isinstance(module, INITIALIZABLE):
            raise TypeError(f"layer {name!r} is {type(module).__name__}, not a Linear or Conv layer; "
                            f"initialisable layers: {', '.join(n for n, _ in valid)}")
        chosen.append((name, module))
    order = {id(m): i for i, (_, m) in enumerate(named)}
    return sorted(chosen, key=lambda nm: order[id(nm[1])])


def _check_kwargs(scheme: str, kw: dict) -> None:
    extra = set(kw) - set(SCHEMES[scheme].params)
    if extra:
        allowed = ", ".join(SCHEMES[scheme].params) or "none"
        raise TypeError(f"init scheme {scheme!r} got unexpected arguments {sorted(extra)}; its own arguments: "
                        f"{allowed}")


def initialize(
    model: nn.Module, scheme: str, *, bias: float | None = 0.0, seed: int | None = None,
    generator: torch.Generator | None = None, layers: Iterable | str | None = None, **kw,
) -> list[LayerInit]:
    """Initialise every Linear/Conv layer of ``model`` (or ``layers``) with ``scheme``.

    Args:
        model: a model or a single Linear/Conv layer.
        scheme: one of :data:`SCHEMES` (``"he_normal"``, ``"glorot_uniform"``, ``"identical"``, ...).
        bias: value for every bias (``-5.0`` kills ReLUs, the dead-unit demo); ``None`` leaves them.
        seed: seed for a fresh CPU generator (reproducible); exclusive with ``generator``.
        generator: CPU ``torch.Generator`` to draw from.
        layers: names (``"hidden1.linear"``) or modules to initialise; default all Linear/Conv.
        **kw: the scheme's own arguments: ``std`` (normal, identical), ``limit`` (uniform),
            ``value`` (constant), ``gain`` (orthogonal).

    Returns:
        One :class:`LayerInit` ``(name, fan_in, fan_out, std, predicted_variance)`` per layer.

    Raises:
        ValueError: unknown scheme (valid ones listed), unknown layer, negative std/limit, bad bias.
        TypeError: a non-module model, a non-Linear/Conv layer, or arguments the scheme does not take.

    ``identical`` gives every unit the same random vector in the first chosen layer and a
    constant vector in later ones, so units get identical gradients and stay identical.

    Examples:
        >>> rows = initialize(mlp(64, 10, width=32, depth=3), "he_normal", bias=-5.0, seed=0)  # doctest: +SKIP
    """
    spec = get_scheme(scheme)
    _check_kwargs(scheme, kw)
    if bias is not None and (isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias)):
        raise ValueError(f"bias must be a finite number or None, got {bias!r}")
    gen = make_generator(seed, generator)
    rows = []
    for k, (name, layer) in enumerate(select_layers(model, layers)):
        extra = {"constant_rows": k > 0} if scheme == "identical" else {}
        spec.fill(layer.weight, **kw, **extra, generator=gen)
        if bias is not None and layer.bias is not None:
            with torch.no_grad():
                layer.bias.fill_(float(bias))
        fan_in, fan_out = vs.fans(layer.weight)
        std = spec.std(fan_in, fan_out, kw)
        if scheme == "identical" and k > 0:
            std = std / math.sqrt(fan_in)
        rows.append(LayerInit(name, fan_in, fan_out, std, fan_in * (std ** 2 + spec.mean(kw) ** 2)))
    return rows


def _preset(scheme: str) -> Callable:
    fill = SCHEMES[scheme].fill

    def preset(target, *args, bias: float | None = 0.0, seed: int | None = None,
               generator: torch.Generator | None = None, layers=None, **kw):
        if isinstance(target, torch.Tensor):
            if layers is not None:
                raise TypeError("layers= applies to models, not to a weight tensor")
            return fill(target, *args, **kw, generator=make_generator(seed, generator))
        if args:
            kw[SCHEMES[scheme].params[0]] = args[0]
        return initialize(target, scheme, bias=bias, seed=seed, generator=generator, layers=layers, **kw)

    preset.__name__ = preset.__qualname__ = scheme
    preset.__doc__ = (f"{fill.__doc__}\n\nOn a weight tensor: fills it in place and returns it. On a model or "
                      f"layer: ``initialize(target, {scheme!r}, ...)`` with ``bias``/``seed``/``generator``/"
                      "``layers``, returning the per-layer summary.")
    return preset


glorot_normal = _preset("glorot_normal")
glorot_uniform = _preset("glorot_uniform")
he_normal = _preset("he_normal")
he_uniform = _preset("he_uniform")
lecun_normal = _preset("lecun_normal")
lecun_uniform = _preset("lecun_uniform")
zeros = _preset("zeros")
constant = _preset("constant")
identical = _preset("identical")
normal = _preset("normal")
uniform = _preset("uniform")
orthogonal = _preset("orthogonal")
