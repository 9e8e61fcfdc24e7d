"""The model's input: per-feature moments and extremes of the first floating tensor it is called with.

Recorded on full steps (the data's moments are stationary: a window statistic, see
:mod:`~impediments.monitor.schedule`), one ``(N, features)`` reduction per forward. The doctor reads
them for zero-centred and equally scaled inputs (LeCun et al. 1998, *Efficient BackProp*). What the
probe cannot describe (sparse, nested, integer-only or keyword-only inputs) it names under "not checked".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from impediments.monitor.probes.base import Probe
from impediments.monitor.state.bag import Field
from impediments.monitor.state.moments import batch_moments


@dataclass
class InputStats:
    """Per-feature (flattened) mean and population variance of the model's first tensor input."""

    count: int
    mean: list[float]
    var: list[float]
    #: per-feature smallest and largest value seen (empty in documents written before they were kept)
    min: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)
    #: one example's shape (``[C, H, W]`` for images); the features above are its flattened values
    shape: list[int] = field(default_factory=list)


def tensor_inputs(args, kwargs) -> list[tuple[str, torch.Tensor]]:
    """``(where, tensor)`` of every tensor among a call's arguments, looking inside lists, tuples and dicts
    (``"args[0]"``, ``"args[1][0]"``, ``"kwargs['mask']"``), in argument order."""
    out: list = []

    def walk(where: str, a) -> None:
        if isinstance(a, torch.Tensor):
            out.append((where, a))
        elif isinstance(a, (list, tuple)):
            for i, v in enumerate(a):
                walk(f"{where}[{i}]", v)
        elif isinstance(a, dict):
            for k, v in a.items():
                walk(f"{where}[{k!r}]", v)

    for i, a in enumerate(args):
        walk(f"args[{i}]", a)
    for k, v in kwargs.items():
        walk(f"kwargs[{k!r}]", v)
    return out


def describable(x: torch.Tensor) -> bool:
    """A dense floating tensor with a batch dimension and values: what per-feature moments can describe."""
    return x.layout == torch.strided and x.is_floating_point() and x.dim() >= 1 and x.numel() > 0


class InputProbe(Probe):
    """Per-feature moments of the model's input (see the module docstring)."""

    key = "input"
    #: per feature: count, mean, M2, min, max, non-finite (a moments state along the batch)
    X = Field("x", "moments")

    def record(self, args, kwargs) -> None:
        """At the start of a full forward: fold the first describable tensor input; name the others."""
        tensors = tensor_inputs(args, kwargs)
        x = next((t for _, t in tensors if describable(t)), None)
        self._not_described(tensors, x)
        if x is None:
            return
        rows = x.reshape(len(x), -1) if x.dim() > 1 else x.reshape(-1, 1)
        self.ctx.state().bag(self.key, "").add(self.X, batch_moments(rows, dim=0))
        self.meta["shape"] = list(x.shape[1:])

    def _not_described(self, tensors: list, described) -> None:
        """Say once which inputs are not described, and why (never a crash on an unusual input)."""
        if self.meta.get("reported"):
            return
        self.meta["reported"] = True
        others = [(w, t) for w, t in tensors if t is not described]
        reasons = []
        for where, t in others:
            if t.layout != torch.strided:
                reasons.append(f"{where} is a {str(t.layout).replace('torch.', '')} tensor")
            elif not t.is_floating_point():
                reasons.append(f"{where} holds {str(t.dtype).replace('torch.', '')} values")
            else:
                reasons.append(f"{where} (only the first floating input is described)")
        if described is None and not tensors:
            reasons.append("the model was called without a tensor argument")
        if reasons:
            self.ctx.not_checked["inputs"] = ("input statistics describe the first dense floating tensor only; "
                                              "not described: " + "; ".join(reasons[:6])
                                              + (f" and {len(reasons) - 6} more" if len(reasons) > 6 else ""))

    def stats(self, total, windows) -> dict:
        bag = total.get((self.key, ""))
        m = bag.read(self.X) if bag is not None else None
        if m is None:
            return {"inputs": None}
        m = m.cpu()
        n = m[0]
        return {"inputs": InputStats(count=int(n.max()), mean=m[1].tolist(), var=(m[2] / n.clamp_min(1)).tolist(),
                                     min=m[3].tolist(), max=m[4].tolist(), shape=list(self.meta.get("shape") or []))}

    @staticmethod
    def merge_meta(mine: dict, other: dict) -> None:
        if not mine.get("shape") and other.get("shape"):
            mine["shape"] = other["shape"]
