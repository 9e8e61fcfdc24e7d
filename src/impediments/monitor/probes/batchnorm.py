"""Batch Normalization: how each BN layer was used while the model trained (Ioffe & Szegedy 2015).

Every training-mode forward of the model (a forward pre-hook per BN layer, host counters only, no
tensor op): one more forward of the layer, and whether it normalised with its running statistics
(``eval()`` or frozen inside a training model: ``bn_inference_mode_in_training``). On sampled steps,
before the forward updates them, the batch statistics against the running ones, per channel:

.. math:: d_\\mu = \\operatorname{mean}_c \\frac{|\\bar x_c - \\hat\\mu_c|}{\\sqrt{\\hat\\sigma^2_c + \\epsilon}},
          \\quad r_\\sigma = \\operatorname{mean}_c \\frac{s^2_c}{\\hat\\sigma^2_c}

and the layer's context: values per channel and examples per batch (``bn_small_batch``), whether it
is frozen on purpose (:func:`impediments.norm.freeze`, not the same as ``eval()``), the layer before it
and, when a Linear/Conv feeds it directly, that layer's weight decay (L2 before BN only rescales).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from impediments.monitor import sharding
from impediments.monitor.hooks.compiled import compiling
from impediments.monitor.hooks.portable import PortableHook
from impediments.monitor.probes.base import Probe
from impediments.monitor.probes.layers import LAYER_TYPES
from impediments.monitor.state.bag import Bag, Field
from impediments.norm import is_batch_norm, is_frozen


@dataclass
class BatchNormStats:
    """How a BatchNorm layer was used while the model trained."""

    kind: str
    values_per_channel: int
    training_forwards: int
    running_stats_forwards_in_training: int
    frozen: bool
    preceded_by: str | None
    preceded_by_name: str | None
    feeding_layer: str | None
    feeding_weight_decay: float | None
    batch_mean_vs_running: float | None
    batch_var_vs_running: float | None
    #: the smallest batch (examples) it normalized; positions within an example are correlated
    examples_per_batch: int = 0


class BatchNormProbe(Probe):
    """Counts and batch-vs-running statistics of BatchNorm layers (see the module docstring).

    Args:
        ctx: the monitor's context.
        modules: ``[(name, module)]`` of the watched model.
        optimizer_info: ``() -> {"groups": [...]}`` or None, for the feeding layer's weight decay.
    """

    key = "bn"
    TRAINING_FORWARDS = Field("training_forwards", "count")
    RUNNING_FORWARDS = Field("running_forwards", "count")
    #: the two per-layer means above, summed over sampled forwards
    RUNNING_DEV = Field("running_dev", "sum", columns=("batch_mean_vs_running", "batch_var_vs_running"))
    COMPARED = Field("compared", "count")

    def __init__(self, ctx, modules: list, optimizer_info=lambda: None) -> None:
        super().__init__(ctx)
        self.modules = [(n, m) for n, m in modules if is_batch_norm(m)]
        self.optimizer_info = optimizer_info

    def attach(self) -> list:
        return [m.register_forward_pre_hook(_ForwardCounter(self, n)) for n, m in self.modules]

    def detach(self) -> None:
        self.modules = []

    def is_batch_norm(self, module: nn.Module) -> bool:
        return is_batch_norm(module)

    def count_forward(self, name: str, module: nn.Module) -> None:
        """Every training-mode forward of the model: one more forward, and whether it used running statistics."""
        if compiling():              # inside a compiled graph: counted on (eager) sampled steps only
            return
        model = self.ctx.model
        if model is not None and model.training:
            bag = self.ctx.state().bag(self.key, name)
            bag.count(self.TRAINING_FORWARDS)
            if not module.training and getattr(module, "running_mean", None) is not None:
                bag.count(self.RUNNING_FORWARDS)

    def count_external(self, name: str, kind: str, *, running_statistics: bool, frozen: bool,
                       values_per_channel: int) -> None:
        """A forward of a BN layer the probe cannot recognise itself (Keras 3's); see
        :meth:`~impediments.monitor.monitor.Monitor.record_batchnorm_forward`."""
        meta = self.meta.setdefault(name, {"kind": kind, "values_per_channel": None})
        v = meta["values_per_channel"]
        meta["values_per_channel"] = values_per_channel if v is None else min(v, values_per_channel)
        meta["frozen"] = frozen
        bag = self.ctx.state().bag(self.key, name)
        bag.count(self.TRAINING_FORWARDS)
        if running_statistics:
            bag.count(self.RUNNING_FORWARDS)

    def record(self, name: str, module: nn.Module, args, names: dict) -> None:
        """Before a BN layer runs on a sampled step: its context and batch-vs-running statistics."""
        if not args or not isinstance(args[0], torch.Tensor):
            return
        ctx = self.ctx
        x = args[0]
        meta = self.meta.setdefault(name, {"kind": sharding.user_class(module).__name__, "values_per_channel": None})
        if x.dim() >= 2:
            v = x.numel() // max(1, x.shape[1])
            meta["values_per_channel"] = v if meta["values_per_channel"] is None else min(v, meta["values_per_channel"])
            meta["examples_per_batch"] = min(len(x), meta.get("examples_per_batch") or len(x))
        meta["frozen"] = is_frozen(module)
        prev = ctx.last_leaf
        meta["preceded_by"] = type(prev).__name__ if prev is not None else None
        meta["preceded_by_name"] = names.get(id(prev)) if prev is not None else None
        fed = isinstance(prev, LAYER_TYPES) and ctx.last_out is x
        meta["feeding_layer"] = meta["preceded_by_name"] if fed else None
        self._compare(ctx.state().bag(self.key, name), module, x)

    def _compare(self, bag: Bag, module: nn.Module, x: torch.Tensor) -> None:
        """Batch mean/var per channel against running statistics (before this forward updates them)."""
        rm, rv = getattr(module, "running_mean", None), getattr(module, "running_var", None)
        if (not module.training or rm is None or rv is None or x.dim() < 2 or module.num_batches_tracked is None
                or x.shape[1] != rm.numel()):
            return
        x = x.detach()
        dims = tuple(d for d in range(x.dim()) if d != 1)
        n = x.numel() // max(x.shape[1], 1)
        mean = x.sum(dims) / n                 # two passes: torch.var_mean over dims is ~10x slower on CPU
        d = self.ctx.scratch.like(x)
        torch.sub(x, mean.view(1, -1, *([1] * (x.dim() - 2))), out=d)
        var = d.mul_(d).sum(dims) / n
        dev = ((mean - rm).abs() / torch.sqrt(rv + module.eps)).mean()
        ratio = (var / rv.clamp_min(1e-30)).mean()
        bag.add(self.RUNNING_DEV, torch.stack([dev, ratio]).double())
        bag.count(self.COMPARED)

    def _layer(self, meta: dict, bag: Bag | None) -> BatchNormStats:
        dev = ratio = None
        if bag is not None and bag.read(self.RUNNING_DEV) is not None and bag.read(self.COMPARED):
            cols = self.RUNNING_DEV.unpack((bag.read(self.RUNNING_DEV).cpu() / bag.read(self.COMPARED)).tolist())
            dev, ratio = cols["batch_mean_vs_running"], cols["batch_var_vs_running"]
        wd = None
        feeding = meta.get("feeding_layer")
        opt = self.optimizer_info()
        if feeding is not None and opt:
            for g in opt["groups"]:
                if f"{feeding}.weight" in g.get("params", []):
                    wd = float(g.get("weight_decay", 0.0))
        count = (lambda f: bag.read(f)) if bag is not None else (lambda f: 0)
        return BatchNormStats(
            kind=meta["kind"], values_per_channel=meta.get("values_per_channel") or 0,
            training_forwards=count(self.TRAINING_FORWARDS),
            running_stats_forwards_in_training=count(self.RUNNING_FORWARDS), frozen=bool(meta.get("frozen")),
            preceded_by=meta.get("preceded_by"), preceded_by_name=meta.get("preceded_by_name"), feeding_layer=feeding,
            feeding_weight_decay=wd, batch_mean_vs_running=dev, batch_var_vs_running=ratio,
            examples_per_batch=meta.get("examples_per_batch") or 0)

    def stats(self, total, windows) -> dict:
        return {"batchnorm": {n: self._layer(m, total.get((self.key, n))) for n, m in self.meta.items()}}

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        for name, m in other.items():
            cur = mine.setdefault(name, dict(m))
            if m.get("values_per_channel") is not None:
                v = cur.get("values_per_channel")
                cur["values_per_channel"] = m["values_per_channel"] if v is None else min(v, m["values_per_channel"])


class _ForwardCounter(PortableHook):
    """A BN layer's forward pre-hook (portable: see :mod:`~impediments.monitor.hooks.portable`)."""

    __slots__ = ("name",)

    def __init__(self, probe: BatchNormProbe, name: str) -> None:
        super().__init__(probe.count_forward)
        self.name = name

    def __call__(self, module, args):
        self.fn(self.name, module)
