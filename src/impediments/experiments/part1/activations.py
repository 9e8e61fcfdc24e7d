"""Activation functions and their derivatives: where gradients vanish and where the response is linear.

"The derivatives of each of these functions has a portion of their domain
yielding near zero derivatives": a unit whose pre-activation falls there gets
a zero update and won't learn. "Similarly, there are also portions of the
domain with near-linear response", and a composition of linear maps is
linear (module, "Activation functions"). The figure draws each activation
and its derivative with both regions shaded; the regions are computed
numerically from each function by :mod:`impediments.activations` (saturated:
|a'(x)| below 2.5% of its peak; linear: within 5% of the tangent at 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from impediments.experiments.framework import Claim, Table, claim

SECTION = "Activations: saturation and linearity"
SOURCE = "seed: Activation functions"


@dataclass(frozen=True)
class Config:
    seed: int = 0
    names: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu")
    lo: float = -8.0                 # measurement domain for region fractions
    hi: float = 8.0
    step: float = 0.01

    @classmethod
    def quick(cls, seed: int = 0) -> "Config":
        return cls(seed=seed)

    @classmethod
    def full(cls, seed: int = 0) -> "Config":
        from impediments.activations import names

        return cls(seed=seed, names=tuple(n for n in names() if n != "identity"), step=0.001)


@dataclass
class Result:
    names: list
    x: np.ndarray                    # grid
    values: np.ndarray               # (A, X) a(x)
    derivatives: np.ndarray          # (A, X) analytic a'(x)
    autograd_max_error: list         # per activation: max |analytic - autograd| on the grid (float64)
    saturated: dict                  # name -> [[lo, hi], ...] intervals (± inf allowed)
    linear: dict                     # name -> [[lo, hi], ...]
    fractions: np.ndarray            # (A, 3) fractions of the grid: saturated, linear, active
    peak_derivative: list            # per activation: max |a'(x)| on the grid


def run(config: Config) -> Result:
    from impediments import activations as A

    x = torch.arange(config.lo, config.hi + config.step / 2, config.step, dtype=torch.float64)
    values, derivs, errors, peaks, fractions = [], [], [], [], []
    for name in config.names:
        act = A.get(name)
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(act.fn(xg).sum(), xg)
        d = act.derivative(x)
        values.append(act.fn(x).numpy())
        derivs.append(d.numpy())
        errors.append(float((d - grad).abs().max()))
        peaks.append(float(d.abs().max()))
        fractions.append(A.classify(x, name).double().numpy())
    return Result(names=list(config.names), x=x.numpy(), values=np.array(values), derivatives=np.array(derivs),
                  autograd_max_error=errors,
                  saturated={n: [list(i) for i in A.get(n).saturated_region()] for n in config.names},
                  linear={n: [list(i) for i in A.get(n).linear_region()] for n in config.names},
                  fractions=np.array(fractions), peak_derivative=peaks)


def plot(result: Result):
    """The module's figure: ``plot_activations(np.arange(-5, 5, 0.1))`` for the measured activations."""
    from impediments.plots import plot_activations

    return plot_activations(np.arange(-5, 5, 0.1), list(result.names), ncols=3)


def _boundary(intervals: list, side: int) -> float:
    """Largest |x| where the saturated region starts on one side (+1: right, -1: left); inf if none."""
    starts = [lo if side > 0 else hi for lo, hi in intervals if (hi if side > 0 else -lo) == math.inf]
    return abs(starts[0]) if starts else math.inf


def claims(result: Result) -> list[Claim]:
    r = result
    i = {n: k for k, n in enumerate(r.names)}
    frac = {n: float(r.fractions[i[n]][0]) for n in ("sigmoid", "tanh", "relu")}
    lin = {n: float(r.fractions[i[n]][1]) for n in ("sigmoid", "tanh", "relu")}
    return [
        claim("The derivatives of sigmoid, tanh and ReLU each have a portion of the domain yielding near-zero "
              f"derivatives (fraction of [{r.x[0]:g}, {r.x[-1]:g}] where |a'| < 2.5% of its peak).", SOURCE,
              {f"saturated_fraction_{n}": v for n, v in frac.items()},
              "min(saturated_fraction_sigmoid, saturated_fraction_tanh, saturated_fraction_relu) >= 0.2",
              labels={f"saturated_fraction_{n}": f"{n}: saturated fraction of the domain" for n in frac}),
        claim("Sigmoid saturates for |x| beyond about 5, tanh beyond about 2.5, ReLU for every x < 0.", SOURCE,
              {"sigmoid_boundary": _boundary(r.saturated["sigmoid"], 1),
               "tanh_boundary": _boundary(r.saturated["tanh"], 1),
               "relu_dead_side_end": max(hi for lo, hi in r.saturated["relu"] if lo == -math.inf)},
              "4.5 <= sigmoid_boundary <= 5.5 and 2 <= tanh_boundary <= 3 and abs(relu_dead_side_end) <= 0",
              labels={"sigmoid_boundary": "sigmoid saturates beyond |x| =", "tanh_boundary":
                      "tanh saturates beyond |x| =", "relu_dead_side_end": "ReLU's flat side ends at x ="},
              paper="sigmoid about 5, tanh about 2.5, ReLU 0"),
        claim("There are also portions of the domain with near-linear response: around 0 for sigmoid and tanh, "
              "all of x > 0 for ReLU.", SOURCE, {f"linear_fraction_{n}": v for n, v in lin.items()},
              "min(linear_fraction_sigmoid, linear_fraction_tanh) > 0 and linear_fraction_relu >= 0.45",
              labels={f"linear_fraction_{n}": f"{n}: near-linear fraction of the domain" for n in lin}),
        claim("Sigmoid's derivative never exceeds 1/4 (so each sigmoid layer shrinks the back-propagated gradient "
              "at least 4-fold); tanh's peaks at 1.", "seed: Activation functions; Glorot & Bengio 2010",
              {"sigmoid_peak": r.peak_derivative[i["sigmoid"]], "tanh_peak": r.peak_derivative[i["tanh"]]},
              "abs(sigmoid_peak - 0.25) < 1e-9 and abs(tanh_peak - 1) < 1e-9",
              labels={"sigmoid_peak": "largest sigmoid derivative", "tanh_peak": "largest tanh derivative"},
              paper="1/4 and 1"),
        claim("Each analytic derivative drawn here equals autograd's on the grid (float64; the bound is "
              "torch.testing's float64 tolerance).", "reference: autograd",
              {"max_error": max(r.autograd_max_error)}, "max_error <= 1e-7",
              labels={"max_error": "largest |analytic - autograd| derivative"}),
    ]


def tables(result: Result) -> list[Table]:
    fmt = lambda iv: ", ".join(f"[{lo:.3g}, {hi:.3g}]" for lo, hi in iv) or "none"  # noqa: E731
    rows = [[n, fmt(result.saturated[n]), fmt(result.linear[n]), *map(float, result.fractions[k])]
            for k, n in enumerate(result.names)]
    return [Table(f"regions (fractions of [{result.x[0]:g}, {result.x[-1]:g}])",
                  ["activation", "saturated", "linear", "saturated", "linear", "active"], rows)]
