"""What is recorded for each kind of module, as functions of (bag, tensors); no host sync.

* activations: moments of the input (pre-activation) and output, a signed-log histogram of the
  output, region counts from :func:`impediments.activations.region_counts`, and per-unit activity
  for the ReLU family (a unit is active on a value when its pre-activation is > 0; for ReLU that is
  exactly a non-zero output);
* Linear/Conv outputs: moments, and moments of d loss / d output through a tensor hook
  (Glorot & Bengio 2010, the backward signal);
* BatchNorm: batch vs running statistics per channel, in forwards that normalise with batch
  statistics (Ioffe & Szegedy 2015).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from impediments.monitor.accumulators import Bag, batch_moments, histogram_counts, histogram_many, histogram_subsample

RELU_FAMILY = frozenset({"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "softplus", "mish"})
LAYER_TYPES = (nn.Linear, _ConvNd)
_CHANNEL_FIRST = (_ConvNd, _BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
                  nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


def _norm_api():
    try:
        from impediments.norm import is_batch_norm as bn, is_frozen as frozen
    except ImportError:  # pragma: no cover - impediments.norm is part of the package
        bn, frozen = (lambda m: isinstance(m, _BatchNorm)), (lambda m: False)
    return bn, frozen


_NORM: list = []


def is_batch_norm(module: nn.Module) -> bool:
    """BatchNorm layer (``impediments.norm.is_batch_norm``)."""
    if not _NORM:
        _NORM.extend(_norm_api())
    return bool(_NORM[0](module))


def is_frozen(module: nn.Module) -> bool:
    """Frozen on purpose with ``impediments.norm.freeze`` (not the same as ``eval()``)."""
    if not _NORM:
        _NORM.extend(_norm_api())
    return bool(_NORM[1](module))


def unit_dim(x: torch.Tensor, previous: nn.Module | None) -> int:
    """Units are channels (dim 1) after conv-like layers, else the last dim (features)."""
    if x.dim() >= 3 and isinstance(previous, _CHANNEL_FIRST):
        return 1
    return x.dim() - 1


def _region_counts(x: torch.Tensor, kind: str):
    try:
        from impediments.activations import names, region_counts
    except ImportError:
        return None
    if kind not in names():
        return None
    return region_counts(x, kind)


def record_activation_input(bag: Bag, x: torch.Tensor, kind: str, dim: int, moments=None) -> int:
    """Fold the pre-activation ``x`` into ``bag`` (``moments``: its moments if already computed,
    e.g. as the output of the Linear that fed it); returns the number of units (host int)."""
    x = x.detach()
    bag.add("input", batch_moments(x) if moments is None else moments, "moments")
    counts = _region_counts(x, kind)
    if counts is not None:
        bag.add("regions", counts.to(torch.int64), "sum")
    units = x.shape[dim] if x.dim() else 1
    if kind in RELU_FAMILY and x.dim():
        others = tuple(d for d in range(x.dim()) if d != dim)
        active = (x > 0).float().sum(dim=others) if others else (x > 0).float()   # exact below 2**24 per call
        bag.add("active", active.double(), "sum")
        bag.count("unit_total", x.numel() // max(units, 1))
    bag.count("samples")
    return units


def record_activation_output(bag: Bag, out: torch.Tensor, hist_queue: list | None = None):
    """Fold the output into ``bag``; returns its :class:`Batch` moments (``bad`` = non-finite count).

    With ``hist_queue``, the histogram subsample (copied now, before any later in-place op) is queued
    as ``(bag, values)`` for :func:`flush_histograms` at the end of the forward pass.
    """
    m = batch_moments(out)
    bag.add("output", m, "moments")
    if hist_queue is None:
        bag.add("hist", histogram_counts(out), "sum")
    else:
        hist_queue.append((bag, histogram_subsample(out).to(torch.float64, copy=True)))
    return m


def flush_histograms(queue: list) -> None:
    """Count every queued histogram subsample in one pass and add each row to its bag."""
    if not queue:
        return
    rows = histogram_many([v for _, v in queue])
    for (bag, _), row in zip(queue, rows.unbind(0)):
        bag.add("hist", row, "sum")
    queue.clear()


def record_layer_output(bag: Bag, out: torch.Tensor) -> torch.Tensor:
    """Moments of a Linear/Conv output and, in the backward pass, of its gradient."""
    m = batch_moments(out)
    bag.add("output", m, "moments")
    bag.count("samples")
    if out.requires_grad:
        out.register_hook(lambda g: bag.add("grad", batch_moments(g), "moments"))
    return m


def record_batchnorm(bag: Bag, module: nn.Module, x: torch.Tensor) -> None:
    """Batch mean/var per channel against running statistics (before this forward updates them).

    .. math:: d_\\mu = \\operatorname{mean}_c \\frac{|\\bar x_c - \\hat\\mu_c|}{\\sqrt{\\hat\\sigma^2_c + \\epsilon}},
              \\quad r_\\sigma = \\operatorname{mean}_c \\frac{s^2_c}{\\hat\\sigma^2_c}
    """
    bag.count("training_forwards")
    uses_running = (not module.training) and getattr(module, "running_mean", None) is not None
    if uses_running:
        bag.count("running_forwards")
    rm, rv = getattr(module, "running_mean", None), getattr(module, "running_var", None)
    if not module.training or rm is None or rv is None or x.dim() < 2 or module.num_batches_tracked is None or x.shape[1] != rm.numel():
        return
    x = x.detach()
    dims = tuple(d for d in range(x.dim()) if d != 1)
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    dev = ((mean - rm).abs() / torch.sqrt(rv + module.eps)).mean()
    ratio = (var / rv.clamp_min(1e-30)).mean()
    bag.add("running_dev", torch.stack([dev, ratio]).double(), "sum")
    bag.count("compared")
