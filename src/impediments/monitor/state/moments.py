"""Mergeable moments ``[count, mean, M2, min, max, nonfinite]`` in float64 device tensors.

Chan et al.'s pairwise update (Chan, Golub & LeVeque 1979, *Updating formulae and a pairwise
algorithm for computing sample variances*): for two parts with counts :math:`n_a, n_b`, means
:math:`\\mu_a, \\mu_b` and centred sums of squares :math:`M_{2,a}, M_{2,b}`,

.. math::
    n = n_a + n_b,\\quad \\delta = \\mu_b - \\mu_a,\\quad
    \\mu = \\mu_a + \\delta \\frac{n_b}{n},\\quad
    M_2 = M_{2,a} + M_{2,b} + \\delta^2 \\frac{n_a n_b}{n},

and its K-part form (:func:`fold_moments`). A state is one tensor of shape ``(6, *shape)``, so
merging, syncing and serialising are one code path. Nothing here calls ``.item()`` off the CPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MOMENT_FIELDS = ("count", "mean", "m2", "min", "max", "nonfinite")


def to_device(values, dtype, device) -> torch.Tensor:
    """A small host list as a tensor on ``device`` without waiting for the device: a plain copy
    from pageable memory blocks until the stream drains, so CUDA gets a pinned, non-blocking copy."""
    t = torch.tensor(values, dtype=dtype)
    device = torch.device(device) if device is not None else t.device
    if device.type == "cpu":
        return t
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def empty_moments(shape=(), device=None) -> torch.Tensor:
    """The identity of :func:`merge_moments`: count 0, min +inf, max -inf."""
    m = torch.zeros((6, *shape), dtype=torch.float64, device=device)
    m[3], m[4] = float("inf"), float("-inf")
    return m


class Batch:
    """Moments of one tensor before folding: ``n`` (int), ``v = [mean, var, min, max]`` and ``bad``
    (the non-finite count). On CPU ``v`` is a tuple of host floats and ``bad`` an int (reading a CPU
    scalar costs nothing, and host arithmetic is cheaper than tiny kernels); elsewhere ``v`` is one
    stacked device tensor and ``bad`` a device tensor."""

    __slots__ = ("n", "v", "bad")

    def __init__(self, n, v, bad) -> None:
        self.n, self.v, self.bad = n, v, bad

    def values(self, device=None) -> torch.Tensor:
        """``v`` as a float64 tensor ``(4, *shape)``."""
        if isinstance(self.v, tuple):
            return torch.tensor(self.v, dtype=torch.float64, device=device)
        return self.v.double()

    def state(self) -> torch.Tensor:
        """The ``(6, *shape)`` float64 moments state."""
        v = self.values()
        bad = torch.as_tensor(self.bad, dtype=torch.float64, device=v.device).expand_as(v[0])
        n = torch.full_like(v[0], self.n)
        return torch.stack([n, v[0], v[1] * n, v[2], v[3], bad])

    @property
    def finite(self) -> bool | None:
        """``True``/``False`` when known on the host (CPU), else ``None``."""
        return (self.bad == 0) if isinstance(self.bad, int) else None


#: one-pass variance on CPU only while ``mean^2 <= ONE_PASS_MAX_RATIO * mean(x^2)``: the cancellation in
#: ``mean(x^2) - mean^2`` then amplifies the rounding of ``mean(x^2)`` at most ``1 / (1 - ratio)`` = 2 times
ONE_PASS_MAX_RATIO = 0.5


def batch_moments(x: torch.Tensor, dim=None, out: torch.Tensor | None = None, extremes: bool = True) -> Batch:
    """Moments of ``x`` (over all elements, or over ``dim``), no device sync.

    On CPU, over all elements: :math:`\\mu = \\sum x / n` and :math:`q = x \\cdot x / n` (one BLAS
    ``dot``), then :math:`\\sigma^2 = q - \\mu^2` while :math:`\\mu^2 \\le q / 2` (the cancellation
    at most doubles the rounding of :math:`q`), else the two-pass :math:`\\sum (x-\\mu)^2 / n`, exact
    to rounding even when :math:`|\\mu| \\gg \\sigma`; both are an order of magnitude faster than
    ``torch.var_mean`` there. Elsewhere always two-pass. Non-finite values are counted in ``bad``; they
    also poison mean/var/min/max of that batch (as in numpy). On CPU the count pass is skipped when
    the mean is finite, since any NaN/Inf would make it non-finite. ``out``: optional scratch of ``x``'s
    shape and dtype for :math:`x - \\mu` on CPU (no full-size allocation), or an object whose
    ``like(x)`` gives one (:class:`~impediments.monitor.collectors.Scratch`), asked only when the
    two-pass runs. ``extremes=False`` skips min/max (+inf/-inf, the identity of their merge: not
    measured in this part), for the gradients, whose extremes nothing reads, and the dense steps of
    ``watch(every=1)`` (see ``schedule``).
    """
    if x.requires_grad:
        x = x.detach()
    if not x.is_floating_point():
        x = x.double()
    if dim is not None:
        return _batch_moments_dim(x, dim)
    n = x.numel()
    if x.is_cpu:
        if n == 0:
            return Batch(0, (0.0, 0.0, math.inf, -math.inf), 0)
        mean = float(x.sum()) / n
        var = None
        if x.is_contiguous():
            flat = x.view(-1)
            sq = float(torch.dot(flat, flat)) / n
            if mean * mean <= ONE_PASS_MAX_RATIO * sq and math.isfinite(sq):
                var = sq - mean * mean
        if var is None:
            if out is not None and hasattr(out, "like"):
                out = out.like(x)
            d = (x - mean if out is None or out.shape != x.shape or out.dtype != x.dtype
                 else torch.sub(x, mean, out=out)).reshape(-1)
            var = float(torch.dot(d, d)) / n
        if extremes:
            lo, hi = (float(v) for v in torch.aminmax(x))
        else:
            lo, hi = math.inf, -math.inf
        bad = 0 if math.isfinite(mean) else int(n - torch.isfinite(x).sum())
        return Batch(n, (mean, var, lo, hi), bad)
    mean = x.sum() / max(n, 1)
    d = (x - mean).reshape(-1)
    if extremes:
        lo, hi = torch.aminmax(x)
    else:
        lo, hi = torch.full_like(mean, math.inf), torch.full_like(mean, -math.inf)
    return Batch(n, torch.stack([mean, torch.dot(d, d) / max(n, 1), lo, hi]), n - torch.isfinite(x).sum())


def _batch_moments_dim(x: torch.Tensor, dim) -> Batch:
    n = 1
    for d in (dim if isinstance(dim, tuple) else (dim,)):
        n *= x.shape[d]
    mean = x.mean(dim=dim, keepdim=True)
    d = x - mean
    var = d.mul_(d).mean(dim=dim)
    v = torch.stack([mean.squeeze(dim), var, torch.amin(x, dim=dim), torch.amax(x, dim=dim)])
    if x.device.type == "cpu" and math.isfinite(float(mean.sum())):   # no NaN/Inf anywhere: skip the count
        return Batch(n, v, torch.zeros_like(var))
    return Batch(n, v, n - torch.isfinite(x).sum(dim=dim))


def as_state(m) -> torch.Tensor:
    return m.state() if isinstance(m, Batch) else m


def _fold_batches(batches: list) -> torch.Tensor:
    if all(isinstance(b.v, tuple) for b in batches):          # host floats: one small tensor
        v = torch.tensor([b.v for b in batches], dtype=torch.float64)
    else:
        dev = next(b.v.device for b in batches if not isinstance(b.v, tuple))
        v = torch.stack([b.values(dev) for b in batches])      # (K, 4, ...)
    shape = (-1,) + (1,) * (v.dim() - 2)
    n = to_device([b.n for b in batches], torch.float64, v.device).view(shape)
    bads = [b.bad for b in batches]
    if all(isinstance(b, int) for b in bads):
        bad = torch.full_like(v[0, 0], float(sum(bads)))
    else:
        bad = torch.stack([torch.as_tensor(b, device=v.device).double().expand_as(v[0, 0]) for b in bads]).sum(0)
    total = n.sum(0)
    mean = (n * v[:, 0]).sum(0) / total.clamp_min(1)
    m2 = (n * v[:, 1]).sum(0) + (n * (v[:, 0] - mean) ** 2).sum(0)
    return torch.stack([total.expand_as(mean), mean, m2, v[:, 2].amin(0), v[:, 3].amax(0), bad])


def _fold_states(states: list) -> torch.Tensor:
    s = torch.stack(states)                                    # (K, 6, ...)
    n = s[:, 0]
    total = n.sum(0)
    mean = (n * s[:, 1]).sum(0) / total.clamp_min(1)
    m2 = s[:, 2].sum(0) + (n * (s[:, 1] - mean) ** 2).sum(0)
    return torch.stack([total, mean, m2, s[:, 3].amin(0), s[:, 4].amax(0), s[:, 5].sum(0)])


def fold_moments(state, parts: list) -> torch.Tensor:
    """Fold many parts (:class:`Batch` or states) into ``state`` at once (Chan's K-part form):

    .. math:: n = \\sum n_i,\\ \\mu = \\sum n_i \\mu_i / n,\\
              M_2 = \\sum M_{2,i} + \\sum n_i (\\mu_i - \\mu)^2.
    """
    batches = [p for p in parts if isinstance(p, Batch)]
    states = [p for p in parts if not isinstance(p, Batch)] + ([] if state is None else [state])
    if batches:
        states.append(_fold_batches(batches))
    if len(states) == 1:
        return states[0]
    try:
        return _fold_states(states)
    except RuntimeError:     # shapes differ (per-feature moments of a layer that changed width)
        out = states[0]
        for s in states[1:]:
            out = merge_moments(out, s)
        return out


def merge_moments(a, b) -> torch.Tensor:
    """Chan's pairwise merge of two moments states (see module docstring); empty parts are neutral."""
    a, b = as_state(a), as_state(b)
    n = a[0] + b[0]
    delta = b[1] - a[1]
    frac = torch.where(n > 0, b[0] / n.clamp_min(1), torch.zeros_like(n))
    return torch.stack([n, a[1] + delta * frac, a[2] + b[2] + delta * delta * a[0] * frac,
                        torch.minimum(a[3], b[3]), torch.maximum(a[4], b[4]), a[5] + b[5]])


def moments_dict(m: torch.Tensor) -> dict:
    """Host-side ``count, mean, var, min, max, nonfinite`` of a scalar moments state (syncs)."""
    count, mean, m2, lo, hi, bad = as_state(m).detach().cpu().tolist()
    nan = float("nan")
    return {"count": int(count), "mean": mean if count else nan, "var": m2 / count if count else nan,
            "min": lo if count else nan, "max": hi if count else nan, "nonfinite": int(bad)}


@dataclass
class MomentStats:
    """Chan/Welford-mergeable moments read on the host; ``var`` is the population variance (divides by
    ``count``)."""

    count: int
    mean: float
    var: float
    min: float
    max: float
    nonfinite: int


def moment_stats(m: torch.Tensor | None) -> MomentStats:
    """:class:`MomentStats` of a moments state (an empty one for None)."""
    return MomentStats(**moments_dict(m if m is not None else empty_moments()))
