"""Symmetric units: Linear rows / Conv filters whose incoming weights and bias are identical.

Identical units receive identical gradients and stay identical forever (the symmetry-breaking
argument for random init; Goodfellow, Bengio & Courville 2016, §8.4). The check is one
``torch.unique(dim=0)`` over rows rounded to 1e-6 of the layer's largest weight, run rarely (at
the 1st, 2nd, 3rd, 5th, 9th, 17th, ... sampled step: log-spaced over the whole run), kept on the
device and turned into groups only when read.
"""
from __future__ import annotations

import torch
from torch import nn

from impediments.monitor import schema as S
from impediments.monitor.collectors import LAYER_TYPES

RELATIVE_RESOLUTION = 1e-6


def due(k: int) -> bool:
    """``k`` (a count of sampled steps before this one) is 0 or a power of two."""
    return k == 0 or (k & (k - 1)) == 0


@torch.no_grad()
def snapshot(model: nn.Module, included, step: int, into: dict) -> None:
    """Store ``inverse`` labels of identical rows per layer in ``into`` (no sync)."""
    for name, m in model.named_modules():
        if not isinstance(m, LAYER_TYPES) or not included(name) or m.weight.shape[0] < 2:
            continue
        rows = m.weight.detach().flatten(1)
        if getattr(m, "bias", None) is not None:
            rows = torch.cat([rows, m.bias.detach()[:, None]], dim=1)
        scale = rows.abs().amax().clamp_min(1e-30) * RELATIVE_RESOLUTION
        _, inverse = torch.unique(torch.round(rows / scale), dim=0, return_inverse=True)
        into[name] = (inverse, step)


def groups(into: dict) -> dict[str, S.SymmetryStats]:
    """Groups of size >= 2 per layer (syncs)."""
    out = {}
    for name, (inverse, step) in into.items():
        labels = inverse.cpu().tolist()
        by: dict[int, list[int]] = {}
        for i, lab in enumerate(labels):
            by.setdefault(lab, []).append(i)
        out[name] = S.SymmetryStats(units=len(labels), groups=[g for g in by.values() if len(g) >= 2],
                                    checked_at_step=step)
    return out
