"""Remedies for ``output_head_mismatch`` and ``unscaled_targets``: the output activation matched to the task.

Each reads what the doctor measured (the finding's ``mismatch``), and applies only where the head is a module
it can swap: the model's last leaf module. A head written as a function in ``forward()`` is left to the user.
"""
from __future__ import annotations

import torch
from torch import nn

from impediments.fix.pieces import Pieces
from impediments.fix.remedies.base import Change, Context, NotApplicable, probe_model, with_model
from impediments.fix.surgery import replace_module

#: what replaces the last module, per measured mismatch: a sigmoid gives one unit a probability; the others
#: drop a bounded activation so the output can reach the targets (logits for a loss that applies its own)
_REPLACEMENT = {"softmax_over_one_unit": (nn.Sigmoid, "nn.Sigmoid()", "one unit: a probability"),
                "targets_outside_output_range": (nn.Identity, "nn.Identity()", "a linear output reaches every target"),
                "relu_on_logits": (nn.Identity, "nn.Identity()", "the loss takes the logits as they are")}
_HEADS = (nn.Softmax, nn.LogSoftmax, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.ReLU, nn.Softplus, nn.Hardsigmoid)


def matched_output_activation(pieces: Pieces, ctx: Context) -> Change:
    """The model's last activation matched to the task (sigmoid for a one-unit softmax, none for a bounded head).

    A softmax over one unit becomes a sigmoid; a bounded head on targets outside its range, or a ReLU on logits,
    is removed (Goodfellow et al. 2016, sec. 6.2.2).
    """
    mismatches = [e.get("mismatch") for e in ctx.evidence("output_head_mismatch")]
    kind = next((m for m in mismatches if m in _REPLACEMENT), None)
    if kind is None:
        raise NotApplicable(f"no measured mismatch this remedy treats (saw {', '.join(map(str, mismatches)) or 'none'};"
                            f" treats {', '.join(_REPLACEMENT)})")
    probe = probe_model(pieces, ctx.seed)
    leaves = [(n, m) for n, m in probe.named_modules() if n and not list(m.children())]
    if not leaves or not isinstance(leaves[-1][1], _HEADS):
        raise NotApplicable("the model's last module is not an activation module (an activation applied in "
                            "forward() or in the loss has to be changed by hand)")
    name = leaves[-1][0]
    new, text, why = _REPLACEMENT[kind]

    def swap(model) -> None:
        replace_module(model, name, new())

    return Change(with_model(pieces, swap), f"imp.fix.replace_module(net, {name!r}, {text})   # {why}")


class Destandardize(nn.Module):
    """``y = x * std + mean`` with fixed (non-trainable) buffers: the network predicts standardized targets."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


def destandardized_output(pieces: Pieces, ctx: Context) -> Change:
    """The network predicts standardized targets, mapped back by a fixed x * std + mean at its output.

    Equivalent to training on (y - mean) / std under Adam, while the loss and the targets keep their units, so
    the validation loss stays comparable with the baseline's (LeCun et al. 1998, sec. 4.3).
    """
    y = pieces.y
    if not y.dtype.is_floating_point or y.numel() < 2:
        raise NotApplicable(f"the targets are not a float regression target (dtype {y.dtype})")
    mean = y.double().mean(0).float()
    std = y.double().std(0).clamp_min(1e-12).float()

    def wrap(model):
        return nn.Sequential(model, Destandardize(mean, std))

    return Change(with_model(pieces, wrap),
                  "mean, std = y_train.mean(0), y_train.std(0)\nnet = nn.Sequential(net, Destandardize(mean, std))"
                  "   # or train on (y - mean) / std and map predictions back")
