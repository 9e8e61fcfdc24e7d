"""Loss-function calls seen by the loop probe (:mod:`~impediments.monitor.probes.loop.probe`): what fed them, their targets.

Per loss kind: the autograd node that produced the input (``SoftmaxBackward0`` means probabilities,
not logits), whether the input rows are probability distributions (in [0, 1], summing to 1) and their
mean largest probability (saturation); for regression losses, input and target shapes that differ
and how many values broadcasting then compares. For integer class targets, per batch, a histogram
over the classes (``index_add_`` into a zero tensor sized by the input's class dimension: no
data-dependent shapes, no sync), its number of distinct classes, and the histogram summed over
batches. Values stay in device tensors until :meth:`LossCalls.to_stats`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

#: loss functions whose input provenance and targets are read, by kind
CLASSIFICATION = {F.cross_entropy: "cross_entropy", F.nll_loss: "nll_loss",
                  F.binary_cross_entropy_with_logits: "binary_cross_entropy_with_logits"}
REGRESSION = {F.mse_loss: "mse_loss", F.l1_loss: "l1_loss", F.smooth_l1_loss: "smooth_l1_loss",
              F.huber_loss: "huber_loss"}
LOSSES = {**CLASSIFICATION, **REGRESSION}
#: class histograms are kept for at most this many classes (classification, not a vocabulary)
MAX_CLASSES = 1000
#: a row of the loss input counts as a probability distribution when it sums to 1 within this
PROBABILITY_SUM_TOLERANCE = 1e-3


@dataclass
class LossCallStats:
    """Calls of one loss function seen on sampled steps, with what fed them.

    ``input_from`` counts the autograd node that produced the loss input (``SoftmaxBackward0``, ...);
    ``probability_rows`` counts calls whose input rows were probability distributions (in [0, 1],
    summing to 1), and ``max_probability`` is their mean largest probability (saturation). For
    regression losses, ``shape_mismatches`` counts calls whose input and target shapes differ; the
    first pair and the number of values after broadcasting are kept.
    """

    calls: int
    input_from: dict[str, int]
    classes: int | None
    probability_rows: int
    max_probability: float | None
    shape_mismatches: int
    input_shape: list[int] | None
    target_shape: list[int] | None
    broadcast_numel: int | None
    #: for probability inputs, the gradient reaching the logits over the one the loss on the logits gives
    gradient_scale: float | None = None



def gradient_scale(p: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``||g_actual|| / ||g_logits||`` when the rows ``p`` are probabilities already (a device scalar).

    Had the logits z with ``p = softmax(z)`` gone to ``cross_entropy``, d loss / d z = p - y. Through the
    extra softmax the gradient reaching z is ``J(p) (softmax(p) - y)`` for ``cross_entropy`` (which
    applies log_softmax to p) and ``J(p) (-y)`` for ``nll_loss`` (which takes p as log-probabilities),
    with the softmax Jacobian ``J(p) v = p * v - p (p . v)`` (entries at most 1/4, vanishing as p saturates).
    """
    p = p.double()
    valid = (target >= 0) & (target < p.shape[1])
    y = torch.zeros_like(p).scatter_(1, target.clamp(0, p.shape[1] - 1).unsqueeze(1), 1.0) * valid.unsqueeze(1)
    v = (torch.softmax(p, 1) - y) if kind == "cross_entropy" else -y
    actual = p * v - p * (p * v).sum(1, keepdim=True)
    return actual.norm() / (p - y).norm().clamp_min(1e-30)


class LossCalls:
    """Accumulates :data:`LOSSES` calls; ``to_stats()`` -> the loss and target fields of ``LoopStats``."""

    def __init__(self) -> None:
        self.losses: dict[str, dict] = {}
        self.batches = self.values = 0
        self.dev: dict[str, torch.Tensor] = {}

    def observe(self, func, x: torch.Tensor, target: torch.Tensor) -> None:
        """One call ``func(x, target)`` (before it runs; reads only)."""
        kind = LOSSES[func]
        rec = self.losses.setdefault(kind, {"calls": 0, "input_from": {}, "classes": None, "shape_mismatches": 0,
                                            "input_shape": None, "target_shape": None, "broadcast_numel": None})
        rec["calls"] += 1
        source = type(x.grad_fn).__name__ if x.grad_fn is not None else "leaf"
        rec["input_from"][source] = rec["input_from"].get(source, 0) + 1
        x = x.detach()
        if func in REGRESSION:
            if x.shape != target.shape:
                rec["shape_mismatches"] += 1
                if rec["input_shape"] is None:
                    rec["input_shape"], rec["target_shape"] = list(x.shape), list(target.shape)
                    rec["broadcast_numel"] = math.prod(torch.broadcast_shapes(x.shape, target.shape))
            return
        if func is F.binary_cross_entropy_with_logits or x.dim() < 1 or not x.numel():
            return
        cdim = 1 if x.dim() >= 2 else 0
        rec["classes"] = x.shape[cdim]
        rows_sum = x.double().sum(cdim)
        prob = (x.min() >= 0) & (x.max() <= 1) & ((rows_sum - 1).abs().max() <= PROBABILITY_SUM_TOLERANCE)
        self._add(f"{kind}.probability_rows", prob)
        self._add(f"{kind}.max_probability", torch.where(prob, x.amax(cdim).double().mean(), 0.0))
        if x.dim() == 2 and target.dim() == 1 and not target.dtype.is_floating_point and len(target) == len(x):
            self._add(f"{kind}.gradient_scale", torch.where(prob, gradient_scale(x, target, kind), 0.0))
        if not target.dtype.is_floating_point and not target.is_complex() and target.shape != x.shape:
            self._class_histogram(target.reshape(-1), x.shape[cdim])

    def _class_histogram(self, t: torch.Tensor, classes: int) -> None:
        if classes > MAX_CLASSES or not t.numel():
            return
        bins = torch.where((t >= 0) & (t < classes), t, classes)        # ignore_index etc. -> last bin
        hist = torch.zeros(classes + 1, dtype=torch.float64, device=t.device).index_add_(
            0, bins, torch.ones(len(bins), dtype=torch.float64, device=t.device))[:classes]
        self.batches += 1
        self.values += t.numel()
        self._add("distinct_classes", (hist > 0).sum())
        total = self.dev.get("class_counts")
        if total is not None and len(total) < classes:
            total = torch.cat([total, total.new_zeros(classes - len(total))])
        self.dev["class_counts"] = hist if total is None else total + F.pad(hist, (0, len(total) - classes))

    def _add(self, key: str, value: torch.Tensor) -> None:
        v = value.double()
        self.dev[key] = v if key not in self.dev else self.dev[key] + v

    def to_stats(self) -> dict:
        """``losses``, ``target_batches``, ``targets_per_batch``, ``distinct_classes_per_batch``, ``class_counts``."""
        dev = {k: v.cpu().tolist() for k, v in self.dev.items()}
        losses = {}
        for kind, r in self.losses.items():
            prob = int(dev.get(f"{kind}.probability_rows", 0))
            losses[kind] = LossCallStats(
                calls=r["calls"], input_from=dict(r["input_from"]), classes=r["classes"], probability_rows=prob,
                max_probability=dev[f"{kind}.max_probability"] / prob if prob else None,
                gradient_scale=dev[f"{kind}.gradient_scale"] / prob if prob and f"{kind}.gradient_scale" in dev else None,
                shape_mismatches=r["shape_mismatches"], input_shape=r["input_shape"],
                target_shape=r["target_shape"], broadcast_numel=r["broadcast_numel"])
        nb = self.batches
        return {"losses": losses, "target_batches": nb, "targets_per_batch": self.values / nb if nb else None,
                "distinct_classes_per_batch": dev["distinct_classes"] / nb if nb else None,
                "class_counts": [int(c) for c in dev.get("class_counts", [])]}


class LossMode(TorchFunctionMode):
    """Armed by the loop probe from the end of a sampled forward to the optimizer step: passes each
    loss-function call's arguments to ``probe.loss_calls`` and ``Tensor.backward`` to ``probe.backward``."""

    def __init__(self, probe) -> None:
        super().__init__()
        self.probe = probe

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.backward:
            return self.probe.backward(func, args, kwargs)
        if len(args) >= 2 and isinstance(args[0], torch.Tensor) and isinstance(args[1], torch.Tensor):
            if func in LOSSES:
                self.probe.loss_calls.observe(func, args[0], args[1])
        return func(*args, **kwargs)
