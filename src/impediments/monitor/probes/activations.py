"""Activations: every activation module or functional call of a sampled forward, and its units.

Per activation (a module such as ``hidden1.act``, or a call ``"module/kind#k"``, see
:mod:`~impediments.monitor.hooks.intercept`):

* moments of its input (the pre-activation) and, on full steps, of its output;
* a signed-log histogram of a subsample of the output (full steps; :mod:`~impediments.monitor.state.histogram`);
* per unit (feature, or conv channel), the counts of pre-activations at the region cuts of its kind
  (:func:`impediments.activations.unit_regions.cut_counts`), which become per-unit counts of the
  saturated, linear and active regions when read. A unit is alive on a value outside the saturated
  region, so for ReLU on a positive pre-activation: exactly a non-zero output. ReLU-like kinds outside
  the catalogue (ReLU6, CELU, Mish) count ``x > 0`` as alive and report no regions;
* whether its output multiplied another tensor (a gate: SE, GLU/SwiGLU, LSTM-style).

The counts are dense (every sampled step), so a unit is dead when it was never active on any
recorded batch; moments of outputs, extremes and histograms are window statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from impediments.activations.catalog import kinds_of, output_range
from impediments.activations.unit_regions import cut_counts, regions_from_cut_counts
from impediments.monitor.probes.base import Probe, Scratch
from impediments.monitor.state.bag import Bag, Field
from impediments.monitor.state.histogram import (HIST_BINS, HIST_EDGES, Histogram, histogram_many, histogram_subsample,
                                                 linear_counts, linear_edges)
from impediments.monitor.state.moments import MomentStats, batch_moments, moment_stats, moments_dict

#: kinds counted as alive on ``x > 0`` when the catalog has no regions for them (the one taxonomy)
RELU_FAMILY = kinds_of("rectifier") | kinds_of("leaky")
#: modules after which units are channels (dim 1), not the last dim
_CHANNEL_FIRST = (_ConvNd, _BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
                  nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)
NAN = float("nan")


@dataclass
class ActivationStats:
    """One activation (module or functional call ``"module/kind#k"``).

    ``input`` holds the pre-activations. The region fractions use every pre-activation value of the
    sampled steps (:mod:`impediments.activations.regions`). Per unit (feature, or conv channel),
    ``unit_active_counts[i]`` counts the values of unit ``i`` outside the saturated region (for
    ReLU: pre-activation > 0), out of ``unit_total`` per unit; ``dead_units`` are units with none.
    ``histogram`` counts a deterministic subsample of the outputs (at most
    ``HIST_MAX_VALUES`` per tensor and step, :mod:`impediments.monitor.state.histogram`).
    """

    name: str
    kind: str
    depth: int
    samples: int
    output: MomentStats
    input: MomentStats
    histogram: Histogram
    saturated_fraction: float
    linear_fraction: float
    active_fraction: float
    units: int
    unit_active_counts: list[int] | None
    unit_total: int
    dead_units: list[int]
    #: values of one unit per example (1 for a Linear feature, H*W for a conv channel, T for a sequence)
    values_per_example: int = 0
    #: its output multiplied another tensor in a sampled forward (a gate: SE, GLU/SwiGLU, LSTM-style)
    gate: bool = False
    #: a bounded kind's (sigmoid, tanh, ...: ``activations.catalog.OUTPUT_RANGE``) outputs in linear bins over its
    #: range, from the same subsample as ``histogram``; None for an unbounded kind
    linear_histogram: Histogram | None = None
    #: per unit, the calls (sampled forwards) in which its pre-activation took more than one value; all zero:
    #: every unit's input was the same for all the values of each call, so the layer saw one input per call
    #: (see :attr:`~impediments.doctor.fractions.DeadCount.one_input_per_call`); None where not recorded
    unit_varied_calls: list[int] | None = None
    #: its output (or a view or affine image of it) was the watched model's output in a full forward: the output
    #: head (a sigmoid on a probability, a tanh on a bounded regression), not a hidden nonlinearity
    model_output: bool = False


@lru_cache(maxsize=1)
def catalog_kinds() -> frozenset:
    """Names of the activation catalog (regions are defined for these only)."""
    from impediments.activations import names

    return frozenset(names())


@lru_cache(maxsize=None)
def region_kind(kind: str) -> str | None:
    """The catalog kind whose region cuts are counted for ``kind``: itself, ``"relu"`` for ReLU-like
    kinds outside the catalog (alive = pre-activation > 0), else ``None``."""
    if kind in catalog_kinds():
        return kind
    return "relu" if kind in RELU_FAMILY and "relu" in catalog_kinds() else None


def unit_dim(x: torch.Tensor, previous: nn.Module | None) -> int:
    """Units are channels (dim 1) after conv-like layers, else the last dim (features)."""
    if x.dim() >= 3 and isinstance(previous, _CHANNEL_FIRST):
        return 1
    return x.dim() - 1


def _moments(x: torch.Tensor, scratch: Scratch | None, extremes: bool = True):
    """:func:`batch_moments` with a scratch buffer taken from ``scratch`` only if the two-pass variance runs."""
    return batch_moments(x, out=scratch if x.is_floating_point() else None, extremes=extremes)


def _varied(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Per unit along ``dim``: 1.0 where the pre-activation ``x`` took more than one value in this call, else
    0.0 (float64, for summing over calls). A unit whose input is the same for every example and position of a
    call saw one input, however many values it was counted on."""
    flat = x.movedim(dim, -1).reshape(-1, x.shape[dim]) if x.dim() else x.reshape(1, 1)
    if not flat.shape[0]:                                   # an empty batch: no value, nothing varied
        return flat.new_zeros(flat.shape[1], dtype=torch.float64)
    low, high = torch.aminmax(flat, dim=0)
    return (high > low).to(torch.float64)


def flush_histograms(queue: list) -> None:
    """Count every queued ``(bag, field, subsample)`` in one pass and add each row to its bag."""
    if not queue:
        return
    rows = histogram_many([v for _, _, v in queue])
    for (bag, field, _), row in zip(queue, rows.unbind(0)):
        bag.add(field, row)
    queue.clear()


class ActivationProbe(Probe):
    """Activation inputs, outputs, regions and units (see the module docstring)."""

    key = "act"
    INPUT = Field("input", "moments")
    OUTPUT = Field("output", "moments")
    HIST = Field("hist", "sum")
    #: a bounded kind's outputs in linear bins over its output range (``linear_counts``)
    HIST_LINEAR = Field("hist_linear", "sum")
    #: per unit, the counts at the region cuts of its kind (``cut_counts``)
    CUTS = Field("cuts", "sum")
    SAMPLES = Field("samples", "count")
    #: values seen per unit (the denominator of the region counts)
    UNIT_TOTAL = Field("unit_total", "count")
    #: per unit, calls in which its pre-activation took more than one value (``unit_varied_calls``)
    VARIED = Field("varied_calls", "sum")

    # --------------------------------------------------------------------- recording
    def record_input(self, name: str, kind: str, x: torch.Tensor):
        """Before activation ``name`` runs on ``x``: fold the pre-activation; returns a token for
        :meth:`record_output` (None for a non-float input)."""
        if not x.is_floating_point():
            return None
        ctx = self.ctx
        shard = ctx.last_unit_shard          # tensor parallelism: fed by a Colwise layer's units?
        if shard is not None and not (x.data_ptr() == shard[0].data_ptr() and x.shape == shard[0].shape):
            shard = None
        if shard is None and ctx.tensor_parallel_replica:   # the same on every rank of the TP group
            return None
        meta = self.meta.get(name)
        dim = unit_dim(x, ctx.last_leaf)
        if meta is None:
            meta = self.meta[name] = {"kind": kind, "depth": len(self.meta), "units": 0,
                                      "regions": kind in catalog_kinds(), "values_per_example": 0}
        bag = ctx.state().bag(self.key, name)
        known = ctx.last_moments if ctx.last_out is x else None   # fed directly by a Linear/Conv
        units = self._fold_input(bag, x, kind, dim, known, shard[1:] if shard is not None else None)
        meta["units"] = max(meta["units"], units)
        local_units = x.shape[dim] if x.dim() else 1
        if local_units and x.dim() >= 2 and x.numel():
            meta["values_per_example"] = max(meta.get("values_per_example", 0),
                                             x.numel() // (x.shape[0] * local_units))
        return name, bag

    def _fold_input(self, bag: Bag, x: torch.Tensor, kind: str, dim: int, moments=None, shard=None) -> int:
        """Fold the pre-activation ``x`` (``moments``: already computed, e.g. as the output of the Linear
        that fed it); returns the number of units. On CPU a batch holding NaN/Inf is left out of the
        region counts (it is in ``nonfinite``). On dense-only steps: no min/max (a window statistic).
        ``shard``: ``(offset, global units)`` when ``x`` holds units ``[offset, offset + local)`` of the
        layer (tensor parallelism): the counts land at those units, zero elsewhere, so that summing the
        ranks counts each unit once; the values per unit and the batch are counted on the TP group's
        first rank only."""
        x = x.detach()
        full, scratch = self.ctx.full, self.ctx.scratch
        rkind = region_kind(kind)
        out = scratch.like(x) if (rkind is not None or moments is None) and x.is_floating_point() else None
        m = batch_moments(x, out=out, extremes=full) if moments is None else moments
        bag.add(self.INPUT, m)
        units = x.shape[dim] if x.dim() else 1
        counts_batch = not self.ctx.tensor_parallel_replica
        if x.dim() and rkind is not None and m.finite is not False:
            cuts = cut_counts(x, rkind, dim, out=out)
            if shard is not None:
                cuts = cuts.new_zeros((cuts.shape[0], shard[1])).index_copy_(
                    1, torch.arange(shard[0], shard[0] + units, device=cuts.device), cuts)
            bag.add(self.CUTS, cuts)
            if counts_batch:
                per_unit = x.numel() // max(units, 1)
                bag.count(self.UNIT_TOTAL, per_unit)
                varied = _varied(x, dim)
                if shard is not None:
                    varied = varied.new_zeros(shard[1]).index_copy_(
                        0, torch.arange(shard[0], shard[0] + units, device=varied.device), varied)
                bag.add(self.VARIED, varied)
        if counts_batch:
            bag.count(self.SAMPLES)
        return shard[1] if shard is not None else units

    def record_output(self, token, out: torch.Tensor) -> None:
        """After the activation ran (full steps only: a window statistic): its output's moments, and a
        histogram subsample copied now (before any later in-place op), counted with the whole forward's."""
        ctx = self.ctx
        if not ctx.full:
            return
        name, bag = token
        m = _moments(out, ctx.scratch)
        bag.add(self.OUTPUT, m)
        sub = histogram_subsample(out)
        ctx.hist_queue.append((bag, self.HIST, sub.to(torch.float64, copy=True)))
        bounds = output_range(self.meta[name]["kind"])
        if bounds is not None:
            bag.add(self.HIST_LINEAR, linear_counts(sub, *bounds))
        ctx.nonfinite.update_forward(m.bad, ctx.step, name)

    def mark_gate(self, name: str) -> None:
        """The output of activation ``name`` multiplied another tensor (see the interceptor): a gate."""
        meta = self.meta.get(name)
        if meta is not None:
            meta["gate"] = True

    def mark_model_output(self, name: str) -> None:
        """The output of activation ``name`` (or a view or affine image of it) was the model's output: the head."""
        meta = self.meta.get(name)
        if meta is not None:
            meta["model_output"] = True

    # --------------------------------------------------------------------- reading
    def _unit_regions(self, meta: dict, bag: Bag):
        """Per-unit ``[saturated, linear, active]`` counts ``(3, units)`` on the host, or None."""
        cuts, rkind = bag.read(self.CUTS), region_kind(meta["kind"])
        if cuts is None or rkind is None:
            return None
        return regions_from_cut_counts(cuts.cpu(), bag.read(self.UNIT_TOTAL), rkind)

    def _activation(self, name: str, meta: dict, bag: Bag) -> ActivationStats:
        hist = bag.read(self.HIST)
        counts = hist.cpu().tolist()[:HIST_BINS] if hist is not None else [0] * HIST_BINS
        sat = lin = act = NAN
        unit_counts = None
        r = self._unit_regions(meta, bag)
        if r is not None:
            unit_counts = [int(c) for c in (r[1] + r[2]).tolist()]
            total = float(r.sum())
            if total > 0 and meta.get("regions", True):
                sat, lin, act = (r.sum(1) / total).tolist()
        return ActivationStats(
            name=name, kind=meta["kind"], depth=meta["depth"], samples=bag.read(self.SAMPLES),
            output=moment_stats(bag.read(self.OUTPUT)), input=moment_stats(bag.read(self.INPUT)),
            histogram=Histogram(edges=list(HIST_EDGES), counts=[int(c) for c in counts]),
            saturated_fraction=sat, linear_fraction=lin, active_fraction=act, units=meta["units"],
            unit_active_counts=unit_counts, unit_total=bag.read(self.UNIT_TOTAL),
            dead_units=[i for i, c in enumerate(unit_counts) if c == 0] if unit_counts is not None else [],
            values_per_example=meta.get("values_per_example", 0), gate=bool(meta.get("gate", False)),
            linear_histogram=self._linear_histogram(meta, bag), unit_varied_calls=self._varied_calls(bag, unit_counts),
            model_output=bool(meta.get("model_output", False)))

    def _varied_calls(self, bag: Bag, unit_counts) -> list[int] | None:
        varied = bag.read(self.VARIED)
        if varied is None or unit_counts is None or varied.numel() != len(unit_counts):
            return None
        return [int(c) for c in varied.cpu().tolist()]

    def _linear_histogram(self, meta: dict, bag: Bag) -> Histogram | None:
        counts, bounds = bag.read(self.HIST_LINEAR), output_range(meta["kind"])
        if counts is None or bounds is None:
            return None
        return Histogram(edges=linear_edges(*bounds), counts=[int(c) for c in counts.cpu().tolist()])

    def stats(self, total, windows) -> dict:
        return {"activations": {n: self._activation(n, m, total[(self.key, n)]) for n, m in self.meta.items()
                                if (self.key, n) in total}}

    def window(self, st, w) -> None:
        for name, b in self.bags(st):
            out = b.read(self.OUTPUT)
            w.activation_var[name] = moments_dict(out)["var"] if out is not None else NAN
            hist = b.read(self.HIST)
            if hist is not None:
                w.histograms[name] = [int(c) for c in hist.cpu().tolist()[:HIST_BINS]]
            meta = self.meta.get(name, {"kind": ""})
            r = self._unit_regions(meta, b)
            if r is not None:
                silent = ((r[1] + r[2]) == 0)
                w.dead_fraction[name] = float(silent.double().mean())
                w.unit_values[name] = b.read(self.UNIT_TOTAL)
                w.silent_units[name] = silent.nonzero().flatten().tolist()
                total = float(r.sum())
                if total > 0 and meta.get("regions", True):
                    w.region_fractions[name] = (r.sum(1) / total).tolist()

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        for name, m in other.items():
            cur = mine.setdefault(name, dict(m))
            cur["units"] = max(cur["units"], m["units"])
            cur["values_per_example"] = max(cur.get("values_per_example", 0), m.get("values_per_example", 0))
            cur["gate"] = bool(cur.get("gate") or m.get("gate"))
            cur["model_output"] = bool(cur.get("model_output") or m.get("model_output"))

