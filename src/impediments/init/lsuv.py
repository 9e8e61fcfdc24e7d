"""Layer-sequential unit-variance (LSUV) initialization (Mishkin & Matas 2016).

1. Pre-initialise every Linear/Conv weight with an orthonormal matrix (biases to ``bias``).
2. From the first layer to the last, forward a batch, measure the variance of the
   layer's output and rescale

   .. math:: W_l \\leftarrow W_l / \\sqrt{\\operatorname{Var}(W_l x_l + b_l)}

   until ``|Var − 1| < tol`` or ``max_iters`` rescalings (the authors' code: tol 0.1,
   at most 10 attempts, target std 1).

The forward passes run in ``eval`` mode under ``no_grad`` (no BatchNorm statistics are
touched; the model's mode is restored), and stop right after the layer being fitted.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from impediments.init.initialize import make_generator, select_layers
from impediments.init.variance_scaling import orthogonal


class LSUVLayer(NamedTuple):
    """Result for one layer: iterations used (rescalings), final output variance, and whether it converged."""

    name: str
    iterations: int
    variance: float
    converged: bool


class _Reached(Exception):
    pass


def _output_variance(model: nn.Module, layer: nn.Module, batch) -> float:
    """Variance of ``layer``'s output on ``batch``; the forward stops once the layer has run."""
    seen = {}

    def hook(module, inputs, output):
        seen["var"] = float(output.detach().double().var(correction=0))
        raise _Reached

    handle = layer.register_forward_hook(hook)
    try:
        model(*batch) if isinstance(batch, tuple) else model(batch)
    except _Reached:
        pass
    finally:
        handle.remove()
    if "var" not in seen:
        raise ValueError(f"layer {type(layer).__name__} never ran during the forward pass of the batch")
    return seen["var"]


def lsuv(
    model: nn.Module, batch, *, tol: float = 0.1, max_iters: int = 10, bias: float | None = 0.0,
    seed: int | None = None, generator: torch.Generator | None = None, layers=None,
) -> list[LSUVLayer]:
    """LSUV-initialise ``model`` on ``batch`` (Mishkin & Matas 2016, *All you need is a good init*).

    Args:
        model: model with Linear/Conv layers.
        batch: input tensor (or tuple of inputs) for ``model``.
        tol: stop when ``|Var(out) − 1| < tol``; in (0, 1).
        max_iters: at most this many rescalings per layer (>= 1).
        bias: value for the biases (``None`` keeps them).
        seed, generator: randomness of the orthonormal pre-init.
        layers: subset of layers (names or modules), default every Linear/Conv.

    Returns:
        One :class:`LSUVLayer` ``(name, iterations, variance, converged)`` per layer, in order.

    Raises:
        ValueError: a layer whose output has zero (or non-finite) variance — a dead or
            constant layer that no rescaling can fix — or a bad ``tol``/``max_iters``.
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive int, got {max_iters!r}")
    chosen = select_layers(model, layers)
    gen = make_generator(seed, generator)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for _, layer in chosen:
                orthogonal(layer.weight, generator=gen)
                if bias is not None and layer.bias is not None:
                    layer.bias.fill_(float(bias))
            return [_fit_layer(model, name, layer, batch, tol, max_iters) for name, layer in chosen]
    finally:
        model.train(was_training)


def _fit_layer(model, name, layer, batch, tol, max_iters) -> LSUVLayer:
    var = _output_variance(model, layer, batch)
    iters = 0
    while True:
        if not math.isfinite(var) or var <= 1e-20:
            raise ValueError(f"LSUV: layer {name!r} produces constant output (variance {var:.3g}); a dead or "
                             "constant layer cannot be rescaled to unit variance — check the inputs, the "
                             "previous layers (dead ReLUs, zero weights) or the bias")
        if abs(var - 1.0) < tol or iters >= max_iters:
            return LSUVLayer(name, iters, var, abs(var - 1.0) < tol)
        layer.weight.div_(math.sqrt(var))
        iters += 1
        var = _output_variance(model, layer, batch)
