r"""Fold inference-mode BatchNorm into the Linear or Conv layer before it.

In inference mode BatchNorm is an affine map per channel, so after
``y = W x + b`` it can be merged into the weights:

.. math:: \mathrm{BN}(y) = \underbrace{\frac{\gamma}{\sqrt{\mathrm{Var}+\epsilon}}}_{s}\,y
          + \Big(\beta - \frac{\gamma\,E[y]}{\sqrt{\mathrm{Var}+\epsilon}}\Big)
          \;\Rightarrow\; W' = s\,W,\quad b' = s\,(b - E[y]) + \beta

(per output channel; E[y] and Var are the running statistics). This removes
the BatchNorm's cost at inference (Jacob et al. 2018, *Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference*).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from impediments.norm.freeze import freeze, is_batch_norm

_FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _is_foldable_bn(module: nn.Module, out_channels: int) -> bool:
    return (is_batch_norm(module) and module.running_mean is not None and module.running_var is not None
            and module.num_features == out_channels)


def _out_channels(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``[(linear/conv name, batchnorm name), ...]`` that :func:`fold_bn` merges.

    A pair is two consecutive children of an ``nn.Sequential``: a Linear or
    Conv1d/2d/3d followed by a BatchNorm (ours or torch's) with running
    statistics and as many channels as the layer has outputs. Transposed
    convolutions, BatchNorm *before* a layer, and BatchNorm after an
    activation are not folded.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"foldable_pairs() expects a torch.nn.Module, got {type(model).__name__}")
    pairs = []
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name_a, a), (name_b, b) in zip(children, children[1:]):
            if isinstance(a, _FOLDABLE) and _is_foldable_bn(b, _out_channels(a)):
                join = (lambda n: f"{prefix}.{n}") if prefix else (lambda n: n)
                pairs.append((join(name_a), join(name_b)))
    return pairs


@torch.no_grad()
def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    w = layer.weight.to(torch.float64)
    var, mean = bn.running_var.to(torch.float64), bn.running_mean.to(torch.float64)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(torch.float64)
    bias = layer.bias.to(torch.float64) if layer.bias is not None else torch.zeros_like(mean)
    new_bias = (bias - mean) * scale
    if bn.bias is not None:
        new_bias = new_bias + bn.bias.to(torch.float64)
    layer.weight.copy_(w * scale.view(-1, *([1] * (w.dim() - 1))))
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias.to(layer.weight.dtype))
    else:
        layer.bias.copy_(new_bias)


def fold_bn(model: nn.Module) -> nn.Module:
    """An inference-only copy of ``model`` with each BatchNorm folded into the layer before it.

    See :func:`foldable_pairs` for which BatchNorms are folded; each is
    replaced by ``nn.Identity``. The copy's outputs equal the original's in
    eval mode (up to rounding; the folding is done in float64). The copy is
    in eval mode and :func:`~impediments.norm.freeze`-frozen: its
    parameters are not trainable and any BatchNorm left unfolded stays in
    inference mode even after ``.train()``. The original is not changed.

    Args:
        model: any ``nn.Module`` (ours or torch's BatchNorm).

    Returns:
        The folded copy.

    Raises:
        TypeError: if ``model`` is not an ``nn.Module``.
    """
    pairs = foldable_pairs(model)
    folded = copy.deepcopy(model)
    modules = dict(folded.named_modules())
    for layer_name, bn_name in pairs:
        _fold_into(modules[layer_name], modules[bn_name])
        parent_name, _, child = bn_name.rpartition(".")
        setattr(modules[parent_name] if parent_name else folded, child, nn.Identity())
    return freeze(folded.eval())
