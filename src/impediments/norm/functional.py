r"""Functional core of the normalization layers: the math, no state.

Every normalization layer computes the same four equations (Ioffe & Szegedy
2015, *Batch Normalization*), differing only in which axes the statistics
are taken over:

.. math::

    1.\ \mu = \frac{1}{m}\sum_i y_i \qquad
    2.\ \sigma^2 = \frac{1}{m}\sum_i (y_i - \mu)^2 \qquad
    3.\ \hat y_i = \frac{y_i - \mu}{\sqrt{\sigma^2 + \epsilon}} \qquad
    4.\ z_i = \gamma \hat y_i + \beta

* **BatchNorm** — per channel, over the batch and spatial axes
  (``m = N·∏spatial``); in inference mode μ, σ² are the running
  (population) statistics instead.
* **LayerNorm** (Ba, Kiros & Hinton 2016) — per example, over the trailing
  ``normalized_shape`` axes.
* **GroupNorm** (Wu & He 2018) — per example and group of ``C/G`` channels,
  over those channels and the spatial axes. InstanceNorm is ``G = C``.

Each normalization is a :class:`torch.autograd.Function` in
:mod:`impediments.norm.autograd`, whose analytic backward sits next to its forward.

Momentum convention: running ← (1 − momentum)·running + momentum·batch
(PyTorch). Keras writes running ← momentum·running + (1 − momentum)·batch,
so ``torch_momentum = 1 − keras_momentum``: torch's default 0.1 is Keras's
0.9, and Keras's default 0.99 is torch's 0.01 (see :func:`from_keras_momentum`).
``momentum=None`` means the cumulative average 1/num_batches_tracked.
"""
from __future__ import annotations

import torch
from torch import Tensor

from impediments.norm import fused
from impediments.norm.autograd import BatchNormFn, RowNormFn

__all__ = ["batch_norm", "from_keras_momentum", "group_norm", "instance_norm", "layer_norm", "to_keras_momentum"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def from_keras_momentum(keras_momentum: float) -> float:
    """Torch momentum equal to a Keras ``BatchNormalization(momentum=...)``: ``1 − keras_momentum``."""
    _check_unit_interval("keras_momentum", keras_momentum)
    return 1.0 - keras_momentum


def to_keras_momentum(momentum: float) -> float:
    """Keras momentum equal to a torch momentum: ``1 − momentum`` (torch 0.1 → Keras 0.9)."""
    _check_unit_interval("momentum", momentum)
    return 1.0 - momentum


def _check_unit_interval(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _compute_dtype(x: Tensor) -> Tensor:
    return x.float() if x.dtype in _LOW_PRECISION else x


def check_batch_norm_input(x: Tensor, num_features: int | None, training: bool) -> None:
    """Raise ``ValueError`` for a wrong rank, channel count, or one value per channel in training."""
    if x.dim() < 2:
        raise ValueError(f"BatchNorm expects input of shape (N, C) or (N, C, ...), got shape {tuple(x.shape)}")
    if num_features is not None and x.shape[1] != num_features:
        raise ValueError(f"BatchNorm expected {num_features} channels (input.shape[1]), got input of shape "
                         f"{tuple(x.shape)} with {x.shape[1]} channels")
    if training and x.numel() // max(x.shape[1], 1) <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}; "
                         "use a batch of at least 2 examples, or call .eval() for single-example inference")


def batch_norm_with_stats(
    x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None,
    bias: Tensor | None, training: bool, momentum: float, eps: float, check: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """:func:`batch_norm` that also returns per-channel batch statistics (``None`` in inference mode).

    The statistics are the biased batch variance on the reference path and the batch mean on the
    fused path (torch's kernel, taken where :func:`impediments.norm.fused.eligible`): either is
    non-finite exactly when the input holds NaN/Inf (barring overflow), which is what the layers'
    NaN/Inf check reads. ``check=False`` skips validating the arguments: the BatchNorm module has
    validated them already, before it touched its buffers.
    """
    if check:
        check_batch_norm_input(x, weight.shape[0] if weight is not None else None, training)
        if not training and (running_mean is None or running_var is None):
            raise ValueError("batch_norm with training=False needs running_mean and running_var; "
                             "pass training=True to normalize with batch statistics")
        if momentum is None and training and running_mean is not None:
            raise ValueError("functional batch_norm needs a float momentum; the BatchNorm module turns "
                             "momentum=None into the cumulative factor 1/num_batches_tracked")
    if fused.eligible(x, running_mean, running_var, weight, bias):
        return fused.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    if not training:
        scale = torch.rsqrt(running_var + eps)
        scale = scale * weight if weight is not None else scale
        shift = -running_mean * scale
        shift = shift + bias if bias is not None else shift
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x * scale.view(shape)).add_(shift.view(shape)).to(x.dtype), None
    xc = _compute_dtype(x)
    x3 = xc if x.dim() <= 3 else xc.reshape(x.shape[0], x.shape[1], -1)
    stats: list = []
    y = BatchNormFn.apply(x3, weight, bias, eps, stats)
    mean, var = stats[0]
    if running_mean is not None and running_var is not None:
        m = x3.numel() // x3.shape[1]
        with torch.no_grad():   # running ← (1 − momentum)·running + momentum·batch
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * (m / (m - 1))).to(running_var.dtype), momentum)   # unbiased m/(m−1)
    y = y if y.shape == x.shape else y.view(x.shape)
    return (y if y.dtype == x.dtype else y.to(x.dtype)), var


def batch_norm(
    x: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
    bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
) -> Tensor:
    r"""Batch Normalization (Ioffe & Szegedy 2015) on ``(N, C)`` or ``(N, C, *)`` input.

    Training mode normalizes with the batch mean and *biased* variance over
    every axis except C, and, when running buffers are given, updates them in
    place with the *unbiased* variance:

    .. math::

        \hat\mu \leftarrow (1-\text{momentum})\hat\mu + \text{momentum}\,\mu_B, \qquad
        \hat\sigma^2 \leftarrow (1-\text{momentum})\hat\sigma^2 + \text{momentum}\,\tfrac{m}{m-1}\sigma_B^2

    Inference mode (``training=False``) uses the running (population)
    statistics: :math:`z = \gamma (y-\hat\mu)/\sqrt{\hat\sigma^2+\epsilon} + \beta`.

    Args:
        x: input of shape ``(N, C)`` or ``(N, C, *)``.
        running_mean, running_var: ``(C,)`` buffers, or ``None`` (training only).
        weight, bias: γ and β of shape ``(C,)``, or ``None``.
        training: use batch statistics (and update the buffers).
        momentum: torch convention, see the module docstring. The module
            turns ``momentum=None`` into the cumulative factor 1/num_batches_tracked.
        eps: ε added to the variance.

    Returns:
        The normalized tensor, same shape and dtype as ``x``.

    Raises:
        ValueError: for rank < 2, a channel count that differs from ``weight``,
            one value per channel in training, or inference without buffers.
    """
    return batch_norm_with_stats(x, running_mean, running_var, weight, bias, training, momentum, eps)[0]


def layer_norm_with_stats(x: Tensor, normalized_shape: tuple[int, ...], weight: Tensor | None,
                          bias: Tensor | None, eps: float) -> tuple[Tensor, Tensor]:
    """:func:`layer_norm` that also returns per-example statistics (see :func:`batch_norm_with_stats`)."""
    k = len(normalized_shape)
    if k == 0 or x.dim() < k or x.shape[-k:] != tuple(normalized_shape):
        raise ValueError(f"LayerNorm expects input whose trailing dimensions are {tuple(normalized_shape)} "
                         f"(non-empty), got input of shape {tuple(x.shape)}")
    if fused.eligible(x, weight, bias):
        return fused.layer_norm(x, tuple(normalized_shape), weight, bias, eps)
    xc = _compute_dtype(x)
    stats: list = []
    y = RowNormFn.apply(xc, weight, bias, eps, tuple(range(-k, 0)), stats)
    var = stats[0]
    return (y if y.dtype == x.dtype else y.to(x.dtype)), var


def layer_norm(x: Tensor, normalized_shape: int | tuple[int, ...], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    r"""Layer Normalization (Ba, Kiros & Hinton 2016): the four equations per example.

    Statistics are taken over the trailing ``normalized_shape`` axes of each
    example, identically in training and inference.

    Raises:
        ValueError: if the trailing dimensions of ``x`` are not ``normalized_shape``.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    return layer_norm_with_stats(x, shape, weight, bias, eps)[0]


def group_norm_with_stats(x: Tensor, num_groups: int, weight: Tensor | None, bias: Tensor | None,
                          eps: float) -> tuple[Tensor, Tensor]:
    """:func:`group_norm` that also returns per-(example, group) statistics (see :func:`batch_norm_with_stats`)."""
    if x.dim() < 2:
        raise ValueError(f"GroupNorm expects input of shape (N, C, *), got shape {tuple(x.shape)}")
    n, c = x.shape[0], x.shape[1]
    if c % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide the channel count C={c} (input shape {tuple(x.shape)})")
    if fused.eligible(x, weight, bias):
        return fused.group_norm(x, num_groups, weight, bias, eps)
    xc = _compute_dtype(x)
    x4 = xc.reshape(n, num_groups, c // num_groups, -1)
    per_group = lambda t: None if t is None else t.view(num_groups, c // num_groups, 1)  # noqa: E731
    stats: list = []
    y = RowNormFn.apply(x4, per_group(weight), per_group(bias), eps, (-2, -1), stats)
    var = stats[0]
    y = y.view(x.shape)
    return (y if y.dtype == x.dtype else y.to(x.dtype)), var


def group_norm(x: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    r"""Group Normalization (Wu & He 2018) on ``(N, C, *)`` input.

    Channels are split into ``num_groups`` groups of ``C/G``; the four
    equations run per example and group, over the group's channels and all
    spatial axes. γ and β are per channel. ``num_groups = C`` is
    InstanceNorm (Ulyanov et al. 2016); ``num_groups = 1`` is LayerNorm over (C, *).

    Raises:
        ValueError: for rank < 2 or ``num_groups`` that does not divide C.
    """
    return group_norm_with_stats(x, num_groups, weight, bias, eps)[0]


def instance_norm(x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Instance Normalization (Ulyanov et al. 2016): :func:`group_norm` with one group per channel."""
    if x.dim() < 3:
        raise ValueError(f"InstanceNorm expects input of shape (N, C, L, ...) with a spatial axis, "
                         f"got shape {tuple(x.shape)}")
    return group_norm(x, x.shape[1], weight, bias, eps)
