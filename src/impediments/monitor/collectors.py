"""What is recorded for each kind of module, as functions of (bag, tensors); no host sync.

* activations: moments of the input (pre-activation) and output, a signed-log histogram of the
  output, and per-unit counts of the pre-activations in each region of the activation
  (:mod:`impediments.activations.unit_regions`; a unit is alive on a value outside the saturated
  region, so for ReLU on a positive pre-activation: exactly a non-zero output). ReLU-like kinds
  outside the catalog (ReLU6, CELU, Mish) count ``x > 0`` as alive and report no regions;
* Linear/Conv outputs: moments, and moments of d loss / d output through a tensor hook
  (Glorot & Bengio 2010, the backward signal);
* BatchNorm: batch vs running statistics per channel, in forwards that normalise with batch
  statistics (Ioffe & Szegedy 2015).
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from impediments.activations.catalog import kinds_of
from impediments.activations.unit_regions import cut_counts
from impediments.monitor.bag import Bag
from impediments.monitor.histogram import histogram_many, histogram_subsample
from impediments.monitor.moments import batch_moments

#: kinds counted as alive on ``x > 0`` when the catalog has no regions for them (the one taxonomy)
RELU_FAMILY = kinds_of("rectifier") | kinds_of("leaky")
ConvNd = _ConvNd
LAYER_TYPES = (nn.Linear, _ConvNd)
_CHANNEL_FIRST = (_ConvNd, _BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
                  nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


class Scratch:
    """Reusable full-size temporaries (``like(x)``), released by ``clear()``.

    On CPU a fresh large tensor is a fresh ``mmap`` whose pages fault on first touch, and freeing it
    makes glibc trim the heap that training itself reuses; that costs more than the arithmetic done
    in it (measured: a sampled CNN step 2x slower). One buffer per dtype and device, as large as the
    largest tensor reduced, serves every reduction for as long as the monitor is open: the price is
    that much memory.
    """

    def __init__(self) -> None:
        self._buf: dict = {}
        self._views: dict = {}

    def like(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape, x.dtype, x.get_device())
        view = self._views.get(key)
        if view is not None:
            return view
        dev = (key[1], key[2])
        buf = self._buf.get(dev)
        if buf is None or buf.numel() < x.numel():
            buf = self._buf[dev] = torch.empty(x.numel(), dtype=x.dtype, device=x.device)
            self._views = {k: v for k, v in self._views.items() if (k[1], k[2]) != dev}
        if len(self._views) >= 256:      # shapes that vary per step (sequence lengths): stay bounded
            self._views.clear()
        view = self._views[key] = buf[: x.numel()].view(x.shape)
        return view

    def clear(self) -> None:
        self._buf.clear()
        self._views.clear()


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


@lru_cache(maxsize=1)
def catalog_kinds() -> frozenset:
    """Names of the activation catalog (regions are defined for these only)."""
    try:
        from impediments.activations import names
    except ImportError:  # pragma: no cover - the catalog is part of the package
        return frozenset()
    return frozenset(names())


@lru_cache(maxsize=None)
def region_kind(kind: str) -> str | None:
    """The catalog kind whose region cuts are counted for ``kind``: itself, ``"relu"`` for ReLU-like
    kinds outside the catalog (alive = pre-activation > 0), else ``None``."""
    if kind in catalog_kinds():
        return kind
    return "relu" if kind in RELU_FAMILY and "relu" in catalog_kinds() else None


def record_activation_input(bag: Bag, x: torch.Tensor, kind: str, dim: int, moments=None,
                            scratch: Scratch | None = None, full: bool = True) -> int:
    """Fold the pre-activation ``x`` into ``bag`` (``moments``: its moments if already computed,
    e.g. as the output of the Linear that fed it); returns the number of units (host int).

    Per unit (feature, or conv channel), the raw counts at the region cuts of ``kind`` are added
    (:func:`~impediments.activations.unit_regions.cut_counts`); they become per-unit region counts
    when read. On CPU a batch holding NaN/Inf is left out of the counts (it is in ``nonfinite``).
    ``full=False``: no min/max (the dense steps of ``watch(every=1)``: a window statistic, see
    :mod:`~impediments.monitor.schedule`); the counts are dense ("never active on any batch").
    """
    x = x.detach()
    rkind = region_kind(kind)
    out = _scratch_for(x, scratch) if rkind is not None or moments is None else None
    m = batch_moments(x, out=out, extremes=full) if moments is None else moments
    bag.add("input", m, "moments")
    units = x.shape[dim] if x.dim() else 1
    if x.dim() and rkind is not None and m.finite is not False:
        bag.add("cuts", cut_counts(x, rkind, dim, out=out), "sum")
        bag.count("unit_total", x.numel() // max(units, 1))
    bag.count("samples")
    return units


def record_activation_output(bag: Bag, out: torch.Tensor, hist_queue: list, scratch: Scratch | None = None):
    """Fold the output into ``bag``; returns its :class:`Batch` moments (``bad`` = non-finite count).

    The histogram subsample (copied now, before any later in-place op) is queued as ``(bag, values)``
    for :func:`flush_histograms`, which counts a whole forward pass in one go. (Full steps only: the
    dense steps of ``watch(every=1)`` skip activation outputs, see :mod:`~impediments.monitor.schedule`.)
    """
    m = _moments(out, scratch)
    bag.add("output", m, "moments")
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


def _scratch_for(x: torch.Tensor, scratch: Scratch | None):
    return scratch.like(x) if scratch is not None and x.is_floating_point() else None


def _moments(x: torch.Tensor, scratch: Scratch | None, extremes: bool = True):
    """:func:`batch_moments` with a scratch buffer taken from ``scratch`` only if the two-pass variance runs."""
    return batch_moments(x, out=scratch if x.is_floating_point() else None, extremes=extremes)


def record_layer_output(bag: Bag, out: torch.Tensor, scratch: Scratch | None = None, full: bool = True):
    """Moments of a Linear/Conv output (``full=False``: without min/max) and, in the backward pass, of
    its gradient (never min/max: only its variance is read, ``LayerOutputStats.grad_var``).

    The gradient is read by a pre-hook of the autograd node that produced ``out`` (what
    ``Tensor.register_hook`` installs too, without its Python bookkeeping)."""
    m = _moments(out, scratch, extremes=full)
    bag.add("output", m, "moments")
    bag.count("samples")
    if out.requires_grad:
        def grad(g):
            if g is not None:
                bag.add("grad", _moments(g, scratch, extremes=False), "moments")

        fn = out.grad_fn
        if fn is None:
            out.register_hook(grad)
        else:
            nr = out.output_nr
            fn.register_prehook(lambda grads: grad(grads[nr]))
    return m


def count_batchnorm_forward(bag: Bag, module: nn.Module) -> None:
    """Every training-mode forward of the model (host counters only): one more BatchNorm forward,
    and whether it normalised with running statistics (``eval()``/frozen inside a training model)."""
    bag.count("training_forwards")
    if not module.training and getattr(module, "running_mean", None) is not None:
        bag.count("running_forwards")


def record_batchnorm(bag: Bag, module: nn.Module, x: torch.Tensor, scratch: Scratch | None = None) -> None:
    """Sampled steps: batch mean/var per channel against running statistics (before this forward
    updates them).

    .. math:: d_\\mu = \\operatorname{mean}_c \\frac{|\\bar x_c - \\hat\\mu_c|}{\\sqrt{\\hat\\sigma^2_c + \\epsilon}},
              \\quad r_\\sigma = \\operatorname{mean}_c \\frac{s^2_c}{\\hat\\sigma^2_c}
    """
    rm, rv = getattr(module, "running_mean", None), getattr(module, "running_var", None)
    if not module.training or rm is None or rv is None or x.dim() < 2 or module.num_batches_tracked is None or x.shape[1] != rm.numel():
        return
    x = x.detach()
    dims = tuple(d for d in range(x.dim()) if d != 1)
    n = x.numel() // max(x.shape[1], 1)
    mean = x.sum(dims) / n                 # two passes: torch.var_mean over dims is ~10x slower on CPU
    d = scratch.like(x) if scratch is not None else torch.empty_like(x)
    torch.sub(x, mean.view(1, -1, *([1] * (x.dim() - 2))), out=d)
    var = d.mul_(d).sum(dims) / n
    dev = ((mean - rm).abs() / torch.sqrt(rv + module.eps)).mean()
    ratio = (var / rv.clamp_min(1e-30)).mean()
    bag.add("running_dev", torch.stack([dev, ratio]).double(), "sum")
    bag.count("compared")
