"""The model's output head: what produced the watched model's output, and whether it varies at all.

On each sampled training forward, the first tensor the model returns (a tensor, or the first of a tuple,
list or dict) is read: its width (dim 1, or 1 for a 1-d output), the autograd node that produced it,
looked for behind view/reshape/squeeze nodes (:func:`~impediments.monitor.probes.loop.loss_calls.producer`),
whether it was the same for every example of the batch (a softmax over one unit outputs 1.0 for every
input, whatever the weights), and the fraction of its values exactly zero (a ReLU output head, or a
dropout applied to the logits: the model's last leaf module is also kept, with its dropout rate). This
sees the head even when the loss is written by hand (a Keras-style ``-(y log p).mean()``), where no
loss-function call reveals it. Values stay in device tensors until :meth:`OutputProbe.stats`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from impediments.monitor import sharding
from impediments.monitor.hooks.portable import PortableHook
from impediments.monitor.probes.base import Probe
from impediments.monitor.probes.loop.loss_calls import producer


@dataclass
class OutputStats:
    """The watched model's output on sampled training forwards.

    ``produced_by`` counts the autograd node behind the output (through view ops); ``constant_forwards``
    counts forwards (of batches of two or more) whose output was identical for every example;
    ``zero_fraction`` is the mean fraction of output values exactly 0.
    """

    forwards: int
    width: int | None
    shape: list[int] | None
    produced_by: dict[str, int]
    constant_forwards: int
    zero_fraction: float | None
    min: float | None
    max: float | None
    #: the model's last leaf module in registration order (its class name) and, for a dropout, its rate
    last_module: str | None = None
    last_dropout_p: float | None = None
    #: a loss the model computes itself (an output with a scalar ``loss`` and ``logits``, as Hugging Face models
    #: given labels): its value on the first sampled forward, that forward's step, and the logits' last dimension
    model_loss_first: float | None = None
    model_loss_step: int | None = None
    model_loss_classes: int | None = None


def first_tensor(out):
    """The first floating-point tensor with a dimension of a model output (tensor, tuple/list, dict), or None
    (a scalar loss the model returns first is skipped: the logits follow it)."""
    if isinstance(out, torch.Tensor):
        return out if out.is_floating_point() and out.dim() >= 1 else None
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        for item in out:
            t = first_tensor(item) if isinstance(item, (torch.Tensor, tuple, list, dict)) else None
            if t is not None:
                return t
    return None


class OutputProbe(Probe):
    """The model output's producer, width, constancy and zeros (see the module docstring)."""

    key = "output"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.meta = {"forwards": 0, "width": None, "shape": None, "produced_by": {}, "batched": 0}
        self._dev: dict[str, torch.Tensor] = {}

    def attach(self) -> list:
        leaves = [m for m in self.ctx.module.modules() if next(m.children(), None) is None]
        if leaves:
            self.meta["last_module"] = sharding.user_class(leaves[-1]).__name__
            if isinstance(leaves[-1], torch.nn.modules.dropout._DropoutNd):
                self.meta["last_dropout_p"] = float(leaves[-1].p)
        # prepended: it runs before the loop probe arms its loss mode at the end of the forward
        return [self.ctx.model.register_forward_hook(PortableHook(self._post), prepend=True, always_call=True)]

    def _post(self, model, args, out) -> None:
        ctx = self.ctx
        if not model.training or not ctx.sampled:
            return
        if isinstance(out, dict) and "model_loss_first" not in self._dev:
            self._model_loss(out)
        y = first_tensor(out)
        if y is None or not y.numel() or y.dim() < 1 or y.layout != torch.strided:
            return
        meta = self.meta
        meta["forwards"] += 1
        name = producer(y)
        meta["produced_by"][name] = meta["produced_by"].get(name, 0) + 1
        meta["width"] = y.shape[1] if y.dim() >= 2 else 1
        if meta["shape"] is None:
            meta["shape"] = list(y.shape)
        y = y.detach()
        if len(y) >= 2:
            # over the batch dimension of y itself: a reshape of a non-contiguous output (logits transposed to
            # (N, vocabulary, T)) was a copy of it, and aminmax plus in-place ops leave two temporaries of one
            # example's size instead of four (mid-sized ones stay in glibc's heap: docs/benchmarks.md)
            meta["batched"] += 1
            lo, hi = torch.aminmax(y, dim=0)
            self._add("constant", hi.sub_(lo).abs_().max() == 0)
        # an exact int64 count over the numel, bit-equal to the mean of a float64 copy without making one (a copy
        # of the logits: 2 x 64 x 50257 float64 is 49 MiB at GPT-2's vocabulary, 6.1 GiB at 8 x 2048 tokens)
        self._add("zero_fraction", (y == 0).sum().double() / y.numel())
        self._extreme("min", y.min(), torch.minimum)
        self._extreme("max", y.max(), torch.maximum)

    def _model_loss(self, out: dict) -> None:
        """The model's own loss and its logits' class count, on the first sampled forward that returns them."""
        loss, logits = out.get("loss"), out.get("logits")
        if (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point()
                and isinstance(logits, torch.Tensor) and logits.dim() >= 2):
            self._dev["model_loss_first"] = loss.detach().double().reshape(())
            self.meta["model_loss_step"] = self.ctx.step
            self.meta["model_loss_classes"] = int(logits.shape[-1])

    def _add(self, key: str, value: torch.Tensor) -> None:
        v = value.double()
        self._dev[key] = v if key not in self._dev else self._dev[key] + v

    def _extreme(self, key: str, value: torch.Tensor, pick) -> None:
        v = value.double()
        self._dev[key] = v if key not in self._dev else pick(self._dev[key], v)

    def stats(self, total, windows) -> dict:
        meta = self.meta
        n = meta["forwards"]
        if not n and "model_loss_first" not in self._dev:
            return {"output": None}
        dev = {k: float(v) for k, v in self._dev.items()}
        return {"output": OutputStats(forwards=n, width=meta["width"], shape=meta["shape"],
                                      produced_by=dict(meta["produced_by"]),
                                      constant_forwards=int(dev.get("constant", 0)),
                                      zero_fraction=dev["zero_fraction"] / n if n else None, min=dev.get("min"),
                                      max=dev.get("max"), last_module=meta.get("last_module"),
                                      last_dropout_p=meta.get("last_dropout_p"),
                                      model_loss_first=dev.get("model_loss_first"),
                                      model_loss_step=meta.get("model_loss_step"),
                                      model_loss_classes=meta.get("model_loss_classes"))}
