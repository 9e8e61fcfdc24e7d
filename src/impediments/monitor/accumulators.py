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

MOMENT_FIELDS = ("count", "mean", "m2", "min", "max", "nonfinite")


def empty_moments(shape=(), device=None) -> torch.Tensor:
    """The identity of :func:`merge_moments`: count 0, min +inf, max -inf."""
    m = torch.zeros((6, *shape), dtype=torch.float64, device=device)
    m[3], m[4] = float("inf"), float("-inf")
    return m


class Batch:
    """Moments of one tensor before folding: ``n`` (int), ``v = [mean, var, min, max]`` (one stacked
    tensor, still in the input dtype) and ``bad`` (non-finite count: an int, or a device tensor)."""

    __slots__ = ("n", "v", "bad")

    def __init__(self, n, v, bad) -> None:
        self.n, self.v, self.bad = n, v, bad

    def state(self) -> torch.Tensor:
        """The ``(6, *shape)`` float64 moments state."""
        v = self.v.double()
        bad = torch.as_tensor(self.bad, dtype=torch.float64, device=v.device).expand_as(v[0])
        n = torch.full_like(v[0], self.n)
        return torch.stack([n, v[0], v[1] * n, v[2], v[3], bad])


def batch_moments(x: torch.Tensor, dim=None) -> Batch:
    """Moments of ``x`` (over all elements, or over ``dim``) by the two-pass algorithm, no device sync.

    :math:`\\mu = \\sum x / n`, then :math:`\\sigma^2 = \\sum (x-\\mu)^2 / n` (one BLAS ``dot``):
    exact to rounding even when :math:`|\\mu| \\gg \\sigma`, and on CPU an order of magnitude faster
    than ``torch.var_mean``. Non-finite values are counted in ``bad``; they also poison
    mean/var/min/max of that batch (as in numpy). On CPU (where reading a scalar costs nothing) the
    count pass is skipped when the mean is finite, since any NaN/Inf would make it non-finite.
    """
    x = x.detach()
    if not x.is_floating_point():
        x = x.double()
    if dim is None:
        n = x.numel()
        mean = x.sum() / max(n, 1)
        d = (x - mean).reshape(-1)
        var = torch.dot(d, d) / max(n, 1)
        lo, hi = torch.aminmax(x)
        v = torch.stack([mean, var, lo, hi])
        if x.device.type == "cpu":
            bad = 0 if math.isfinite(float(v[0])) else int(n - torch.isfinite(x).sum())
        else:
            bad = n - torch.isfinite(x).sum()
        return Batch(n, v, bad)
    n = 1
    for d in (dim if isinstance(dim, tuple) else (dim,)):
        n *= x.shape[d]
    mean = x.mean(dim=dim, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dim)
    v = torch.stack([mean.squeeze(dim), var, torch.amin(x, dim=dim), torch.amax(x, dim=dim)])
    return Batch(n, v, n - torch.isfinite(x).sum(dim=dim))


def as_state(m) -> torch.Tensor:
    return m.state() if isinstance(m, Batch) else m


def fold_moments(state, batches: list) -> torch.Tensor:
    """Fold many :class:`Batch` into ``state`` at once (the K-part form of Chan's formula):

    .. math:: n = \\sum n_i,\\ \\mu = \\sum n_i \\mu_i / n,\\
              M_2 = \\sum n_i \\sigma_i^2 + \\sum n_i (\\mu_i - \\mu)^2.
    """
    v = torch.stack([b.v for b in batches]).double()          # (K, 4, ...)
    shape = (-1,) + (1,) * (v.dim() - 2)
    n = torch.tensor([b.n for b in batches], dtype=torch.float64, device=v.device).view(shape)
    bads = [b.bad for b in batches]
    if all(isinstance(b, int) for b in bads):
        bad = torch.full_like(v[0, 0], float(sum(bads)))
    else:
        bad = torch.stack([torch.as_tensor(b, device=v.device).double().expand_as(v[0, 0]) for b in bads]).sum(0)
    total = n.sum(0)
    mean = (n * v[:, 0]).sum(0) / total
    m2 = (n * v[:, 1]).sum(0) + (n * (v[:, 0] - mean) ** 2).sum(0)
    part = torch.stack([total.expand_as(mean), mean, m2, v[:, 2].amin(0), v[:, 3].amax(0), bad])
    return part if state is None else merge_moments(state, part)


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


#: histograms count an evenly strided subsample of at most this many values per tensor and call
#: (``x.flatten()[::ceil(numel / HIST_MAX_VALUES)]``), so a sampled step costs O(1) in the tensor size;
#: moments, counts of non-finite values and unit activity always use every value.
HIST_MAX_VALUES = 1 << 12


def histogram_subsample(x: torch.Tensor) -> torch.Tensor:
    """The values a histogram counts (see :data:`HIST_MAX_VALUES`)."""
    x = x.detach().reshape(-1)
    stride = -(-x.numel() // HIST_MAX_VALUES)
    return x[::stride].contiguous() if stride > 1 else x


def histogram_counts(x: torch.Tensor) -> torch.Tensor:
    """int64 counts of :func:`histogram_subsample` of ``x`` in :data:`HIST_EDGES` bins, plus one last
    slot for non-finite values; shape ``(HIST_BINS + 1,)``. Bins are ``[a, b)`` as in numpy.

    The bin is computed arithmetically, :math:`j = \\lfloor 4 \\log_{10} |x| \\rfloor` (``ceil`` on the
    negative side), then one ``bincount``: several times faster than ``torch.bucketize`` on CPU.
    """
    return histogram_many([histogram_subsample(x).double()])[0]


def histogram_many(parts: list) -> torch.Tensor:
    """Counts of several already-subsampled tensors in one pass: ``(len(parts), HIST_BINS + 1)``.

    The parts are concatenated and each one's bin index is offset by its row, so one chain of
    elementwise kernels and one ``bincount`` serve every activation of a forward pass.
    """
    a = torch.cat(parts) if len(parts) > 1 else parts[0]
    half, lo = (HIST_DECADES[1] - HIST_DECADES[0]) * HIST_PER_DECADE, HIST_DECADES[0] * HIST_PER_DECADE
    tiny = 10.0 ** HIST_DECADES[0]
    scaled = torch.log10(a.abs()) * HIST_PER_DECADE
    pos = (torch.floor(scaled) - lo).clamp(0, half - 1) + (half + 1)
    neg = (half - 1) - (torch.ceil(scaled) - 1 - lo).clamp(0, half - 1)
    idx = torch.where(a >= tiny, pos, torch.where(a < -tiny, neg, torch.full_like(a, half)))
    idx = idx.masked_fill(~torch.isfinite(a), HIST_BINS).long()
    width = HIST_BINS + 1
    if len(parts) > 1:
        sizes = torch.tensor([len(p) for p in parts], device=a.device)
        idx = idx + torch.repeat_interleave(torch.arange(len(parts), device=a.device) * width, sizes)
    return torch.bincount(idx, minlength=width * len(parts)).view(len(parts), width)


class Bag:
    """A named set of tensors, each with a merge rule (``sum``, ``max``, ``min``, ``moments``, ``first``, ``last``).

    Records (one activation, one parameter, ...) are bags; windows are dicts of bags; merging,
    state_dict and the DDP sync all walk the same fields. Host-side integers (``ints``) add on merge.
    """

    RULES = ("sum", "max", "min", "moments", "last", "first")

    #: pending parts folded in one go once this many accumulate (or when read)
    PENDING = 32

    def __init__(self) -> None:
        self._t: dict[str, torch.Tensor] = {}
        self._p: dict[str, list] = {}
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

    @property
    def t(self) -> dict[str, torch.Tensor]:
        """The folded tensors (folds pending parts first)."""
        for name in list(self._p):
            self._fold(name)
        return self._t

    def _fold(self, name: str) -> None:
        parts = self._p.pop(name, None)
        if not parts:
            return
        old = self._t.get(name)
        if self.rule[name] == "moments":
            self._t[name] = fold_moments(old, parts)
            return
        try:
            total = torch.stack(parts).sum(0)
        except RuntimeError:   # shapes differ (a layer seen with more units): fold one by one
            total = parts[0]
            for p in parts[1:]:
                total = _combine(total, p, "sum")
        self._t[name] = total if old is None else _combine(old, total, "sum")

    def add(self, name: str, value, rule: str) -> None:
        """Fold ``value`` (a tensor, or a :class:`Batch` for ``moments``) into field ``name`` (no host sync).

        ``sum`` and ``moments`` parts are queued and folded together (one fused fold per
        :attr:`PENDING` parts), so an update costs no kernel at all.
        """
        if rule in ("sum", "moments"):
            self.rule[name] = rule
            q = self._p.setdefault(name, [])
            q.append(value if isinstance(value, Batch) else value.detach())
            if len(q) >= self.PENDING:
                self._fold(name)
            return
        if isinstance(value, Batch):
            value = value.state()
        old = self._t.get(name)
        if old is None:
            self._t[name], self.rule[name] = value.detach().clone() if rule == "last" else value.detach(), rule
        else:
            self._t[name] = _combine(old, value.detach(), rule)

    def count(self, name: str, k: int = 1) -> None:
        self.ints[name] = self.ints.get(name, 0) + k

    def merge(self, other: "Bag") -> "Bag":
        """Fold ``other`` (a later part of the stream, or another process) into ``self``."""
        for name, value in other.t.items():
            rule = other.rule[name]
            if rule == "moments":
                self._fold(name)
                self.rule[name] = rule
                old = self._t.get(name)
                self._t[name] = value.clone() if old is None else merge_moments(old, value)
            else:
                self.add(name, value, rule)
        for name, k in other.ints.items():
            self.count(name, k)
        for name, v in other.h.items():
            self.addf(name, v, other.hrule[name])
        return self

    def copy(self) -> "Bag":
        b = Bag()
        b._t, b.rule, b.ints = {k: v.clone() for k, v in self.t.items()}, dict(self.rule), dict(self.ints)
        b.h, b.hrule = dict(self.h), dict(self.hrule)
        return b

    def state(self) -> dict:
        """Plain dict on the host (syncs)."""
        return {"t": {k: v.detach().cpu() for k, v in self.t.items()}, "rule": dict(self.rule),
                "ints": dict(self.ints), "h": dict(self.h), "hrule": dict(self.hrule)}

    @classmethod
    def from_state(cls, d: dict, device=None) -> "Bag":
        b = cls()
        b._t = {k: torch.as_tensor(v).to(device) for k, v in d["t"].items()}
        b.rule, b.ints = dict(d["rule"]), dict(d["ints"])
        b.h, b.hrule = dict(d.get("h", {})), dict(d.get("hrule", {}))
        unknown = set(b.rule.values()) - set(cls.RULES)
        if unknown:
            raise ValueError(f"unknown merge rule(s) {sorted(unknown)}; valid: {list(cls.RULES)}")
        return b

    def tensors(self) -> int:
        return len(self._t) + sum(len(p) for p in self._p.values())

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self._t.values()) + sum(
            (p.v if isinstance(p, Batch) else p).numel() * 8 for q in self._p.values() for p in q)


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
        return merge_moments(old, as_state(new))
    if rule == "last":
        return new.clone()
    if rule == "first":
        return old
    raise ValueError(f"unknown merge rule {rule!r}; valid: {list(Bag.RULES)}")


def _pad_to(a: torch.Tensor, b: torch.Tensor):
    n = max(a.shape[0], b.shape[0])
    pad = lambda t: torch.cat([t, t.new_zeros((n - t.shape[0], *t.shape[1:]))]) if t.shape[0] < n else t  # noqa
    return pad(a), pad(b)
