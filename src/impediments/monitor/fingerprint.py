"""Fingerprints of parameters and inputs: a few reductions that change whenever the values do."""
from __future__ import annotations

import torch

#: values fingerprinted per tensor (a strided sample)
FINGERPRINT_VALUES = 4096


def fingerprints(params: list) -> torch.Tensor | None:
    """Per parameter ``[norm, sum, ramp-weighted sum of a strided sample]``: an ``(N, 3)`` tensor, not read here.

    The norm alone misses updates orthogonal to the weight (a layer followed by BatchNorm is scale
    invariant: its gradient is orthogonal to it and its norm changes only at second order, below float32
    resolution), and the sum misses them too for a vector of ones (BatchNorm's initial weight); the
    ramp-weighted sample does not. Read on entry and exit only, never per step.
    """
    out = []
    for p in params:
        flat = p.detach().reshape(-1)
        s = flat[:: max(1, -(-flat.numel() // FINGERPRINT_VALUES))].double()
        ramp = torch.arange(1, len(s) + 1, dtype=torch.float64, device=s.device)
        out.append(torch.stack([flat.double().norm(), flat.double().sum(), (s * ramp).sum()]))
    return torch.stack([t.to(out[0].device) for t in out]) if out else None
