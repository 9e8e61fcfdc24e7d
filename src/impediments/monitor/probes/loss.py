"""The loss: what the user records with ``mon.record_loss(loss)``, or the loss of each step's first
``loss.backward()`` when the user records none.

Per window: the sum, count, minimum, first and last loss (host floats on CPU, where reading a scalar
costs nothing; float64 device tensors elsewhere, never read in a hook). A non-finite loss is reported
to the first-non-finite tracker. While ``watch()`` is open, ``torch.Tensor.backward`` is wrapped (and
restored on exit, as ``clip_grad_norm_`` is by the loop probe) so that a loop without ``record_loss``
still has its loss recorded: one value per step, from the first backward of a scalar loss. The first
explicit ``record_loss`` call switches that off for the rest of the run and drops what it recorded, so
a loss is never counted twice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from impediments.monitor.probes.base import Probe
from impediments.monitor.state.bag import Field


@dataclass
class LossStats:
    """Recorded losses (``Monitor.record_loss``, or each step's first backward)."""

    count: int
    first: float
    last: float
    min: float
    window_means: list[float]
    first_nonfinite_step: int | None


class LossProbe(Probe):
    """Losses per window (see the module docstring)."""

    key = "loss"
    SUM = Field("sum", "sum")
    MIN = Field("min", "min")
    FIRST = Field("first", "first")
    LAST = Field("last", "last")
    COUNT = Field("count", "count")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.meta = {"source": None}       # "record_loss" or "backward" (None: nothing recorded)
        self._bag = None                   # (step, the loss bag of its window)
        self._original_backward = None
        self._installed = None
        self._auto_step = -1
        self._activity = (-1, -1)          # (training forwards, steps) at the last automatic record

    # --------------------------------------------------------------------- automatic recording
    def attach(self) -> list:
        self._original_backward = torch.Tensor.backward
        original, probe = self._original_backward, self

        def backward(tensor, *args, **kwargs):
            probe.backward_seen(tensor)
            return original(tensor, *args, **kwargs)

        backward.__doc__, backward.__wrapped__ = original.__doc__, original
        self._installed = backward
        torch.Tensor.backward = backward
        return []

    def detach(self) -> None:
        if self._installed is not None and torch.Tensor.backward is self._installed:
            torch.Tensor.backward = self._original_backward   # (a watch() entered later restores its own)
        self._installed = self._original_backward = None

    def backward_seen(self, loss: torch.Tensor) -> None:
        """A ``backward()`` starts: record its loss if it is the step's first, the user records none, and
        the watched model ran (a forward or an optimizer step) since the last record: a backward through
        another model (a second network, or any code after a monitor that was never closed) is not its loss."""
        ctx = self.ctx
        if self.meta["source"] == "record_loss" or ctx.model is None:
            return
        activity = (ctx.training_forwards, ctx.steps)
        step = ctx.step if ctx.training_forwards else ctx.steps
        if (loss.numel() != 1 or not loss.is_floating_point() or self._auto_step == step
                or activity == self._activity):
            return
        self._auto_step, self._activity = step, activity
        self.meta["source"] = "backward"
        self._record(loss)

    # --------------------------------------------------------------------- explicit recording
    def record(self, loss) -> None:
        """``Monitor.record_loss``: the first call drops what automatic recording kept."""
        if self.meta["source"] != "record_loss":
            if self.meta["source"] == "backward":
                for _, _, st in self.ctx.windows.all():
                    st.pop((self.key, ""), None)
                self._bag = None
            self.meta["source"] = "record_loss"
        self._record(loss)

    def _record(self, loss) -> None:
        if not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss))
        ctx = self.ctx
        step = ctx.step if ctx.training_forwards else ctx.steps   # (a model whose forward no hook sees)
        if self._bag is None or self._bag[0] != step:
            self._bag = (step, ctx.windows.at(step).bag(self.key, ""))
        bag = self._bag[1]
        bag.count(self.COUNT)
        if loss.is_cpu:                     # host floats: reading a CPU scalar costs nothing
            n = loss.numel()
            f = loss.item() if n == 1 else float(loss.detach().reshape(-1)[0]) if n else float(loss.detach().sum())
            h = bag.h
            if self.SUM.name in h:
                h[self.SUM.name] += f
                h[self.MIN.name] = min(h[self.MIN.name], f)
                h[self.LAST.name] = f
            else:
                for fld in (self.SUM, self.MIN, self.FIRST, self.LAST):
                    bag.addf(fld, f)
            if not math.isfinite(f) and "loss" not in ctx.nonfinite.first:
                ctx.nonfinite.first["loss"] = (step, ctx.nonfinite.code("loss"))
            return
        v = (loss.detach().reshape(-1)[0] if loss.numel() else loss.detach().sum()).double()
        for fld in (self.SUM, self.MIN, self.FIRST, self.LAST):
            bag.add(fld, v)
        ctx.nonfinite.update("loss", ~torch.isfinite(v), step, "loss")

    # --------------------------------------------------------------------- reading
    def _mean(self, bag) -> float:
        return bag.get(self.SUM) / bag.read(self.COUNT)

    def stats(self, total, windows) -> dict:
        bags = [st[(self.key, "")] for _, _, st in windows if (self.key, "") in st]
        if not bags:
            return {"loss": None}
        merged = bags[0].copy()
        for b in bags[1:]:
            merged.merge(b)
        nf = self.ctx.nonfinite
        first = nf.result()
        step = nf.step_of("loss")
        if step is None and first is not None and first[1] == "loss":
            step = first[0]
        return {"loss": LossStats(count=merged.read(self.COUNT), first=merged.get(self.FIRST),
                                  last=merged.get(self.LAST), min=merged.get(self.MIN),
                                  window_means=[self._mean(b) for b in bags], first_nonfinite_step=step)}

    def window(self, st, w) -> None:
        bag = st.get((self.key, ""))
        w.loss_mean = self._mean(bag) if bag is not None else None

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        mine["source"] = mine.get("source") or other.get("source")
