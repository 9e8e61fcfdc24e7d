"""Fully connected networks with readable layer names.

Layer names follow ``hidden{k}.{linear,norm,act,dropout}`` and ``output``, so
reports say ``hidden3.act`` rather than ``7``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from impediments.models.layers import activation as make_activation
from impediments.models.layers import check_dropout, check_norm, check_positive, norm_layer


def hidden_block(
    in_features: int, out_features: int, *, activation_name: str, norm: str | None, norm_position: str,
    dropout: float, bias: bool,
) -> nn.Sequential:
    """``linear → [norm] → act → [norm] → [dropout]`` with named children."""
    parts: list[tuple[str, nn.Module]] = [("linear", nn.Linear(in_features, out_features, bias=bias))]
    if norm is not None and norm_position == "pre":
        parts.append(("norm", norm_layer(norm, out_features, 0)))
    parts.append(("act", make_activation(activation_name)))
    if norm is not None and norm_position == "post":
        parts.append(("norm", norm_layer(norm, out_features, 0)))
    if dropout > 0:
        parts.append(("dropout", nn.Dropout(dropout)))
    return nn.Sequential(OrderedDict(parts))


class ResidualBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016, *Identity Mappings*).

    .. math:: x_{l+1} = x_l + F(x_l), \\quad
              F = \\text{linear2} \\circ \\text{act} \\circ [\\text{norm2}] \\circ
                  \\text{linear1} \\circ \\text{act} \\circ [\\text{norm1}]

    The branch is ``self.branch``; its last layer is ``branch.linear2``.
    :meth:`enable_fixup` (called by ``impediments.init.fixup``) adds a scalar
    multiplier and scalar biases (Zhang, Dauphin & Ma 2019):

    .. math:: x_{l+1} = x_l + s \\cdot F'(x_l) + b_\\text{out},

    where ``F'`` is the branch with a scalar bias added before each activation and
    each linear layer. Without Fixup the block has no extra parameters.
    """

    fixup_scale: nn.Parameter | None
    fixup_biases: nn.ParameterDict | None

    def __init__(self, width: int, *, activation_name: str, norm: str | None, dropout: float, bias: bool) -> None:
        super().__init__()
        parts: list[tuple[str, nn.Module]] = []
        for k in (1, 2):
            if norm is not None:
                parts.append((f"norm{k}", norm_layer(norm, width, 0)))
            parts.append((f"act{k}", make_activation(activation_name)))
            if k == 2 and dropout > 0:
                parts.append(("dropout", nn.Dropout(dropout)))
            parts.append((f"linear{k}", nn.Linear(width, width, bias=bias)))
        self.branch = nn.Sequential(OrderedDict(parts))
        self.register_parameter("fixup_scale", None)
        self.fixup_biases = None

    def enable_fixup(self) -> None:
        """Add the Fixup scalar multiplier (init 1) and scalar biases (init 0); idempotent."""
        if self.fixup_scale is not None:
            return
        ref = self.branch.linear2.weight
        self.fixup_scale = nn.Parameter(torch.ones((), dtype=ref.dtype, device=ref.device))
        names = [n for n in self.branch._modules if n.startswith(("act", "linear"))] + ["out"]
        self.fixup_biases = nn.ParameterDict(
            {n: nn.Parameter(torch.zeros((), dtype=ref.dtype, device=ref.device)) for n in names})

    @property
    def fixup_enabled(self) -> bool:
        return self.fixup_scale is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixup_scale is None or self.fixup_biases is None:
            return x + self.branch(x)
        h = x
        for name, module in self.branch.named_children():
            if name in self.fixup_biases:
                h = h + self.fixup_biases[name]
            h = module(h)
        return x + h * self.fixup_scale + self.fixup_biases["out"]


def mlp(
    in_features: int, out_features: int, *, width: int, depth: int, activation: str = "relu",
    norm: str | None = None, norm_position: str = "pre", dropout: float = 0.0, residual: bool = False,
    bias: bool = True,
) -> nn.Sequential:
    """Build a multilayer perceptron.

    Args:
        in_features: input size (inputs with more axes are flattened).
        out_features: number of outputs (classes).
        width: units per hidden layer.
        depth: number of hidden layers, or of residual blocks when ``residual``.
        activation: activation name, e.g. ``"relu"``, ``"tanh"``, ``"sigmoid"``.
        norm: ``None``, ``"batch"``, ``"layer"`` or ``"group"``.
        norm_position: ``"pre"`` (before the activation) or ``"post"`` (after it).
        dropout: dropout rate after each hidden activation.
        residual: build ``stem → depth × ResidualBlock → [norm] → act → output``.
        bias: whether Linear layers have a bias.

    Returns:
        An ``nn.Sequential`` whose children are named ``flatten``,
        ``hidden1``..``hidden{depth}`` (or ``stem``, ``block1``.., ``head_act``)
        and ``output``.

    Raises:
        ValueError: for depth/width < 1, unknown activation or norm names.
    """
    check_positive(in_features=in_features, out_features=out_features, width=width, depth=depth)
    check_norm(norm, norm_position)
    check_dropout(dropout)
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    if residual:
        layers.append(("stem", nn.Linear(in_features, width, bias=bias)))
        for k in range(1, depth + 1):
            layers.append((f"block{k}", ResidualBlock(width, activation_name=activation, norm=norm,
                                                      dropout=dropout, bias=bias)))
        if norm is not None:
            layers.append(("head_norm", norm_layer(norm, width, 0)))
        layers.append(("head_act", make_activation(activation)))
    else:
        fan_in = in_features
        for k in range(1, depth + 1):
            layers.append((f"hidden{k}", hidden_block(fan_in, width, activation_name=activation, norm=norm,
                                                      norm_position=norm_position, dropout=dropout, bias=bias)))
            fan_in = width
    layers.append(("output", nn.Linear(width, out_features, bias=bias)))
    return nn.Sequential(OrderedDict(layers))

