"""Loss-function calls seen by the loop probe (:mod:`~impediments.monitor.probes.loop.probe`): what fed them, their targets.

Per loss kind: the autograd node that produced the input (``SoftmaxBackward0`` means probabilities,
not logits), whether the input rows are probability distributions (in [0, 1], summing to 1) and their
mean largest probability (saturation); for regression losses, input and target shapes that differ
and how many values broadcasting then compares. For integer class targets, per batch, a histogram
over the classes (``index_add_`` into a zero tensor sized by the input's class dimension: no
data-dependent shapes, no sync), its number of distinct classes, and the histogram summed over
batches. Values stay in device tensors until :meth:`LossCalls.to_stats`.

The output head against the targets (issue 24): the input's producer is read *through* view ops
(``view``, ``reshape``, ``squeeze``, ``flatten``, ``permute``, ...), so probabilities that reach a logits
loss after a ``squeeze`` are still seen as probabilities; the fraction of targets outside the range
that producer can reach (a sigmoid's [0, 1], a tanh's [-1, 1], a ReLU's [0, inf)); the targets'
moments (the target-side twin of the input statistics); float target rows that are one-hot (exclusive
classes) or multi-hot (several labels); class indices outside ``[0, C)``; loss inputs constant across
the batch (a softmax over one unit is 1 everywhere). The first call's loss, beside the loss a
uniform (uninformed) prediction scores on the same targets with the same arguments (``ln C`` for
cross-entropy, ``ln 2`` for binary cross-entropy, ``mean(y^2)`` for MSE against a zero output).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

#: loss functions whose input provenance and targets are read, by kind
CLASSIFICATION = {F.cross_entropy: "cross_entropy", F.nll_loss: "nll_loss",
                  F.binary_cross_entropy_with_logits: "binary_cross_entropy_with_logits",
                  F.binary_cross_entropy: "binary_cross_entropy"}
REGRESSION = {F.mse_loss: "mse_loss", F.l1_loss: "l1_loss", F.smooth_l1_loss: "smooth_l1_loss",
              F.huber_loss: "huber_loss"}
LOSSES = {**CLASSIFICATION, **REGRESSION}
#: class histograms are kept for at most this many classes (classification, not a vocabulary)
MAX_CLASSES = 1000
#: a row of the loss input counts as a probability distribution when it sums to 1 within this
PROBABILITY_SUM_TOLERANCE = 1e-3
#: autograd nodes that only view, reshape or copy their input: the producer is looked for behind them
VIEW_NODE = re.compile(r"^(Unsafe)?(View|Reshape|ReshapeAlias|Squeeze|Unsqueeze|Flatten|Unflatten|Permute|"
                       r"Transpose|T|Expand|Clone|ToCopy|Contiguous|Alias|AsStrided|Select|Slice|Narrow|"
                       r"Split|Unbind|Index|Unfold)(Backward\d*)$")
#: at most this many view nodes are walked (a chain of reshapes is short)
MAX_VIEW_HOPS = 16
#: the values an output activation can reach, by its autograd node (closed: a sigmoid reaches 1.0 in float32)
OUTPUT_RANGE = {"SigmoidBackward0": (0.0, 1.0), "SoftmaxBackward0": (0.0, 1.0), "TanhBackward0": (-1.0, 1.0),
                "HardtanhBackward0": (-1.0, 1.0), "ReluBackward0": (0.0, math.inf),
                "SoftplusBackward0": (0.0, math.inf), "LogSoftmaxBackward0": (-math.inf, 0.0),
                "LogSigmoidBackward0": (-math.inf, 0.0), "HardsigmoidBackward0": (0.0, 1.0)}
#: a loss written by hand (Keras-style ``-(y * p.log()).mean()``, ``((out - y) ** 2).mean()``): no loss function
#: is called, so its targets are read from the first arithmetic op of the window that combines a tensor on the
#: autograd graph with a float tensor off it, of the model output's batch size and size (:meth:`LossCalls.arithmetic`)
HAND_WRITTEN = "hand_written"
ARITHMETIC = frozenset({torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.__sub__, torch.Tensor.__rsub__,
                        torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.__truediv__,
                        torch.Tensor.__rtruediv__, torch.Tensor.mul, torch.Tensor.sub, torch.Tensor.add,
                        torch.Tensor.div, torch.mul, torch.sub, torch.add, torch.div})
#: the uniform prediction each loss is compared with at the first call (what an uninformed model feeds it)
UNIFORM_INPUT = {"cross_entropy": "zeros", "binary_cross_entropy_with_logits": "zeros",
                 "binary_cross_entropy": "half", "nll_loss": "log_uniform", "mse_loss": "zeros",
                 "l1_loss": "zeros", "smooth_l1_loss": "zeros", "huber_loss": "zeros"}


def producer(x: torch.Tensor) -> str:
    """The autograd node that produced ``x``, looked for behind view/reshape/squeeze/copy nodes ("leaf": none).

    ``softmax(z).squeeze(1)`` gives ``SoftmaxBackward0``, not ``SqueezeBackward1``.
    """
    node = x.grad_fn
    for _ in range(MAX_VIEW_HOPS):
        if node is None:
            return "leaf"
        name = type(node).__name__
        if not VIEW_NODE.match(name):
            return name
        nxt = next((f for f, _ in node.next_functions if f is not None), None)
        if nxt is None or type(nxt).__name__ == "AccumulateGrad":
            return name
        node = nxt
    return type(node).__name__ if node is not None else "leaf"


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
    #: the loss input's width: its class dimension (dim 1), or its last dimension (1 for a 1-d input)
    width: int | None = None
    #: calls whose input was the same for every example of the batch (a softmax over one unit is 1.0)
    constant_inputs: int = 0
    #: float targets seen: how many, their mean, variance, minimum and maximum
    target_values: int = 0
    target_mean: float | None = None
    target_var: float | None = None
    target_min: float | None = None
    target_max: float | None = None
    #: the range the input's producer can reach (``OUTPUT_RANGE``), and the fraction of targets outside it
    output_range: list[float] | None = None
    targets_outside_range: float | None = None
    #: float target rows (same shape as a 2-d input, width >= 2): all, one-hot (one 1, else 0), multi-hot (>= two 1s)
    target_rows: int = 0
    onehot_rows: int = 0
    multihot_rows: int = 0
    #: integer class targets outside ``[0, width)`` (``ignore_index`` excluded), and their extremes
    class_targets: int = 0
    classes_out_of_range: int = 0
    class_min: int | None = None
    class_max: int | None = None
    #: the first call's loss (per element, as with ``reduction="mean"``), its step, and the loss a uniform
    #: prediction scores on the same targets with the same arguments (``UNIFORM_INPUT``)
    first_loss: float | None = None
    first_loss_step: int | None = None
    uninformed_loss: float | None = None
    #: for a regression loss, the loss the best constant prediction scores on a batch's targets, averaged over the
    #: sampled calls: their mean per output for ``mse_loss`` (the targets' variance), their median for the others
    #: (``l1_loss``'s minimizer; a robust centre for smooth L1 / Huber): what a model that learned nothing of its
    #: input scores (per element, as ``first_loss``)
    constant_loss: float | None = None
    #: the largest input value seen (log-probabilities for nll_loss are <= 0)
    input_max: float | None = None



#: values per float64 temporary in the per-row computations below (2 MiB): the rows go through in chunks of
#: whole rows, so a sampled loss call over a large vocabulary (GPT-2: 64 x 50257 logits) makes no float64
#: copy of the whole input (its temporaries would stay behind as heap the process keeps)
ROW_CHUNK_VALUES = 1 << 18


def row_chunks(x: torch.Tensor, cdim: int):
    """Views of ``x`` along dim 0, whole rows (the class dim ``cdim``) each, about ``ROW_CHUNK_VALUES``
    values apiece; ``x`` itself when it is one row (``cdim == 0``) or small."""
    if cdim == 0 or x.numel() <= ROW_CHUNK_VALUES:
        return (x,)
    rows = max(1, ROW_CHUNK_VALUES * len(x) // x.numel())
    return x.split(rows, dim=0)


def gradient_scale(p: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``||g_actual|| / ||g_logits||`` when the rows ``p`` are probabilities already (a device scalar).

    Had the logits z with ``p = softmax(z)`` gone to ``cross_entropy``, d loss / d z = p - y. Through the
    extra softmax the gradient reaching z is ``J(p) (softmax(p) - y)`` for ``cross_entropy`` (which
    applies log_softmax to p) and ``J(p) (-y)`` for ``nll_loss`` (which takes p as log-probabilities),
    with the softmax Jacobian ``J(p) v = p * v - p (p . v)`` (entries at most 1/4, vanishing as p saturates).
    Computed in float64 over chunks of whole rows (:func:`row_chunks`), the two squared norms summed.
    """
    actual_sq = base_sq = p.new_zeros((), dtype=torch.float64)
    chunks = row_chunks(p, 1)
    for pc, tc in zip(chunks, target.split(len(chunks[0]), dim=0)):
        pc = pc.double()
        valid = (tc >= 0) & (tc < pc.shape[1])
        y = torch.zeros_like(pc).scatter_(1, tc.clamp(0, pc.shape[1] - 1).unsqueeze(1), 1.0) * valid.unsqueeze(1)
        v = (torch.softmax(pc, 1) - y) if kind == "cross_entropy" else -y
        actual = pc * v - pc * (pc * v).sum(1, keepdim=True)
        actual_sq = actual_sq + actual.square().sum()
        base_sq = base_sq + (pc - y).square().sum()
    return actual_sq.sqrt() / base_sq.sqrt().clamp_min(1e-30)


def per_element_count(kind: str, x: torch.Tensor, target: torch.Tensor) -> int:
    """How many terms ``reduction="sum"`` adds up: one per class target for (N)LL, one per value otherwise."""
    if kind in ("cross_entropy", "nll_loss"):
        if not target.dtype.is_floating_point:
            return max(1, target.numel())
        classes = x.shape[1] if x.dim() >= 2 else 1
        return max(1, target.numel() // max(1, classes))
    return max(1, math.prod(torch.broadcast_shapes(x.shape, target.shape)))


def _extreme_or_none(value: float | None, count: int) -> int | None:
    """An integer extreme, None when nothing valid was seen (the dtype's sentinel survives as |v| >= 2^31 - 1)."""
    if value is None or not count or abs(value) >= 2 ** 31 - 1:
        return None
    return int(value)


class LossCalls:
    """Accumulates :data:`LOSSES` calls; ``to_stats()`` -> the loss and target fields of ``LoopStats``."""

    def __init__(self) -> None:
        self.losses: dict[str, dict] = {}
        self.batches = self.values = 0
        self.dev: dict[str, torch.Tensor] = {}
        # the window from the end of a sampled forward to its backward: the model output's shape and producer,
        # whether a loss function was called, and a hand-written loss's target candidate (kept to the backward)
        self._out_shape: tuple | None = None
        self._out_source: str | None = None
        self._library_call = False
        self._candidate: torch.Tensor | None = None

    def start_window(self, output: torch.Tensor | None) -> None:
        """A sampled forward ended with ``output`` (its first float tensor, or None): a new loss window."""
        self._out_shape = tuple(output.shape) if output is not None and output.dim() >= 1 else None
        self._out_source = producer(output) if self._out_shape is not None else None
        self._library_call, self._candidate = False, None

    @property
    def seeking_target(self) -> bool:
        """Whether an arithmetic op may still show a hand-written loss's target in this window."""
        return self._out_shape is not None and not self._library_call and self._candidate is None

    def arithmetic(self, args: tuple) -> None:
        """An arithmetic op between a tensor on the graph (of the output's size) and a float tensor off it, with
        the output's batch size, that does not enlarge the graph tensor: the first one is the target candidate."""
        if len(args) < 2 or not all(isinstance(a, torch.Tensor) for a in args[:2]):
            return
        a, b = args[0], args[1]
        on, off = (a, b) if a.requires_grad and not b.requires_grad else (b, a) if b.requires_grad and not a.requires_grad \
            else (None, None)
        if on is None or not off.is_floating_point() or off.dim() != on.dim() or off.dim() < 1 or off.numel() < 2:
            return
        numel = math.prod(self._out_shape)
        if on.numel() != numel or off.shape[0] != on.shape[0] or off.shape[0] != self._out_shape[0]:
            return
        try:
            if torch.broadcast_shapes(on.shape, off.shape) != on.shape:
                return
        except RuntimeError:
            return
        self._candidate = off.detach()

    def end_window(self) -> None:
        """At the backward: a window with no loss-function call and a target candidate was a hand-written loss."""
        target, self._candidate = self._candidate, None
        if target is None or self._library_call or self._out_shape is None:
            return
        rec = self.losses.setdefault(HAND_WRITTEN, {"calls": 0, "input_from": {}, "classes": None,
                                                    "shape_mismatches": 0, "input_shape": None, "target_shape": None,
                                                    "broadcast_numel": None, "width": None, "output_range": None,
                                                    "target_values": 0, "range_values": 0, "target_rows": 0,
                                                    "class_targets": 0})
        rec["calls"] += 1
        source = self._out_source
        rec["input_from"][source] = rec["input_from"].get(source, 0) + 1
        rec["width"] = self._out_shape[1] if len(self._out_shape) >= 2 else 1
        t = target.double()
        rec["target_values"] += t.numel()
        self._add(f"{HAND_WRITTEN}.target_sum", t.sum())
        self._add(f"{HAND_WRITTEN}.target_sumsq", (t * t).sum())
        self._extreme(f"{HAND_WRITTEN}.target_min", t.min(), min)
        self._extreme(f"{HAND_WRITTEN}.target_max", t.max(), max)
        lo_hi = OUTPUT_RANGE.get(source)
        if lo_hi is not None:
            rec["output_range"] = list(lo_hi)
            rec["range_values"] += t.numel()
            self._add(f"{HAND_WRITTEN}.outside", ((t < lo_hi[0] - 1e-6) | (t > lo_hi[1] + 1e-6)).sum())

    def observe(self, func, x: torch.Tensor, target: torch.Tensor, kwargs: dict | None = None) -> None:
        """One call ``func(x, target)`` (before it runs; reads only)."""
        kind = LOSSES[func]
        kwargs = kwargs or {}
        self._library_call = True
        rec = self.losses.setdefault(kind, {"calls": 0, "input_from": {}, "classes": None, "shape_mismatches": 0,
                                            "input_shape": None, "target_shape": None, "broadcast_numel": None,
                                            "width": None, "output_range": None, "target_values": 0,
                                            "range_values": 0, "target_rows": 0, "class_targets": 0})
        rec["calls"] += 1
        source = producer(x)
        rec["input_from"][source] = rec["input_from"].get(source, 0) + 1
        x = x.detach()
        target = target.detach()
        if x.numel() and x.dim() >= 1:
            rec["width"] = x.shape[1] if x.dim() >= 2 else 1
            self._head(kind, rec, x, target, source, kwargs)
        if func in REGRESSION:
            if x.shape != target.shape:
                rec["shape_mismatches"] += 1
                if rec["input_shape"] is None:
                    rec["input_shape"], rec["target_shape"] = list(x.shape), list(target.shape)
                    rec["broadcast_numel"] = math.prod(torch.broadcast_shapes(x.shape, target.shape))
            return
        if kind.startswith("binary_cross_entropy") or x.dim() < 1 or not x.numel():
            return
        cdim = 1 if x.dim() >= 2 else 0
        rec["classes"] = x.shape[cdim]
        sum_error = torch.stack([(c.double().sum(cdim) - 1).abs().max() for c in row_chunks(x, cdim)]).max()
        prob = (x.min() >= 0) & (x.max() <= 1) & (sum_error <= PROBABILITY_SUM_TOLERANCE)
        self._add(f"{kind}.probability_rows", prob)
        self._add(f"{kind}.max_probability", torch.where(prob, x.amax(cdim).double().mean(), 0.0))
        if x.dim() == 2 and target.dim() == 1 and not target.dtype.is_floating_point and len(target) == len(x):
            self._add(f"{kind}.gradient_scale", torch.where(prob, gradient_scale(x, target, kind), 0.0))
        if not target.dtype.is_floating_point and not target.is_complex() and target.shape != x.shape:
            self._class_histogram(target.reshape(-1), x.shape[cdim])

    def _head(self, kind: str, rec: dict, x: torch.Tensor, target: torch.Tensor, source: str, kwargs: dict) -> None:
        """The output head against the targets: constant input, target moments and range, one-/multi-hot rows,
        class indices outside [0, C) (device accumulators; no sync)."""
        if len(x) >= 2 and x.dim() >= 1:
            flat = x.reshape(len(x), -1)
            self._add(f"{kind}.constant_inputs", (flat.amax(0) - flat.amin(0)).abs().max() == 0)
        if x.is_floating_point():
            self._extreme(f"{kind}.input_max", x.max(), max)
        if target.is_complex() or not target.numel():
            return
        if target.dtype.is_floating_point:
            t = target.double()
            rec["target_values"] += t.numel()
            self._add(f"{kind}.target_sum", t.sum())
            self._add(f"{kind}.target_sumsq", (t * t).sum())
            self._extreme(f"{kind}.target_min", t.min(), min)
            self._extreme(f"{kind}.target_max", t.max(), max)
            # a binary cross-entropy's targets are probabilities whatever feeds it; a regression's, the producer's range
            lo_hi = (0.0, 1.0) if kind.startswith("binary_cross_entropy") else OUTPUT_RANGE.get(source)
            if lo_hi is not None and kind in LOSSES.values():
                rec["output_range"] = list(lo_hi)
                rec["range_values"] += t.numel()
                self._add(f"{kind}.outside", ((t < lo_hi[0] - 1e-6) | (t > lo_hi[1] + 1e-6)).sum())
            if x.dim() == 2 and target.shape == x.shape and x.shape[1] >= 2:
                binary = ((t == 0) | (t == 1)).all(1)
                ones = (t == 1).sum(1)
                rec["target_rows"] += len(t)
                self._add(f"{kind}.onehot_rows", (binary & (ones == 1)).sum())
                self._add(f"{kind}.multihot_rows", (binary & (ones >= 2)).sum())
            return
        if kind in ("cross_entropy", "nll_loss") and x.dim() >= 1:
            classes = x.shape[1] if x.dim() >= 2 else x.shape[0]
            t = target.reshape(-1)
            ignore = kwargs.get("ignore_index", -100)
            valid = t != ignore
            rec["class_targets"] += t.numel()
            self._add(f"{kind}.classes_out_of_range", (valid & ((t < 0) | (t >= classes))).sum())
            info = torch.iinfo(t.dtype)
            self._extreme(f"{kind}.class_min", torch.where(valid, t, t.new_full((), info.max)).min(), min)
            self._extreme(f"{kind}.class_max", torch.where(valid, t, t.new_full((), info.min)).max(), max)

    def result(self, func, out, args: tuple, kwargs: dict, step: int) -> None:
        """After the call: keep the first call's loss and the loss of a uniform prediction on the same targets; for
        a regression loss, on every sampled call, the loss of the best constant prediction on its targets."""
        kind = LOSSES[func]
        if not isinstance(out, torch.Tensor) or not out.numel():
            return
        x, target = args[0].detach(), args[1].detach()
        scale = 1.0 / per_element_count(kind, x, target) if kwargs.get("reduction", "mean") == "sum" else 1.0
        if func in REGRESSION and target.shape == x.shape and target.is_floating_point() and target.dim() >= 1 \
                and len(target) >= 2:
            flat = target.reshape(len(target), -1)
            centre = flat.mean(0) if kind == "mse_loss" else flat.median(0).values
            with torch.no_grad():
                best = func(centre.expand_as(flat).reshape(target.shape), target, *args[2:], **kwargs)
            self._add(f"{kind}.constant_loss_sum", best.detach().double().mean() * scale)
            self._add(f"{kind}.constant_loss_calls", torch.ones((), dtype=torch.float64, device=target.device))
        if f"{kind}.first_loss" in self.dev:
            return
        uniform = UNIFORM_INPUT[kind]
        if uniform == "zeros":
            u = torch.zeros_like(x)
        elif uniform == "half":
            u = torch.full_like(x, 0.5)
        else:
            c = x.shape[1] if x.dim() >= 2 else x.shape[0]
            u = torch.full_like(x, -math.log(c))
        with torch.no_grad():
            base = func(u, target, *args[2:], **kwargs)
        self.dev[f"{kind}.first_loss"] = out.detach().double().mean() * scale
        self.dev[f"{kind}.uninformed_loss"] = base.detach().double().mean() * scale
        self.losses[kind]["first_loss_step"] = step

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

    def _extreme(self, key: str, value: torch.Tensor, pick) -> None:
        v = value.double()
        cur = self.dev.get(key)
        self.dev[key] = v if cur is None else (torch.minimum(cur, v) if pick is min else torch.maximum(cur, v))

    def to_stats(self) -> dict:
        """``losses``, ``target_batches``, ``targets_per_batch``, ``distinct_classes_per_batch``, ``class_counts``."""
        dev = {k: v.cpu().tolist() for k, v in self.dev.items()}
        losses = {}
        for kind, r in self.losses.items():
            prob = int(dev.get(f"{kind}.probability_rows", 0))
            n = r["target_values"]
            mean = dev[f"{kind}.target_sum"] / n if n else None
            var = max(0.0, dev[f"{kind}.target_sumsq"] / n - mean * mean) if n else None
            ct = r["class_targets"]
            losses[kind] = LossCallStats(
                calls=r["calls"], input_from=dict(r["input_from"]), classes=r["classes"], probability_rows=prob,
                max_probability=dev[f"{kind}.max_probability"] / prob if prob else None,
                gradient_scale=dev[f"{kind}.gradient_scale"] / prob if prob and f"{kind}.gradient_scale" in dev else None,
                shape_mismatches=r["shape_mismatches"], input_shape=r["input_shape"],
                target_shape=r["target_shape"], broadcast_numel=r["broadcast_numel"],
                width=r["width"], constant_inputs=int(dev.get(f"{kind}.constant_inputs", 0)),
                target_values=n, target_mean=mean, target_var=var,
                target_min=dev[f"{kind}.target_min"] if n else None,
                target_max=dev[f"{kind}.target_max"] if n else None,
                output_range=r["output_range"],
                targets_outside_range=dev[f"{kind}.outside"] / r["range_values"] if r["range_values"] else None,
                target_rows=r["target_rows"], onehot_rows=int(dev.get(f"{kind}.onehot_rows", 0)),
                multihot_rows=int(dev.get(f"{kind}.multihot_rows", 0)), class_targets=ct,
                classes_out_of_range=int(dev.get(f"{kind}.classes_out_of_range", 0)),
                class_min=_extreme_or_none(dev.get(f"{kind}.class_min"), ct),
                class_max=_extreme_or_none(dev.get(f"{kind}.class_max"), ct),
                first_loss=dev.get(f"{kind}.first_loss"), first_loss_step=r.get("first_loss_step"),
                uninformed_loss=dev.get(f"{kind}.uninformed_loss"),
                constant_loss=(dev[f"{kind}.constant_loss_sum"] / dev[f"{kind}.constant_loss_calls"]
                               if dev.get(f"{kind}.constant_loss_calls") else None), input_max=dev.get(f"{kind}.input_max"))
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
            self.probe.loss_calls.end_window()
            return self.probe.backward(func, args, kwargs)
        if func in ARITHMETIC and self.probe.loss_calls.seeking_target:
            self.probe.loss_calls.arithmetic(args)
            return func(*args, **kwargs)
        if func in LOSSES and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]):
            calls = self.probe.loss_calls
            calls.observe(func, args[0], args[1], kwargs)
            out = func(*args, **kwargs)
            calls.result(func, out, args, kwargs, self.probe.ctx.step)
            return out
        return func(*args, **kwargs)
