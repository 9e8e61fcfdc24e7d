"""Linear-binned histograms of each activation's output on one training step, for the playground.

The monitor's histograms use signed-log bins (any magnitude, mergeable); the module's
depth-distribution picture (Glorot & Bengio 2010, fig. 6) uses a linear axis, where a saturated
sigmoid shows as two piles at 0 and 1. :class:`ActivationCapture` is a scoped resource: it hooks
the activation modules on entry and removes every hook on exit, exceptions included; the counts
are detached CPU tensors, one ``torch.histc`` per layer.

Range: bounded activations use their output range (sigmoid ``[0, 1]``, tanh ``[-1, 1]``, ...);
unbounded ones a symmetric (or, if nothing is negative, one-sided) range fixed from the first
capture of a run to a round number above the 99.5th percentile of ``|a|``, so histograms of one run
stay comparable over time; values beyond it are counted in the outer bins.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from impediments.activations.catalog import OUTPUT_RANGE, module_kind

BINS = 40


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^k not below ``x`` (1 for zero or non-finite ``x``)."""
    if not math.isfinite(x) or x <= 0:
        return 1.0
    k = math.floor(math.log10(x))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10 ** k >= x * (1 - 1e-9):
            return m * 10 ** k
    return 10.0 ** (k + 1)


class ActivationCapture:
    """``with ActivationCapture(model) as cap: model(x)`` then ``cap.histograms(range_)``."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [(n, m, module_kind(m)) for n, m in model.named_modules() if module_kind(m) is not None]
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> "ActivationCapture":
        for name, module, _ in self.layers:
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _hook(self, name: str):
        def hook(module, args, out):
            self.outputs[name] = out.detach().float().reshape(-1)
        return hook

    def value_range(self) -> tuple[float, float]:
        """The histogram range of this capture (see the module docstring)."""
        kinds = {k for _, _, k in self.layers}
        if kinds and kinds <= set(OUTPUT_RANGE):
            return min(OUTPUT_RANGE[k][0] for k in kinds), max(OUTPUT_RANGE[k][1] for k in kinds)
        values = [v[torch.isfinite(v)] for v in self.outputs.values()]
        values = [v for v in values if v.numel()]
        if not values:
            return -1.0, 1.0
        top = nice_ceiling(max(float(torch.quantile(v.abs()[:100_000], 0.995)) for v in values))
        negative = any(float(v.min()) < -1e-3 * top for v in values)
        return (-top if negative else 0.0), top

    def histograms(self, value_range: tuple[float, float]) -> dict:
        """``{"layers", "edges", "counts", "scale": "linear"}``; values beyond the range count in the outer bins."""
        lo, hi = value_range
        names, counts = [], []
        for name, _, _ in self.layers:
            v = self.outputs.get(name)
            if v is None:
                continue
            v = v[torch.isfinite(v)].clamp(lo, hi)
            names.append(name)
            counts.append([int(c) for c in torch.histc(v, BINS, lo, hi).tolist()])
        edges = [lo + (hi - lo) * i / BINS for i in range(BINS + 1)]
        return {"layers": names, "edges": edges, "counts": counts, "scale": "linear"}
