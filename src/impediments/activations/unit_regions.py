"""Per-unit region counts in a few elementwise float kernels, exact (the monitor's hot path).

:func:`~impediments.activations.regions.region_counts` builds boolean masks; on CPU, comparisons
that produce ``bool``, ``&``/``~`` of masks and sums of ``bool`` are slow (measured on a
64x16x28x28 tensor: 6x for ReLU, 8x for tanh, 14x for GELU against this path). Here the
real line is cut once per activation into pieces of one region label each (:func:`region_cuts`,
cached), and the number of values beyond each cut, :math:`\\#\\{x > b\\}` or :math:`\\#\\{x < b\\}`,
is one comparison written as 0/1 into a float buffer and one sum (exact in float32 below 2^24
values per unit, float64 above). A piece's count is the difference of the counts at its two cuts,
and its label is the reference classification (:func:`~impediments.activations.regions.region_counts`)
of a point inside it, so the result equals the boolean path value for value. A NaN is beyond no
cut and would land in an arbitrary piece, so tensors that may hold NaN take the boolean path
(``finite`` of :func:`unit_region_counts`; the monitor leaves batches with NaN out). The raw counts per cut (:func:`cut_counts`) add across batches, so a monitor stores those and turns
them into regions only when read (:func:`regions_from_cut_counts`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from impediments.activations.regions import LINEAR_TOL, SATURATION_TOL, _mask, linear_intervals, region_counts, \
    saturated_intervals

#: float32 sums of 0/1 are exact below this many values per unit
_EXACT_F32 = 1 << 24

#: ``(b, closed_left)``: the cut between ``x <= b | x > b`` (True) or ``x < b | x >= b`` (False)
Cut = tuple[float, bool]


def _label(v: float, name: str, saturation_tol: float, linear_tol: float) -> int:
    counts = region_counts(torch.tensor([v], dtype=torch.float64), name, saturation_tol=saturation_tol,
                           linear_tol=linear_tol)
    return int(counts.argmax())


@lru_cache(maxsize=None)
def region_cuts(name: str, saturation_tol: float = SATURATION_TOL,
                linear_tol: float = LINEAR_TOL) -> tuple[tuple[Cut, ...], tuple[int, ...]]:
    """Cuts of the real line into pieces of one region label, and the label of each piece.

    Returns:
        ``(cuts, labels)`` with ``len(labels) == len(cuts) + 1``; labels index ``REGIONS``
        (0 saturated, 1 linear, 2 active); adjacent pieces have different labels.
    """
    ends = sorted({e for iv in saturated_intervals(name, saturation_tol) + linear_intervals(name, linear_tol)
                   for e in iv if math.isfinite(e)})
    label = lambda v: _label(v, name, saturation_tol, linear_tol)  # noqa: E731
    cuts: list[Cut] = []
    labels = [label(ends[0] - 1.0 if ends else 0.0)]
    for i, b in enumerate(ends):
        right = ends[i + 1] if i + 1 < len(ends) else b + 1.0
        tie, after = label(b), label(0.5 * (b + right))
        if tie != labels[-1]:
            cuts.append((b, False))
            labels.append(tie)
        if after != labels[-1]:
            cuts.append((b, True))
            labels.append(after)
    return tuple(cuts), tuple(labels)


def _reduce(t: torch.Tensor, dim: int, dtype=None) -> torch.Tensor:
    """Sum over every dim but ``dim`` (per unit)."""
    if dim == t.dim() - 1:
        return t.reshape(-1, t.shape[-1]).sum(0, dtype=dtype)
    return t.sum(tuple(d for d in range(t.dim()) if d != dim), dtype=dtype)


def _count_beyond(x: torch.Tensor, cut: Cut, dim: int, dtype, out: torch.Tensor) -> torch.Tensor:
    """Per unit, ``#(x > b)`` for a ``closed_left`` cut, else ``#(x < b)``: the comparison written as
    0/1 into the float scratch ``out`` (twice as fast on CPU as a ``bool`` result), then summed."""
    b, closed_left = cut
    return _reduce((torch.gt if closed_left else torch.lt)(x, b, out=out), dim, dtype)


def cut_counts(x: torch.Tensor, name: str, dim: int, *, saturation_tol: float = SATURATION_TOL,
               linear_tol: float = LINEAR_TOL, out: torch.Tensor | None = None) -> torch.Tensor:
    """Raw per-unit counts at each cut of :func:`region_cuts`: ``#(x > b)`` (``closed_left``) or
    ``#(x < b)``; shape ``(len(cuts), units)``. They add across batches and processes; turn them into
    regions with :func:`regions_from_cut_counts`. A NaN counts at no cut. ``out``: optional float32 or
    float64 scratch of ``x``'s shape, reused by every cut (large temporaries cost most on CPU: each is a
    fresh mmap).
    """
    x = x.detach()
    if not x.is_floating_point():
        x = x.double()
    dim = dim % x.dim()
    cuts, _ = region_cuts(name, saturation_tol, linear_tol)
    dtype = None if x.numel() // max(x.shape[dim], 1) < _EXACT_F32 else torch.float64
    if not cuts:
        return x.new_zeros((0, x.shape[dim]), dtype=torch.float32)
    if out is None or out.shape != x.shape or out.dtype not in (torch.float32, torch.float64):
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    return torch.stack([_count_beyond(x, cut, dim, dtype, out) for cut in cuts])


def regions_from_cut_counts(counts: torch.Tensor, values_per_unit, name: str, *,
                            saturation_tol: float = SATURATION_TOL, linear_tol: float = LINEAR_TOL) -> torch.Tensor:
    """Per-unit ``[saturated, linear, active]`` counts ``(3, units)`` from :func:`cut_counts` summed over
    batches holding ``values_per_unit`` values per unit in all.

    With :math:`A_i` the number above cut :math:`i` (:math:`A_0 = n`, :math:`A_{k+1} = 0`), piece
    :math:`i` holds :math:`A_i - A_{i+1}` values and adds them to its label's row.
    """
    cuts, labels = region_cuts(name, saturation_tol, linear_tol)
    counts = counts.double()
    n = torch.full(counts.shape[1:], float(values_per_unit), dtype=torch.float64, device=counts.device)
    above = [n] + [c if closed_left else n - c for c, (_, closed_left) in zip(counts, cuts)] + [torch.zeros_like(n)]
    out = torch.zeros((3, *counts.shape[1:]), dtype=torch.float64, device=counts.device)
    for i, label in enumerate(labels):
        out[label] += above[i] - above[i + 1]
    return out


def _bool_path(x: torch.Tensor, name: str, dim: int, saturation_tol: float, linear_tol: float) -> torch.Tensor:
    """The reference masks of :func:`~impediments.activations.regions.region_counts`, per unit."""
    sat = _mask(x, saturated_intervals(name, saturation_tol))
    lin = _mask(x, linear_intervals(name, linear_tol)) & ~sat
    n_sat, n_lin = _reduce(sat, dim, torch.float64), _reduce(lin, dim, torch.float64)
    return torch.stack([n_sat, n_lin, x.numel() // max(x.shape[dim], 1) - n_sat - n_lin])


def unit_region_counts(x: torch.Tensor, name: str, dim: int, *, finite: bool | None = None,
                       saturation_tol: float = SATURATION_TOL, linear_tol: float = LINEAR_TOL) -> torch.Tensor:
    """Counts of ``x`` per unit (index along ``dim``) in the saturated, linear and active regions.

    Args:
        x: pre-activations, at least 1-D.
        name: catalog activation name.
        dim: the unit dimension (features: last; conv channels: 1).
        finite: ``True`` if ``x`` is known to hold no NaN (e.g. from its moments); enables the
            float path on CPU. ``None``/``False`` use the boolean masks (NaN counts as active).

    Returns:
        Float64 tensor ``(3, units)`` of exact integer counts; column sums are the values per unit and
        the row sums equal :func:`~impediments.activations.regions.region_counts` of ``x``.
    """
    if x.dim() < 1:
        raise ValueError(f"unit_region_counts needs a tensor with a unit dimension, got shape {tuple(x.shape)}")
    x = x.detach()
    if not x.is_floating_point():
        x = x.double()
    dim = dim % x.dim()
    if finite is not True:
        return _bool_path(x, name, dim, saturation_tol, linear_tol)
    tols = {"saturation_tol": saturation_tol, "linear_tol": linear_tol}
    return regions_from_cut_counts(cut_counts(x, name, dim, **tols), x.numel() // max(x.shape[dim], 1), name, **tols)
