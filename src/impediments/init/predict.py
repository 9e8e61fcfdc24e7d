"""Predicted pre-activation variance through depth: the module's formula, propagated.

For a stack of fully connected layers of widths ``n_0, n_1, ..., n_L`` with zero-mean
i.i.d. weights and constant biases ``b``,

.. math:: v_1 = n_0\\, \\mathbb E[W_1^2]\\, \\mathbb E[x^2], \\qquad
          v_{l+1} = n_l\\, \\mathbb E[W_{l+1}^2]\\, \\mathbb E_{z \\sim N(b, v_l)}[a(z)^2],

which is ``Var(out) = n Var(W) Var(in)`` with the activation's effect made exact: for
ReLU ``E[a(z)²] = v/2`` (the factor ½ of He et al. 2015), for tanh ``≈ v`` while ``v`` is
small (the linear regime), less once it saturates (the mean-field recursion of
Poole et al. 2016). The Gaussian expectation uses 101-point Gauss–Hermite quadrature.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from impediments.activations import get as get_activation
from impediments.init.initialize import SCHEMES, get_scheme

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(101)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def second_moment(activation: str, mean: float, variance: float) -> float:
    """``E[a(z)²]`` for ``z ~ N(mean, variance)`` (Gauss–Hermite quadrature)."""
    z = torch.as_tensor(mean + math.sqrt(max(variance, 0.0)) * _NODES, dtype=torch.float64)
    a = get_activation(activation).fn(z).numpy()
    return float((_WEIGHTS * a * a).sum())


def predicted_variances(
    widths: Sequence[int], activation: str, scheme: str, *, input_variance: float = 1.0, bias: float = 0.0, **kw,
) -> list[float]:
    """Predicted variance of each layer's pre-activation for an MLP initialised with ``scheme``.

    Args:
        widths: ``[n_0 (inputs), n_1, ..., n_L]``; returns ``L`` values.
        activation: catalog name applied after every layer but the last.
        scheme: an :func:`~impediments.init.initialize` scheme; its ``**kw`` (``std``, ``limit``, ...) apply.
        input_variance: ``E[x²]`` of the (zero-mean) inputs.
        bias: the constant bias of every layer (shifts the activation's input mean).

    Returns:
        ``[v_1, ..., v_L]`` — pre-activation variances layer by layer.

    Raises:
        ValueError: fewer than two widths, a non-positive width, unknown scheme or activation.
    """
    spec = get_scheme(scheme)
    get_activation(activation)
    widths = list(widths)
    if len(widths) < 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in widths):
        raise ValueError(f"widths must be at least two positive ints [inputs, layer1, ...], got {widths!r}")
    extra = set(kw) - set(spec.params)
    if extra:
        raise TypeError(f"init scheme {scheme!r} got unexpected arguments {sorted(extra)}")
    out, moment = [], float(input_variance)
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        w2 = spec.std(fan_in, fan_out, kw) ** 2 + spec.mean(kw) ** 2
        v = fan_in * w2 * moment
        out.append(v)
        moment = second_moment(activation, bias, v)
    return out


__all__ = ["SCHEMES", "predicted_variances", "second_moment"]
