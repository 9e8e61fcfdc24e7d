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

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from impediments.monitor import sharding
from impediments.monitor.hooks.compiled import clean_name
from impediments.monitor.probes.base import Probe
from impediments.monitor.probes.layers import LAYER_TYPES

RELATIVE_RESOLUTION = 1e-6


@dataclass
class SymmetryStats:
    """Groups (size >= 2) of units whose incoming weights and bias are identical."""

    units: int
    groups: list[list[int]]
    checked_at_step: int


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


def _row_hashes(weight, bias) -> torch.Tensor:
    """``(rows, 2)`` hashes of a sharded layer's whole rows (FSDP2/TP ``DTensor`` weight, see the module doc).

    A hash is linear in the columns, :math:`h_j = \\sum_i q_{ji} v_i \\bmod 2^{64}`, so each rank hashes its
    shard with the coefficients of its global columns, at its global rows, and one all-reduce sums the
    parts (:func:`impediments.monitor.sharding.global_rows`); the scale is the maximum over the mesh.
    Never gathers a weight: one max and one or two sums of ``rows x 2`` integers per layer.
    """
    w = sharding.local(weight.detach()).flatten(1)
    b = sharding.local(bias.detach()) if bias is not None else None
    scale = w.abs().amax() if w.numel() else w.new_zeros(())
    if b is not None and b.numel():
        scale = torch.maximum(scale, b.abs().amax())
    if sharding.is_sharded(weight):
        scale = sharding.all_reduce_over_mesh(scale.clone(), weight.device_mesh, dist.ReduceOp.MAX)
    scale = scale.clamp_min(1e-30) * RELATIVE_RESOLUTION          # as for an unsharded layer, in its dtype
    positions = math.prod(weight.shape[2:])                      # conv: kernel positions per input channel
    width = math.prod(weight.shape[1:]) + (bias is not None)
    v = _coefficients(width, w.device)
    first = sharding.column_offset(weight) * positions if sharding.is_sharded(weight) else 0
    q = torch.round(w / scale).long()
    part = torch.stack([(q * v[0, first:first + q.shape[1]]).sum(1), (q * v[1, first:first + q.shape[1]]).sum(1)], 1)
    hashes = sharding.global_rows(weight, part) if sharding.is_sharded(weight) else part
    if b is not None:
        qb = torch.round(b / scale).long()[:, None] * v[:, -1]
        hashes = hashes + (sharding.global_rows(bias, qb) if sharding.is_sharded(bias) else qb)
    return hashes


@torch.no_grad()
def snapshot(model: nn.Module, included, step: int, into: dict) -> None:
    """Store two hashes per row (Linear unit / Conv filter, bias included) per layer in ``into`` (no sync
    for unsharded layers; for sharded ones, see :func:`_row_hashes`)."""
    for name, m in model.named_modules():
        name = clean_name(name)
        if not isinstance(m, LAYER_TYPES) or not included(name) or m.weight.shape[0] < 2:
            continue
        bias = getattr(m, "bias", None)
        if sharding.is_sharded(m.weight) or sharding.is_sharded(bias):
            into[name] = (_row_hashes(m.weight, bias), step)
            continue
        rows = m.weight.detach().flatten(1)
        if getattr(m, "bias", None) is not None:
            rows = torch.cat([rows, m.bias.detach()[:, None]], dim=1)
        scale = rows.abs().amax().clamp_min(1e-30) * RELATIVE_RESOLUTION
        q = torch.round(rows / scale).long()
        v = _coefficients(q.shape[1], q.device)
        into[name] = (torch.stack([(q * v[0]).sum(1), (q * v[1]).sum(1)], 1), step)


def groups(into: dict) -> dict[str, SymmetryStats]:
    """Groups of size >= 2 per layer: units whose rows hash equal (syncs)."""
    out = {}
    for name, (hashes, step) in into.items():
        by: dict[tuple, list[int]] = {}
        for i, h in enumerate(hashes.cpu().tolist()):
            by.setdefault(tuple(h), []).append(i)
        out[name] = SymmetryStats(units=len(hashes), groups=[g for g in by.values() if len(g) >= 2],
                                    checked_at_step=step)
    return out


class SymmetryProbe(Probe):
    """Rows hashed on log-spaced full steps (see the module docstring); ``meta`` holds the groups once
    read (what a state dict carries), the device hashes stay in the probe until then."""

    key = "symmetry"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.hashes: dict = {}

    def record(self, model: nn.Module, step: int) -> None:
        """On a full step: hash every layer's rows when due (the 1st, 2nd, 3rd, 5th, 9th ... full step)."""
        if due(self.ctx.full_steps - 1):
            snapshot(model, self.ctx.included, step, self.hashes)

    def groups(self) -> dict[str, SymmetryStats]:
        if self.hashes:
            return groups(self.hashes)
        return {n: SymmetryStats(**d) for n, d in self.meta.items()}

    def state_meta(self) -> dict:
        """The groups as plain data (reads the hashes: syncs)."""
        if self.hashes:
            self.meta = {n: dataclasses.asdict(s) for n, s in groups(self.hashes).items()}
        return self.meta

    def load_meta(self, meta: dict) -> None:
        self.meta, self.hashes = meta, {}

    def stats(self, total, windows) -> dict:
        return {"symmetry": self.groups()}

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        if not mine:
            mine.update(other)
