"""Small helpers shared by the part-2 experiments (not experiments themselves)."""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn


def gaussian_init(model: nn.Module, std: float, seed: int) -> nn.Module:
    """Every Linear/Conv weight ~ N(0, std²), biases 0 (the BatchNorm paper's "small random Gaussian" init)."""
    from impediments.init import initialize

    initialize(model, "normal", std=std, bias=0.0, seed=seed)
    return model


def steps_to_reach(steps: Sequence[int], values: Sequence[float], target: float) -> float:
    """First evaluation step whose value is >= ``target``; ``inf`` if never reached."""
    for s, v in zip(steps, values):
        if v >= target:
            return float(s)
    return math.inf


@torch.no_grad()
def inputs_of(model: nn.Module, module_name: str, X: torch.Tensor, *, training: bool = False) -> torch.Tensor:
    """The input tensor of ``module_name`` on ``X`` (one no-grad forward, hook removed on exit).

    With ``training=True`` the forward runs on a deep copy in training mode, so
    BatchNorm normalizes with the statistics of ``X`` as a batch (what
    training computes) without touching the real model's running statistics.
    """
    net = copy.deepcopy(model).train() if training else model
    seen: list[torch.Tensor] = []
    handle = net.get_submodule(module_name).register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    was = net.training
    try:
        if not training:
            net.eval()
        net(X)
    finally:
        handle.remove()
        net.train(was)
    return seen[0].detach()
