r"""Fast path: the same normalization, through torch's fused native kernels.

The explicit implementation in :mod:`impediments.norm.functional` (four equations and an
analytic backward in :mod:`impediments.norm.autograd`) is the *reference path*: it is what the
module teaches from. It runs about 25 separate ops where torch runs one fused kernel, so the
layers route the common cases through ``torch.native_batch_norm``, ``torch.native_layer_norm``
and ``torch.native_group_norm``, whose semantics are identical:

* BatchNorm training: batch mean and *biased* variance for normalizing; running buffers
  updated in place with the *unbiased* variance, running ← (1 − momentum)·running +
  momentum·batch (Ioffe & Szegedy 2015; torch's convention).
* BatchNorm inference (``eval()`` and frozen): running statistics, nothing updated.
* LayerNorm (Ba et al. 2016) and GroupNorm (Wu & He 2018): per-example statistics.

The fused kernels return the batch (or per-example) *mean* next to the output. The layers'
NaN/Inf check needs only a statistic that is non-finite exactly when the values it summarizes
contain NaN/Inf (barring overflow of already-huge values), and the mean is one, so the fast path
hands it over at no extra cost; the reference path hands over the variance.

Only float32/float64 inputs whose parameters and buffers share their dtype take the fast path;
half precision keeps the reference path, which computes in float32. ``tests/test_norm_fused.py``
holds the two paths equal, forward and backward, on random shapes; ``benchmarks/norm.py``
times both against torch's layers.
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor

_FAST_DTYPES = (torch.float32, torch.float64)
_STATE = {"reference": False}


@contextlib.contextmanager
def reference_path(enabled: bool = True):
    """Run every impediments norm layer through the explicit reference implementation inside the block.

    Examples:
        >>> with reference_path():
        ...     y = BatchNorm(3)(torch.randn(4, 3))   # the four equations, op by op
    """
    previous, _STATE["reference"] = _STATE["reference"], bool(enabled)
    try:
        yield
    finally:
        _STATE["reference"] = previous


def eligible(x: Tensor, *tensors: Tensor | None) -> bool:
    """Whether the fused path applies: not forced to the reference, float32/64, one dtype throughout."""
    dtype = x.dtype
    if _STATE["reference"] or dtype not in _FAST_DTYPES or x.numel() == 0:
        return False
    for t in tensors:
        if t is not None and t.dtype != dtype:
            return False
    return True


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None,
               bias: Tensor | None, training: bool, momentum: float, eps: float) -> tuple[Tensor, Tensor | None]:
    """Fused :func:`impediments.norm.functional.batch_norm_with_stats` (inputs already validated)."""
    y, mean, _ = torch.native_batch_norm(x, weight, bias, running_mean, running_var, training, momentum, eps)
    return y, (_no_grad(mean) if training else None)


def layer_norm(x: Tensor, normalized_shape: tuple[int, ...], weight: Tensor | None, bias: Tensor | None,
               eps: float) -> tuple[Tensor, Tensor]:
    """Fused :func:`impediments.norm.functional.layer_norm_with_stats` (inputs already validated)."""
    y, mean, _ = torch.native_layer_norm(x, normalized_shape, weight, bias, eps)
    return y, _no_grad(mean)


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None,
               eps: float) -> tuple[Tensor, Tensor]:
    """Fused :func:`impediments.norm.functional.group_norm_with_stats` (inputs already validated)."""
    n, c = x.shape[0], x.shape[1]
    y, mean, _ = torch.native_group_norm(x, weight, bias, n, c, x.numel() // (n * c), num_groups, eps)
    return y, _no_grad(mean)


def _no_grad(stat: Tensor) -> Tensor:
    """The statistic outside autograd: torch marks the batch and layer norm means non-differentiable
    already (no copy needed), the group norm mean differentiable (detached here)."""
    return stat.detach() if stat.requires_grad else stat
