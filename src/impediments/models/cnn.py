"""Small convolutional networks for MNIST-1D (``cnn1d``) and images (``cnn2d``).

``cnn1d`` with the defaults is the MNIST-1D reference CNN of Greydanus &
Kobak (3 conv1d layers of 25 channels, kernel 5, stride 2, then a linear
125 → 10 layer on length-40 inputs).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from impediments.models.layers import activation as make_activation
from impediments.models.layers import check_dropout, check_norm, check_positive, norm_layer


class ToShape(nn.Module):
    """Reshape flat inputs ``(N, prod(shape))`` to ``(N, *shape)``; pass others through."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == len(self.shape) + 1 and tuple(x.shape[1:]) == self.shape:
            return x
        if x.dim() == 2 and x.shape[1] == math.prod(self.shape):
            return x.reshape(x.shape[0], *self.shape)
        raise ValueError(f"expected input of shape (N, {', '.join(map(str, self.shape))}) or flat, got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def _conv_block(conv: nn.Module, channels: int, spatial: int, *, activation: str, norm: str | None,
                norm_position: str, dropout: float) -> nn.Sequential:
    parts: list[tuple[str, nn.Module]] = [("conv", conv)]
    if norm is not None and norm_position == "pre":
        parts.append(("norm", norm_layer(norm, channels, spatial)))
    parts.append(("act", make_activation(activation)))
    if norm is not None and norm_position == "post":
        parts.append(("norm", norm_layer(norm, channels, spatial)))
    if dropout > 0:
        parts.append(("dropout", (nn.Dropout1d if spatial == 1 else nn.Dropout2d)(dropout)))
    return nn.Sequential(OrderedDict(parts))


def _cnn(spatial: int, in_shape: tuple[int, ...], out_features: int, *, width: int, depth: int, activation: str,
         norm: str | None, norm_position: str, dropout: float, kernel_size: int, bias: bool) -> nn.Sequential:
    check_positive(out_features=out_features, width=width, depth=depth, kernel_size=kernel_size)
    check_norm(norm, norm_position)
    check_dropout(dropout)
    if len(in_shape) != spatial + 1 or min(in_shape) < 1:
        raise ValueError(f"in_shape must be (channels, {'length' if spatial == 1 else 'height, width'}), got {in_shape}")
    Conv = nn.Conv1d if spatial == 1 else nn.Conv2d
    layers: list[tuple[str, nn.Module]] = [("reshape", ToShape(tuple(in_shape)))]
    channels, size = in_shape[0], list(in_shape[1:])
    for k in range(1, depth + 1):
        conv = Conv(channels, width, kernel_size, stride=2, padding=kernel_size // 2, bias=bias)
        layers.append((f"conv{k}", _conv_block(conv, width, spatial, activation=activation, norm=norm,
                                               norm_position=norm_position, dropout=dropout)))
        channels = width
        size = [(s + 2 * (kernel_size // 2) - kernel_size) // 2 + 1 for s in size]
        if min(size) < 1:
            raise ValueError(f"depth={depth} is too deep for input {in_shape}: spatial size reaches {size} at conv{k}")
    layers.append(("flatten", nn.Flatten()))
    layers.append(("output", nn.Linear(channels * math.prod(size), out_features, bias=bias)))
    return nn.Sequential(OrderedDict(layers))


def cnn1d(in_shape: tuple[int, int] = (1, 40), out_features: int = 10, *, width: int = 25, depth: int = 3,
          activation: str = "relu", norm: str | None = None, norm_position: str = "pre", dropout: float = 0.0,
          kernel_size: int = 5, bias: bool = True) -> nn.Sequential:
    """1-D CNN: ``depth`` × (conv stride 2 → [norm] → act) → flatten → ``output``.

    Args:
        in_shape: ``(channels, length)``; flat ``(N, channels*length)`` inputs are reshaped.
        width: channels per conv layer. Other args as in :func:`impediments.models.mlp`.

    Raises:
        ValueError: for non-positive sizes, unknown names, or a depth that
            shrinks the sequence below length 1.
    """
    return _cnn(1, tuple(in_shape), out_features, width=width, depth=depth, activation=activation, norm=norm,
                norm_position=norm_position, dropout=dropout, kernel_size=kernel_size, bias=bias)


def cnn2d(in_shape: tuple[int, int, int] = (1, 28, 28), out_features: int = 10, *, width: int = 16, depth: int = 2,
          activation: str = "relu", norm: str | None = None, norm_position: str = "pre", dropout: float = 0.0,
          kernel_size: int = 3, bias: bool = True) -> nn.Sequential:
    """2-D CNN: ``depth`` × (conv 3×3 stride 2 → [norm] → act) → flatten → ``output``."""
    return _cnn(2, tuple(in_shape), out_features, width=width, depth=depth, activation=activation, norm=norm,
                norm_position=norm_position, dropout=dropout, kernel_size=kernel_size, bias=bias)
