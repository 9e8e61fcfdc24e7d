"""Symmetric units: Linear rows / Conv filters whose incoming weights and bias are identical.

Identical units receive identical gradients and stay identical forever (the symmetry-breaking
argument for random init; Goodfellow, Bengio & Courville 2016, §8.4). The check rounds each row to
1e-6 of the layer's largest weight and hashes it with two fixed random int64 vectors (exact integer
arithmetic modulo 2^64, so equal rows hash equal on any device; two distinct rows collide with
probability about 2^-40). Unlike ``torch.unique``, whose output size depends on the data, this never
waits for the device. It runs rarely (at
the 1st, 2nd, 3rd, 5th, 9th, 17th, ... full sampled step, see ``schedule``: log-spaced over the whole run), kept on the
device and turned into groups only when read.

The argument's premise is measured too: identical units receive identical gradients only when what
lies after them treats them alike. A row of a router (one unit per expert) or of a gate multiplying
distinct cells has identical incoming weights at a zero init on purpose, yet the loss sends each a
different gradient, so the symmetry breaks at the first step (as it does for an output layer's
units). At the first backward of the run (after the first snapshot: a later one shows whether the
rows survived the steps, which is evidence enough), a one-shot hook projects every hashed layer's
gradient rows on two fixed random vectors (``rows x 2`` floats, kept on the device); a group of
identical rows is kept only for the members whose projections agree to ``GRADIENT_AGREEMENT`` of the
layer's largest, or to the hash's own resolution of the weights (a smaller difference, float noise
around a gradient that is zero in exact arithmetic, cannot separate the rows at any learning rate up to 1). Without that backward (a forward-only check), the groups stand as hashed.
Rows whose gradient is exactly zero while other rows of the layer get one were not used by that batch
(a zero-init router's experts that top-k routing did not pick: AFMoE): the premise is not measured for
them, and they are not grouped from that backward; whether they stay identical once routed is what the
later snapshots show.
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
from impediments.monitor.hooks.portable import PortableHook
from impediments.monitor.probes.base import Probe
from impediments.monitor.probes.layers import LAYER_TYPES, unit_rows

RELATIVE_RESOLUTION = 1e-6
#: gradient rows of identical units agree to this fraction of the layer's largest projection (float32
#: reductions over identical values agree to ~1e-7 relative; distinct downstream paths differ at O(1))
GRADIENT_AGREEMENT = 1e-4
#: rows are hashed in blocks of about this many values, in three buffers made once per layer and reused by every
#: block (the quotient, its int64 rounding and a product: 5 MiB): a 50257 x 768 output layer hashed at once made
#: 0.6 GB of temporaries, and fresh temporaries per block (3.3 GB allocated and freed per snapshot of the
#: Llama-style 134M model) land in glibc's heap between small live objects once its mmap threshold has risen
HASH_BLOCK_VALUES = 2 ** 18

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


def _abs_max(t: torch.Tensor) -> torch.Tensor:
    """``t.abs().amax()`` without the full-size ``abs`` temporary (one ``aminmax`` pass; 0 when empty)."""
    if not t.numel():
        return t.new_zeros(())
    lo, hi = torch.aminmax(t)
    return torch.maximum(lo.abs(), hi.abs())


def _hash_blocks(w: torch.Tensor, scale: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(rows, 2)``: :math:`\\sum_i \\operatorname{round}(w_{ji} / s)\\, v_{ki} \\bmod 2^{64}` for each row ``j`` of the
    2-D ``w`` and ``k = 0, 1``, over blocks of :data:`HASH_BLOCK_VALUES` values (exact: integer sums), computed in
    buffers reused by every block (no allocation per block but the two row sums)."""
    rows, width = w.shape
    step = max(1, HASH_BLOCK_VALUES // max(1, width))
    if not rows:
        return torch.zeros((0, 2), dtype=torch.int64, device=w.device)
    size = min(step, rows) * width
    quotient = torch.empty(size, dtype=torch.result_type(w, scale), device=w.device)
    q = torch.empty(size, dtype=torch.int64, device=w.device)
    product = torch.empty(size, dtype=torch.int64, device=w.device)
    out = []
    for start in range(0, rows, step):
        block = w[start:start + step]
        shape = block.shape
        n = block.numel()
        f, qb, pb = quotient[:n].view(shape), q[:n].view(shape), product[:n].view(shape)
        torch.div(block, scale, out=f)
        torch.round(f, out=f)
        qb.copy_(f)                                   # as .long(): truncation of an integral value
        sums = [torch.mul(qb, v[k], out=pb).sum(1) for k in (0, 1)]
        out.append(torch.stack(sums, 1))
    return torch.cat(out)


def _row_hashes(weight, bias) -> torch.Tensor:
    """``(rows, 2)`` hashes of a sharded layer's whole rows (FSDP2/TP ``DTensor`` weight, see the module doc).

    A hash is linear in the columns, :math:`h_j = \\sum_i q_{ji} v_i \\bmod 2^{64}`, so each rank hashes its
    shard with the coefficients of its global columns, at its global rows, and one all-reduce sums the
    parts (:func:`impediments.monitor.sharding.global_rows`); the scale is the maximum over the mesh.
    Never gathers a weight: one max and one or two sums of ``rows x 2`` integers per layer.
    """
    w = sharding.local(weight.detach()).flatten(1)
    b = sharding.local(bias.detach()) if bias is not None else None
    scale = _abs_max(w)
    if b is not None and b.numel():
        scale = torch.maximum(scale, _abs_max(b))
    if sharding.is_sharded(weight):
        scale = sharding.all_reduce_over_mesh(scale.clone(), weight.device_mesh, dist.ReduceOp.MAX)
    scale = scale.clamp_min(1e-30) * RELATIVE_RESOLUTION          # as for an unsharded layer, in its dtype
    positions = math.prod(weight.shape[2:])                      # conv: kernel positions per input channel
    width = math.prod(weight.shape[1:]) + (bias is not None)
    v = _coefficients(width, w.device)
    first = sharding.column_offset(weight) * positions if sharding.is_sharded(weight) else 0
    part = _hash_blocks(w, scale, v[:, first:first + w.shape[1]])
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
        if not isinstance(m, LAYER_TYPES) or not included(name) or unit_rows(m, m.weight).shape[0] < 2:
            continue
        bias = getattr(m, "bias", None)
        if sharding.is_sharded(m.weight) or sharding.is_sharded(bias):
            into[name] = (_row_hashes(m.weight, bias), step)
            continue
        w = unit_rows(m, m.weight.detach())        # the bias is the last column of a row
        scale = _abs_max(w) if bias is None else torch.maximum(_abs_max(w), _abs_max(bias.detach()))
        scale = scale.clamp_min(1e-30) * RELATIVE_RESOLUTION
        v = _coefficients(w.shape[1] + (bias is not None), w.device)
        hashes = _hash_blocks(w, scale, v[:, :w.shape[1]])
        if bias is not None:
            hashes = hashes + torch.round(bias.detach() / scale).long()[:, None] * v[:, -1]
        into[name] = (hashes, step)


def _split_by_gradient(group: list[int], proj: list[list[float]], tol: float) -> list[list[int]]:
    """The members of ``group`` in sub-groups whose gradient projections agree within ``tol``."""
    out: list[list[int]] = []
    for i in sorted(group, key=lambda i: proj[i]):
        for g in out:
            if all(abs(a - b) <= tol for a, b in zip(proj[g[0]], proj[i])):
                g.append(i)
                break
        else:
            out.append([i])
    return [g for g in out if len(g) >= 2]


def groups(into: dict, gradients: dict | None = None) -> dict[str, SymmetryStats]:
    """Groups of size >= 2 per layer: units whose rows hash equal (syncs), split where the first backward
    after the snapshot gave them different gradients (``gradients``: name -> (projections, floor, step);
    differences below ``floor``, the hash's resolution of the weights, cannot separate the rows)."""
    out = {}
    for name, (hashes, step) in into.items():
        by: dict[tuple, list[int]] = {}
        for i, h in enumerate(hashes.cpu().tolist()):
            by.setdefault(tuple(h), []).append(i)
        found = [g for g in by.values() if len(g) >= 2]
        grad = (gradients or {}).get(name)
        if found and grad is not None and grad[2] == step:
            proj = grad[0].cpu().tolist()
            largest = max((abs(v) for row in proj for v in row), default=0.0)
            tol = max(GRADIENT_AGREEMENT * largest, float(grad[1]))
            found = [sub for g in found for sub in _split_by_gradient(g, proj, tol)
                     if not (largest > 0 and all(v == 0.0 for i in sub for v in proj[i]))]
        out[name] = SymmetryStats(units=len(hashes), groups=found, checked_at_step=step)
    return out


class SymmetryProbe(Probe):
    """Rows hashed on log-spaced full steps (see the module docstring); ``meta`` holds the groups once
    read (what a state dict carries), the device hashes stay in the probe until then."""

    key = "symmetry"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.hashes: dict = {}
        #: name -> (gradient rows projected on two fixed vectors, the resolution floor, the snapshot's step)
        self.gradients: dict = {}
        self._grad_handles: dict = {}

    def detach(self) -> None:
        for h in self._grad_handles.values():
            h.remove()
        self._grad_handles = {}

    def record(self, model: nn.Module, step: int) -> None:
        """On a full step: hash every layer's rows when due (the 1st, 2nd, 3rd, 5th, 9th ... full step),
        and project their gradient rows at the next backward (see the module docstring)."""
        if due(self.ctx.full_steps - 1):
            snapshot(model, self.ctx.included, step, self.hashes)
            if self.ctx.full_steps != 1:        # later snapshots see whether the rows survived steps: evidence enough
                return
            for name, m in model.named_modules():
                name = clean_name(name)
                entry = self.hashes.get(name)
                if (entry is None or entry[1] != step or not isinstance(m, LAYER_TYPES) or name in self._grad_handles
                        or sharding.is_sharded(m.weight) or not m.weight.requires_grad):
                    continue
                self._grad_handles[name] = m.weight.register_post_accumulate_grad_hook(
                    PortableHook(self._gradient_hook(name, step, m)))

    def _gradient_hook(self, name: str, step: int, module: nn.Module):
        def hook(param) -> None:
            handle = self._grad_handles.pop(name, None)
            if handle is not None:
                handle.remove()
            if param.grad is None:
                return
            rows = unit_rows(module, param.grad.detach()).float()
            v = _coefficients(rows.shape[1], rows.device).float() / 2 ** 30
            # below this, a difference moves the rows apart by less than the hash's resolution at any lr <= 1
            floor = RELATIVE_RESOLUTION * _abs_max(param.detach()).float() * v.abs().sum(1).amax()
            self.gradients[name] = (rows @ v.T, floor, step)
        return hook

    def groups(self) -> dict[str, SymmetryStats]:
        if self.hashes:
            return groups(self.hashes, self.gradients)
        return {n: SymmetryStats(**d) for n, d in self.meta.items()}

    def state_meta(self) -> dict:
        """The groups as plain data (reads the hashes: syncs)."""
        if self.hashes:
            self.meta = {n: dataclasses.asdict(s) for n, s in groups(self.hashes, self.gradients).items()}
        return self.meta

    def load_meta(self, meta: dict) -> None:
        self.meta, self.hashes, self.gradients = meta, {}, {}

    def stats(self, total, windows) -> dict:
        return {"symmetry": self.groups()}

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        if not mine:
            mine.update(other)
