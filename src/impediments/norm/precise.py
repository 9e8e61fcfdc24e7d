r"""PreciseBN: replace EMA running statistics with exact population statistics.

The exponential moving average lags behind the weights, because each term
was computed with older weights, and it is noisy; evaluation then uses
statistics that match no actual model (Wu & Johnson 2021, *Rethinking "Batch"
in BatchNorm*). PreciseBN holds the weights fixed, runs the model over many
batches, and sets each BatchNorm's buffers to the exact pooled statistics of
every value it saw:

.. math:: \hat\mu = \frac{1}{M}\sum_{b}\sum_{i\in b} y_i, \qquad
          \hat\sigma^2 = \frac{1}{M-1}\sum_{b}\sum_{i\in b} (y_i - \hat\mu)^2

accumulated per channel with an exact mergeable count/mean/M2 summary
(:class:`~impediments.norm.moments.ChannelMoments`).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import nn

from impediments.norm._batches import (
    Forward,
    check_batches,
    check_max_batches,
    default_forward,
    preserved_buffers_and_modes,
    recording_inputs,
    take,
)
from impediments.norm.freeze import is_batch_norm, is_frozen
from impediments.norm.moments import ChannelMoments


def recompute_bn_stats(model: nn.Module, batches: Iterable, *, max_batches: int = 200,
                       forward: Forward | None = None) -> dict[str, int]:
    """Set every BatchNorm's running statistics to exact population statistics (PreciseBN).

    During the pass each (non-frozen) BatchNorm is in training mode, so it
    normalizes with batch statistics, as during training; every other module
    keeps its mode (call ``model.eval()`` first to turn dropout off, or
    ``model.train()`` to keep it). Afterwards ``running_mean`` is the exact
    mean and ``running_var`` the exact unbiased variance of all values each
    layer saw. Parameters, ``num_batches_tracked``, ``momentum`` and all
    training flags are left as they were; frozen BatchNorms are skipped and
    stay bit-for-bit unchanged. Works for ours and torch's BatchNorm.

    Args:
        model: the model (any ``nn.Module`` containing BatchNorm layers).
        batches: iterable of batches: tensors or ``(inputs, targets)`` tuples
            (e.g. a training DataLoader).
        max_batches: stop after this many batches (fvcore's default is 200).
        forward: ``forward(model, batch)``, for batches of another form.

    Returns:
        ``{layer name: number of values per channel used}``.

    Raises:
        TypeError: if ``model`` is not a module or ``batches`` not an iterable.
        ValueError: if ``batches`` is empty, ``max_batches < 1``, or the model
            has no non-frozen BatchNorm with running statistics.

    References:
        Wu & Johnson 2021, https://arxiv.org/abs/2105.07576; fvcore ``update_bn_stats``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"recompute_bn_stats() expects a torch.nn.Module, got {type(model).__name__}")
    check_batches(batches, "recompute_bn_stats")
    check_max_batches(max_batches)
    forward = forward or default_forward
    bns = {name: m for name, m in model.named_modules()
           if is_batch_norm(m) and not is_frozen(m) and m.running_mean is not None}
    if not bns:
        raise ValueError("recompute_bn_stats(): the model has no BatchNorm layer with running statistics "
                         "to recompute (frozen layers are skipped)")
    moments = {name: ChannelMoments(m.num_features) for name, m in bns.items()}
    seen = 0
    with preserved_buffers_and_modes(model, bns.values()), recording_inputs(bns, moments), torch.no_grad():
        for bn in bns.values():
            bn.training = True
        for batch in take(batches, max_batches):
            forward(model, batch)
            seen += 1
    if seen == 0:
        raise ValueError("recompute_bn_stats() got an empty iterable of batches; give at least one batch")
    with torch.no_grad():
        for name, bn in bns.items():
            if moments[name].count < 2:
                warnings.warn(f"recompute_bn_stats(): BatchNorm {name!r} saw {moments[name].count} values per "
                              "channel; its running statistics were left unchanged", RuntimeWarning, stacklevel=2)
                continue
            mean, var = moments[name].compute()
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
    return {name: acc.count for name, acc in moments.items()}
