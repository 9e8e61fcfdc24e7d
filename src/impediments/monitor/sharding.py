"""Sharded parameters and outputs (FSDP2, tensor parallelism): what a rank holds, and how its sums merge.

Under ``torch.distributed.fsdp.fully_shard`` (FSDP2) and ``torch.distributed.tensor.parallel``
(tensor parallelism, TP) parameters are ``DTensor``\\ s: each rank holds a local shard
(``DTensor.to_local()``), and the placements say, per mesh dimension, whether the tensor is split
(``Shard(d)``), copied (``Replicate()``) or a pending sum (``Partial()``). Every statistic the monitor
takes of a parameter is a sum over its elements (of squares for a norm; of signs per row for the sign
agreement; of integer products per row for the symmetry hashes), so it is computed on the local shard
and merged exactly:

.. math:: S(w) = \\frac{1}{r} \\sum_{\\text{ranks } k \\in \\text{mesh}} S(w_k), \\qquad
          r = \\prod_{d:\\ \\text{placement}_d = \\text{Replicate}} |\\text{mesh}_d|

(each shard counted once; a replicated copy ``r`` times, hence the division). One all-reduce of the
vector of such sums per mesh and sampled step gives every rank the same global value, so the
per-rank merge of :func:`impediments.monitor.distributed.sync` (which treats ranks as DDP replicas:
sums of equal rows divided by equal counts) stays exact. A full parameter is never gathered. A
``Partial`` gradient is first reduced to ``Replicate`` (an all-reduce of that gradient's shard, what the
optimizer's own step would do).

Tensor parallelism also splits activations: a Colwise-sharded Linear (weight ``Shard(0)``) writes
units ``[offset, offset + local)`` of the layer's output on each rank (:func:`unit_shard`), and the
outputs of Rowwise layers, like everything outside the sharded pairs, are the same on every rank of
the TP group (:func:`tensor_parallel_replica`).

References:
    Zhao et al. (2023), PyTorch FSDP: experiences on scaling fully sharded data parallel; Shoeybi et
    al. (2019), Megatron-LM: training multi-billion parameter language models using model parallelism.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

try:
    from torch.distributed.tensor import DTensor, Replicate
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
except ImportError:  # pragma: no cover - torch without DTensor: nothing is sharded
    DTensor = Replicate = compute_local_shape_and_global_offset = None
try:
    from torch.distributed.fsdp import FSDPModule
except ImportError:  # pragma: no cover - torch without FSDP2
    FSDPModule = None


def user_class(module: nn.Module) -> type:
    """The class the user gave ``module``: FSDP2's ``fully_shard`` swaps in a generated subclass of
    ``FSDPModule`` and of it (``FSDPLinear``), whose name a report must not show, nor a rule group by."""
    cls = type(module)
    if FSDPModule is None or not isinstance(module, FSDPModule):
        return cls
    return next((c for c in cls.__mro__ if not issubclass(c, FSDPModule)), cls)


def is_sharded(t) -> bool:
    """``t`` is a ``DTensor`` (a parameter or gradient of FSDP2 or tensor parallelism)."""
    return DTensor is not None and isinstance(t, DTensor)


def is_split(t) -> bool:
    """``t`` is a ``DTensor`` split across ranks (a ``Shard`` placement): ranks hold different values."""
    return is_sharded(t) and any(p.is_shard() for p in t.placements)


def local(t, resolve: bool = True):
    """What this rank holds of ``t``: its local shard for a ``DTensor``, else ``t``. ``resolve``: a
    ``Partial`` one is reduced first (a collective: sampled steps only); without, its local summand."""
    if not is_sharded(t):
        return t
    if resolve and any(p.is_partial() for p in t.placements):
        t = t.redistribute(t.device_mesh, [Replicate() if p.is_partial() else p for p in t.placements])
    return t.to_local()


def replication(t) -> int:
    """How many ranks of its mesh hold each element of ``t`` (the product of its ``Replicate`` dims' sizes)."""
    mesh = t.device_mesh
    return math.prod(mesh.size(d) for d, p in enumerate(t.placements) if p.is_replicate())


def first_of_copies(t) -> bool:
    """This rank is the first (coordinate 0) of every ``Replicate`` dim of ``t``'s mesh: its shard counts."""
    coord = t.device_mesh.get_coordinate() or []
    return all(c == 0 for c, p in zip(coord, t.placements) if p.is_replicate())


def _mesh_groups(mesh) -> list:
    """The process groups whose successive all-reduces sum over every rank of ``mesh``: the default
    group at once when the mesh spans the whole world, else one per mesh dim."""
    if mesh.mesh.numel() == dist.get_world_size():
        return [None]
    return [mesh.get_group(d) for d in range(mesh.ndim)]


def all_reduce_over_mesh(t: torch.Tensor, mesh, op=None) -> torch.Tensor:
    """``t`` reduced (sum by default) over every rank of ``mesh``, in place; returns ``t``."""
    op = dist.ReduceOp.SUM if op is None else op
    for group in _mesh_groups(mesh):
        dist.all_reduce(t, op=op, group=group)
    return t


def _by_mesh(tensors: list) -> list[tuple]:
    """``(mesh, [indices])`` of the ``DTensor``\\ s among ``tensors``, one entry per distinct mesh."""
    out: list[tuple] = []
    for i, t in enumerate(tensors):
        if not is_sharded(t):
            continue
        for mesh, idx in out:
            if mesh == t.device_mesh:
                idx.append(i)
                break
        else:
            out.append((t.device_mesh, [i]))
    return out


def global_sums(tensors: list, local_sums: torch.Tensor) -> torch.Tensor:
    """Sums over whole tensors from ``local_sums[i]``, a sum (or row of sums) over this rank's part of ``tensors[i]``
    (module equation): unchanged for plain tensors; for ``DTensor``\\ s divided by their replication and
    all-reduced over their mesh (one all-reduce per mesh, two or more only for a mesh that is a proper
    sub-mesh of a multi-dimensional one). Float64; no collective when nothing is sharded."""
    out = local_sums.double()
    for mesh, idx in _by_mesh(tensors):
        index = torch.tensor(idx, device=out.device)
        copies = torch.tensor([float(replication(tensors[i])) for i in idx], dtype=torch.float64, device=out.device)
        part = out.index_select(0, index) / copies.view(-1, *[1] * (out.dim() - 1))
        out = out.index_copy(0, index, all_reduce_over_mesh(part, mesh))
    return out


def global_norms(tensors: list, local_norms: torch.Tensor) -> torch.Tensor:
    """2-norms of whole tensors from the 2-norms of this rank's parts (:func:`global_sums` of squares)."""
    if not any(is_sharded(t) for t in tensors):
        return local_norms
    return global_sums(tensors, local_norms.double() ** 2).sqrt()


def rows_offset(t) -> tuple[int, int]:
    """``(offset, count)`` of this rank's rows (dim 0) of ``t`` among the global rows."""
    shape, offset = compute_local_shape_and_global_offset(t.shape, t.device_mesh, t.placements)
    return int(offset[0]), int(shape[0])


def column_offset(t) -> int:
    """The global index of this rank's first column (dim 1) of ``t`` (2-D or more)."""
    _, offset = compute_local_shape_and_global_offset(t.shape, t.device_mesh, t.placements)
    return int(offset[1])


def global_rows(t, rows: torch.Tensor) -> torch.Tensor:
    """Per-row sums over the whole of ``t`` from ``rows``, this rank's per-row sums over its local
    shard (``(local rows, k)``): placed at the shard's global rows, counted on the first of each set of
    copies only, and summed over the mesh (exact for integer sums, including int64 wrap-around)."""
    offset, count = rows_offset(t)
    full = rows.new_zeros((t.shape[0], *rows.shape[1:]))
    if first_of_copies(t):
        full[offset:offset + count] = rows
    return all_reduce_over_mesh(full, t.device_mesh)


def unit_shard(weight, units: int) -> tuple[int, int] | None:
    """``(offset, global units)`` when a layer whose (unsharded by FSDP) weight is ``weight`` wrote only
    ``units`` of its output units on this rank: a Colwise-parallel Linear, weight ``Shard(0)`` on a TP
    mesh; ``None`` when its output holds every unit (no TP, Rowwise, or FSDP alone)."""
    if not is_sharded(weight) or units == weight.shape[0]:
        return None
    offset, count = rows_offset(weight)
    return (offset, int(weight.shape[0])) if count == units else None


def layer_output(out) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """``(what this rank holds of a layer's output, (offset, global units) of its last dim or None)``.

    A tensor-parallel Linear's output is a ``DTensor`` to the monitor's hooks (TP converts it to a local
    tensor afterwards): ``Shard(-1)`` for a Colwise layer (this rank's units), ``Partial`` for a Rowwise
    one, which is summed here (one all-reduce of the output on a sampled step, every rank of the group:
    the sum TP's own output hook makes next) and then the same on every rank of the TP group.
    """
    if not is_sharded(out):
        return out, None
    last = out.dim() - 1
    if any(p.is_partial() for p in out.placements):
        out = out.redistribute(out.device_mesh, [Replicate() if p.is_partial() else p for p in out.placements])
    if any(p.is_shard() and p.dim % out.dim() == last for p in out.placements):
        shape, offset = compute_local_shape_and_global_offset(out.shape, out.device_mesh, out.placements)
        return out.to_local(), (int(offset[last]), int(out.shape[last]))
    return out.to_local(), None


def _fsdp_meshes(model: nn.Module) -> list:
    """The meshes FSDP2 shards ``model``'s parameters over (empty without FSDP2)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover
        return []
    meshes: list = []
    for m in model.modules():
        if isinstance(m, FSDPModule):
            group = m._get_fsdp_state()._fsdp_param_group
            if group is not None and group.mesh_info.mesh not in meshes:
                meshes.append(group.mesh_info.mesh)
    return meshes


def tensor_parallel_replica(model: nn.Module) -> bool:
    """This rank repeats another's activations: a rank of a tensor-parallel group other than its first.

    The TP mesh dims are those of the sharded Linear/Conv weights that FSDP2 does not shard over (its
    mesh, or for FSDP2 + TP on a named 2-D mesh, its dim names); the TP group's first rank (coordinate 0
    on every TP dim) records the activations every rank of the group computes alike, the others record
    only the units their Colwise layers write (:func:`unit_shard`). ``False`` without tensor parallelism.
    """
    fsdp = None
    for m in model.modules():
        w = getattr(m, "weight", None)
        if not isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or not is_sharded(w):
            continue
        mesh = w.device_mesh
        if fsdp is None:
            fsdp = _fsdp_meshes(model)
        if mesh in fsdp:                  # FSDP2 alone: its shards are whole units once unsharded
            continue
        fsdp_names = {n for f in fsdp for n in (f.mesh_dim_names or ())}
        names = mesh.mesh_dim_names or ()
        tp_dims = [d for d in range(mesh.ndim) if not (names and names[d] in fsdp_names)]
        coord = mesh.get_coordinate() or []
        if tp_dims and any(p.is_shard() for d, p in enumerate(w.placements) if d in tp_dims):
            return any(coord[d] != 0 for d in tp_dims)
    return False
