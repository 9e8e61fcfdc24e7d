"""Fixup initialization for residual networks without normalization (Zhang, Dauphin & Ma 2019).

For ``L`` residual branches of ``m`` weight layers each:

1. zero the last layer of every branch and the classifier (so every branch, and the
   logits, start at exactly 0 and the network starts as the identity on its stem);
2. initialise the other branch layers with He init scaled by :math:`L^{-1/(2m-2)}`;
3. add a scalar multiplier (init 1) and scalar biases (init 0) to every branch.

With He init and no normalization, each block adds its branch's variance, so the
output variance grows with depth; after Fixup it does not grow at init.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from impediments.init.initialize import make_generator
from impediments.init.variance_scaling import he_normal
from impediments.models.mlp import ResidualBlock


class FixupSummary(NamedTuple):
    """What :func:`fixup` did: branches ``L``, layers per branch ``m``, the branch scale, and the classifier."""

    blocks: int
    layers_per_branch: int
    branch_scale: float
    classifier: str


def _classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last Linear layer outside every residual block."""
    inside = {id(m) for b in model.modules() if isinstance(b, ResidualBlock) for m in b.modules()}
    outside = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and id(m) not in inside]
    if not outside:
        raise ValueError("fixup needs a classifier (a Linear layer after the residual blocks)")
    return outside[-1]


def fixup(model: nn.Module, *, seed: int | None = None, generator: torch.Generator | None = None) -> FixupSummary:
    """Fixup-initialise a residual model built by :func:`impediments.models.mlp` (``residual=True``).

    Args:
        model: model containing :class:`~impediments.models.ResidualBlock` modules.
        seed, generator: randomness of the He init of the non-final branch layers and the stem.

    Returns:
        :class:`FixupSummary`.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: the model has no residual blocks (or no classifier).

    References:
        Zhang, Dauphin & Ma 2019, *Fixup Initialization: Residual Learning Without Normalization*.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fixup needs an nn.Module, got {type(model).__name__}")
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    if not blocks:
        raise ValueError(f"fixup needs residual blocks (impediments.models.ResidualBlock) but "
                         f"{type(model).__name__} has none; build it with mlp(..., residual=True)")
    gen = make_generator(seed, generator)
    name, head = _classifier(model)
    in_blocks = {id(m) for b in blocks for m in b.modules()}
    m = len([x for x in blocks[0].branch if isinstance(x, nn.Linear)])
    scale = len(blocks) ** (-1.0 / (2 * m - 2)) if m > 1 else 1.0
    with torch.no_grad():
        for layer in model.modules():  # stem and any other layer outside the branches: plain He init
            if isinstance(layer, nn.Linear) and id(layer) not in in_blocks and layer is not head:
                he_normal(layer.weight, generator=gen)
                if layer.bias is not None:
                    layer.bias.zero_()
        for block in blocks:
            linears = [x for x in block.branch if isinstance(x, nn.Linear)]
            for layer in linears[:-1]:
                he_normal(layer.weight, generator=gen).mul_(scale)
            linears[-1].weight.zero_()
            for layer in linears:
                if layer.bias is not None:
                    layer.bias.zero_()
            block.enable_fixup()
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
    return FixupSummary(len(blocks), m, scale, name)


__all__ = ["FixupSummary", "fixup"]
