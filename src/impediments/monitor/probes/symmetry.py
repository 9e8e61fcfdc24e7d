"""Symmetric units: Linear rows / Conv filters whose incoming weights and bias are identical.

Identical units receive identical gradients and stay identical forever (the symmetry-breaking
argument for random init; Goodfellow, Bengio & Courville 2016, §8.4). The check rounds each row to
1e-6 of the layer's largest weight and hashes it with two fixed random int64 vectors (exact integer
arithmetic modulo 2^64, so equal rows hash equal on any device; two distinct rows collide with
probability about 2^-40). Unlike ``torch.unique``, whose output size depends on the data, this never
waits for the device. It runs rarely (at
the 1st, 2nd, 3rd, 5th, 9th, 17th, ... full sampled step, see ``schedule``: log-spaced over the whole run), kept on the
device and turned into groups only when read.
"""
from __future__ import annotations

import torch
from torch import nn

from impediments.monitor import schema as S
from impediments.monitor.collectors import LAYER_TYPES
from impediments.monitor.compiled import clean_name

RELATIVE_RESOLUTION = 1e-6


def due(k: int) -> bool:
    """``k`` (a count of sampled steps before this one) is 0 or a power of two."""
    return k == 0 or (k & (k - 1)) == 0


_COEFFICIENTS: dict = {}


def _coefficients(width: int, device) -> torch.Tensor:
    key = (width, str(device))
    v = _COEFFICIENTS.get(key)
    if v is None:
        g = torch.Generator().manual_seed(width)          # private: never touches the global RNG
        v = _COEFFICIENTS[key] = torch.randint(-(2 ** 30), 2 ** 30, (2, width), generator=g).to(device)
    return v


@torch.no_grad()
def snapshot(model: nn.Module, included, step: int, into: dict) -> None:
    """Store two hashes per row (Linear unit / Conv filter, bias included) per layer in ``into`` (no sync)."""
    for name, m in model.named_modules():
        name = clean_name(name)
        if not isinstance(m, LAYER_TYPES) or not included(name) or m.weight.shape[0] < 2:
            continue
        rows = m.weight.detach().flatten(1)
        if getattr(m, "bias", None) is not None:
            rows = torch.cat([rows, m.bias.detach()[:, None]], dim=1)
        scale = rows.abs().amax().clamp_min(1e-30) * RELATIVE_RESOLUTION
        q = torch.round(rows / scale).long()
        v = _coefficients(q.shape[1], q.device)
        into[name] = (torch.stack([(q * v[0]).sum(1), (q * v[1]).sum(1)], 1), step)


def groups(into: dict) -> dict[str, S.SymmetryStats]:
    """Groups of size >= 2 per layer: units whose rows hash equal (syncs)."""
    out = {}
    for name, (hashes, step) in into.items():
        by: dict[tuple, list[int]] = {}
        for i, h in enumerate(hashes.cpu().tolist()):
            by.setdefault(tuple(h), []).append(i)
        out[name] = S.SymmetryStats(units=len(hashes), groups=[g for g in by.values() if len(g) >= 2],
                                    checked_at_step=step)
    return out
