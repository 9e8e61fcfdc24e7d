"""Mergeable accumulators of sufficient statistics, kept in device tensors.

Moments use Chan et al.'s pairwise update (Chan, Golub & LeVeque 1979, *Updating formulae and a
pairwise algorithm for computing sample variances*): for two parts with counts :math:`n_a, n_b`,
means :math:`\\mu_a, \\mu_b` and centred sums of squares :math:`M_{2,a}, M_{2,b}`,

.. math::
    n = n_a + n_b,\\quad \\delta = \\mu_b - \\mu_a,\\quad
    \\mu = \\mu_a + \\delta \\frac{n_b}{n},\\quad
    M_2 = M_{2,a} + M_{2,b} + \\delta^2 \\frac{n_a n_b}{n}.

A moments state is one float64 tensor of shape ``(6, *shape)`` holding
``[count, mean, M2, min, max, nonfinite]``, so merging, syncing and serialising are one code path.
Histograms count values in fixed signed-log bins (:data:`HIST_EDGES`), identical for every tensor,
so any magnitude fits and histograms add. Nothing here calls ``.item()``: all updates stay on the device.
"""
from __future__ import annotations

import math

import torch

#: decades covered by the signed-log histogram (magnitudes 1e-6 .. 1e6) and bins per decade
HIST_DECADES, HIST_PER_DECADE = (-6, 6), 4
_POS = torch.logspace(HIST_DECADES[0], HIST_DECADES[1], (HIST_DECADES[1] - HIST_DECADES[0]) * HIST_PER_DECADE + 1,
                      dtype=torch.float64)
#: histogram edges: ``-1e6 .. -1e-6, 1e-6 .. 1e6``; the middle bin ``[-1e-6, 1e-6)`` holds exact zeros and
#: values beyond the outer edges are counted in the outer bins (so every finite value is counted).
HIST_EDGES: list[float] = [-v for v in reversed(_POS.tolist())] + _POS.tolist()
HIST_BINS = len(HIST_EDGES) - 1
_INNER = torch.tensor(HIST_EDGES[1:-1], dtype=torch.float32)
_BOUNDARIES: dict[tuple, torch.Tensor] = {}

MOMENT_FIELDS = ("count", "mean", "m2", "min", "max", "nonfinite")


def empty_moments(shape=(), device=None) -> torch.Tensor:
    """The identity of :func:`merge_moments`: count 0, min +inf, max -inf."""
    m = torch.zeros((6, *shape), dtype=torch.float64, device=device)
    m[3], m[4] = float("inf"), float("-inf")
    return m


def batch_moments(x: torch.Tensor, dim=None) -> torch.Tensor:
    """Moments state of ``x`` (over all elements, or over ``dim``), in 4 fused kernels, without a sync.

    Non-finite values are counted in the last row; they also poison mean/var/min/max of that
    batch (as in numpy). On CPU (where reading a scalar costs nothing) the count pass is skipped
    when the mean is finite, since any NaN/Inf would make it non-finite.
    """
    x = x.detach()
    if dim is None:
        n = x.numel()
        var, mean = torch.var_mean(x, correction=0)
        lo, hi = torch.aminmax(x)
        if x.device.type == "cpu" and math.isfinite(float(mean)):
            bad = torch.zeros((), dtype=torch.float64)   # a NaN/Inf would make the mean non-finite
        else:
            bad = n - torch.isfinite(x).sum()
    else:
        n = 1
        for d in (dim if isinstance(dim, tuple) else (dim,)):
            n *= x.shape[d]
        var, mean = torch.var_mean(x, dim=dim, correction=0)
        lo, hi = torch.amin(x, dim=dim), torch.amax(x, dim=dim)
        bad = n - torch.isfinite(x).sum(dim=dim)
    mean = mean.double()
    return torch.stack([torch.full_like(mean, n), mean, var.double() * n, lo.double(), hi.double(), bad.double()])


def merge_moments(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Chan's pairwise merge of two moments states (see module docstring); empty parts are neutral."""
    n = a[0] + b[0]
    delta = b[1] - a[1]
    frac = torch.where(n > 0, b[0] / n.clamp_min(1), torch.zeros_like(n))
    return torch.stack([n, a[1] + delta * frac, a[2] + b[2] + delta * delta * a[0] * frac,
                        torch.minimum(a[3], b[3]), torch.maximum(a[4], b[4]), a[5] + b[5]])


def moments_dict(m: torch.Tensor) -> dict:
    """Host-side ``count, mean, var, min, max, nonfinite`` of a scalar moments state (syncs)."""
    count, mean, m2, lo, hi, bad = m.detach().cpu().tolist()
    nan = float("nan")
    return {"count": int(count), "mean": mean if count else nan, "var": m2 / count if count else nan,
            "min": lo if count else nan, "max": hi if count else nan, "nonfinite": int(bad)}


#: histograms count an evenly strided subsample of at most this many values per tensor and call
#: (``x.flatten()[::ceil(numel / HIST_MAX_VALUES)]``), so a sampled step costs O(1) in the tensor size;
#: moments, counts of non-finite values and unit activity always use every value.
HIST_MAX_VALUES = 1 << 14


def histogram_subsample(x: torch.Tensor) -> torch.Tensor:
    """The values a histogram counts (see :data:`HIST_MAX_VALUES`)."""
    x = x.detach().reshape(-1)
    stride = -(-x.numel() // HIST_MAX_VALUES)
    return x[::stride].contiguous() if stride > 1 else x


def histogram_counts(x: torch.Tensor) -> torch.Tensor:
    """int64 counts of :func:`histogram_subsample` of ``x`` in :data:`HIST_EDGES` bins, plus one last
    slot for non-finite values. One ``bucketize`` and one ``bincount``; shape ``(HIST_BINS + 1,)``.
    """
    x = histogram_subsample(x)
    key = (x.device, x.dtype)
    bounds = _BOUNDARIES.get(key)
    if bounds is None:
        bounds = _BOUNDARIES[key] = _INNER.to(device=x.device, dtype=x.dtype if x.is_floating_point()
                                              else torch.float32)
    idx = torch.bucketize(x, bounds, right=True)   # bins [a, b), as numpy.histogram
    idx = idx.masked_fill(~torch.isfinite(x), HIST_BINS)
    return torch.bincount(idx, minlength=HIST_BINS + 1)


class Bag:
    """A named set of tensors, each with a merge rule (``sum``, ``max``, ``min``, ``moments``, ``first``, ``last``).

    Records (one activation, one parameter, ...) are bags; windows are dicts of bags; merging,
    state_dict and the DDP sync all walk the same fields. Host-side integers (``ints``) add on merge.
    """

    RULES = ("sum", "max", "min", "moments", "last", "first")

    def __init__(self) -> None:
        self.t: dict[str, torch.Tensor] = {}
        self.rule: dict[str, str] = {}
        self.ints: dict[str, int] = {}
        self.h: dict[str, float] = {}       # host floats (CPU fast path), same rules
        self.hrule: dict[str, str] = {}

    def addf(self, name: str, value: float, rule: str) -> None:
        """Fold a host float into field ``name`` (``sum``, ``min``, ``max``, ``first`` or ``last``)."""
        old = self.h.get(name)
        if old is None:
            self.h[name], self.hrule[name] = value, rule
        elif rule == "sum":
            self.h[name] = old + value
        elif rule == "min":
            self.h[name] = min(old, value)
        elif rule == "max":
            self.h[name] = max(old, value)
        elif rule == "last":
            self.h[name] = value

    def get(self, name: str):
        """A field as a host float (from the host or device part), or None."""
        if name in self.h:
            return self.h[name]
        t = self.t.get(name)
        return None if t is None else float(t)

    def add(self, name: str, value: torch.Tensor, rule: str) -> None:
        """Fold ``value`` into field ``name`` with ``rule`` (no host sync)."""
        old = self.t.get(name)
        if old is None:
            self.t[name], self.rule[name] = value.detach().clone() if rule == "last" else value.detach(), rule
        else:
            self.t[name] = _combine(old, value.detach(), rule)

    def count(self, name: str, k: int = 1) -> None:
        self.ints[name] = self.ints.get(name, 0) + k

    def merge(self, other: "Bag") -> "Bag":
        """Fold ``other`` (a later part of the stream, or another process) into ``self``."""
        for name, value in other.t.items():
            self.add(name, value, other.rule[name])
        for name, k in other.ints.items():
            self.count(name, k)
        for name, v in other.h.items():
            self.addf(name, v, other.hrule[name])
        return self

    def copy(self) -> "Bag":
        b = Bag()
        b.t, b.rule, b.ints = {k: v.clone() for k, v in self.t.items()}, dict(self.rule), dict(self.ints)
        b.h, b.hrule = dict(self.h), dict(self.hrule)
        return b

    def state(self) -> dict:
        """Plain dict on the host (syncs)."""
        return {"t": {k: v.detach().cpu() for k, v in self.t.items()}, "rule": dict(self.rule),
                "ints": dict(self.ints), "h": dict(self.h), "hrule": dict(self.hrule)}

    @classmethod
    def from_state(cls, d: dict, device=None) -> "Bag":
        b = cls()
        b.t = {k: torch.as_tensor(v).to(device) for k, v in d["t"].items()}
        b.rule, b.ints = dict(d["rule"]), dict(d["ints"])
        b.h, b.hrule = dict(d.get("h", {})), dict(d.get("hrule", {}))
        unknown = set(b.rule.values()) - set(cls.RULES)
        if unknown:
            raise ValueError(f"unknown merge rule(s) {sorted(unknown)}; valid: {list(cls.RULES)}")
        return b

    def tensors(self) -> int:
        return len(self.t)

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.t.values())


def _combine(old: torch.Tensor, new: torch.Tensor, rule: str) -> torch.Tensor:
    if rule == "sum":
        if old.shape != new.shape:  # e.g. a layer seen with more units later: pad (never shrinks)
            old, new = _pad_to(old, new)
        return old + new
    if rule == "max":
        return torch.maximum(old, new)
    if rule == "min":
        return torch.minimum(old, new)
    if rule == "moments":
        return merge_moments(old, new)
    if rule == "last":
        return new.clone()
    if rule == "first":
        return old
    raise ValueError(f"unknown merge rule {rule!r}; valid: {list(Bag.RULES)}")


def _pad_to(a: torch.Tensor, b: torch.Tensor):
    n = max(a.shape[0], b.shape[0])
    pad = lambda t: torch.cat([t, t.new_zeros((n - t.shape[0], *t.shape[1:]))]) if t.shape[0] < n else t  # noqa
    return pad(a), pad(b)
