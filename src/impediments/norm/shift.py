r"""Variance shift: the Dropout/BatchNorm disharmony (Li, Chen, Hu & Yang 2018).

Dropout with keep probability p scales kept units by 1/p. For an input with
mean c and variance v it leaves the mean alone but changes the variance
between training and inference:

.. math:: \mathrm{Var}_\text{train} = \frac{c^2 + v}{p} - c^2, \qquad
          \mathrm{Var}_\text{test} = v

so for zero-mean input the ratio is 1/p (torch ``nn.Dropout(rate)`` has
``p = 1 − rate``). A BatchNorm right after dropout learns running statistics
of the training variance and then, at inference, sees a different one. The
fix is to put dropout after the last BatchNorm.
"""
from __future__ import annotations

import math
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
from impediments.norm.freeze import is_batch_norm
from impediments.norm.moments import ChannelMoments


def variance_shift(model: nn.Module, batches: Iterable, *, max_batches: int = 50,
                   forward: Forward | None = None) -> dict[str, float]:
    r"""Ratio of each BatchNorm's input variance in training mode to that in inference mode.

    The same batches run through ``model.eval()`` and then ``model.train()``;
    for every BatchNorm the per-channel variances of its input are pooled
    exactly over all batches, and the ratio is

    .. math:: r = \frac{\sum_c \mathrm{Var}_\text{train}[x_c]}{\sum_c \mathrm{Var}_\text{eval}[x_c]}

    (≈ 1/p for dropout with keep probability p right before the BatchNorm on
    zero-mean input; ≈ 1 when no dropout precedes it). The model is left
    exactly as it was: training flags and BatchNorm buffers are restored.

    Args:
        model: any ``nn.Module`` with BatchNorm layers (ours or torch's).
        batches: iterable of tensors or ``(inputs, targets)`` tuples.
        max_batches: use at most this many batches.
        forward: ``forward(model, batch)``, for batches of another form.

    Returns:
        ``{BatchNorm name: ratio}``; ``nan`` where the inference-mode variance is 0.

    Raises:
        TypeError: if ``model`` is not a module or ``batches`` not an iterable.
        ValueError: for an empty ``batches``, ``max_batches < 1`` or a model without BatchNorm.

    References:
        Li, Chen, Hu & Yang 2018, *Understanding the Disharmony between Dropout and
        Batch Normalization by Variance Shift*, https://arxiv.org/abs/1801.05134
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"variance_shift() expects a torch.nn.Module, got {type(model).__name__}")
    check_batches(batches, "variance_shift")
    check_max_batches(max_batches)
    forward = forward or default_forward
    bns = {name: m for name, m in model.named_modules() if is_batch_norm(m)}
    if not bns:
        raise ValueError("variance_shift(): the model has no BatchNorm layer")
    kept = list(take(batches, max_batches))
    if not kept:
        raise ValueError("variance_shift() got an empty iterable of batches; give at least one batch")
    variances = {}
    with preserved_buffers_and_modes(model, bns.values()), torch.no_grad():
        for mode in ("eval", "train"):   # eval first: train-mode passes change the running statistics
            moments = {name: ChannelMoments(m.num_features) for name, m in bns.items()}
            model.train(mode == "train")
            with recording_inputs(bns, moments):
                for batch in kept:
                    forward(model, batch)
            variances[mode] = {name: acc.compute()[1].sum() if acc.count > 1 else None
                               for name, acc in moments.items()}
    ratios = {}
    for name in bns:
        train, test = variances["train"][name], variances["eval"][name]
        if train is None or test is None:
            continue
        ratios[name] = float(train / test) if float(test) > 0 else math.nan
    return ratios
