"""A :class:`Bag` is the mergeable record of one thing watched (an activation, the parameters, ...).

Each field is declared once, by the probe that records it, as a :class:`Field`: its name, its merge
rule (``sum``, ``max``, ``min``, ``moments``, ``first``, ``last``, or ``count`` for host integers) and,
for a row of several quantities, the names of its columns (torchmetrics' ``add_state(name, default,
dist_reduce_fx)``). Merging, ``state_dict`` and the DDP sync all walk the same fields (torchmetrics'
``update``/``merge``/``compute`` split). ``sum``, ``max``, ``last`` and ``moments`` updates are queued and folded together, at most
:attr:`Bag.PENDING` parts at a time, so an update costs no kernel and merging two bags is a list
concatenation. A part of a ``sum``/``max``/``last`` field may be a host row (a list of floats, or of
equal-length lists): on CPU the caller then pays no kernel at all, and a fold turns all such rows
into one tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from impediments.monitor.state.moments import Batch, as_state, fold_moments, merge_moments

_QUEUED = ("sum", "moments", "max", "last")


@dataclass(frozen=True)
class Field:
    """One declared statistic of a probe's bag.

    Args:
        name: its key in the bag (unique within the probe).
        rule: how two parts merge: ``sum``, ``max``, ``min``, ``moments``, ``first``, ``last`` (tensors
            or host floats) or ``count`` (host integers).
        columns: for a field whose value stacks several quantities along dim 0, their names in order;
            read them with :meth:`unpack`, never by position.
    """

    name: str
    rule: str
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rule not in Bag.RULES + ("count",):
            raise ValueError(f"unknown merge rule {self.rule!r} for field {self.name!r}; "
                             f"valid: {list(Bag.RULES + ('count',))}")

    def unpack(self, value) -> dict:
        """``{column: value[i]}`` of a stacked value (a tensor or nested host list)."""
        if len(value) != len(self.columns):
            raise ValueError(f"field {self.name!r} has columns {list(self.columns)}, got {len(value)} rows")
        return dict(zip(self.columns, value))


class Bag:
    """Named tensors with merge rules, plus host-side integers (``ints``, added) and floats (``h``)."""

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

    # --------------------------------------------------------------------- update
    def add(self, field: Field, value) -> None:
        """Fold ``value`` (a tensor, a :class:`~impediments.monitor.state.moments.Batch` for ``moments``, or a
        host row for ``sum``/``max``/``last``) into ``field`` (no host sync)."""
        self._add(field.name, value, field.rule)

    def _add(self, name: str, value, rule: str) -> None:
        if rule in _QUEUED:
            self.rule[name] = rule
            q = self._p.get(name)
            if q is None:
                q = self._p[name] = []
            elif rule == "last":
                q.clear()
            if isinstance(value, torch.Tensor):   # (a kept last value is copied, as before queuing)
                value = value.detach().clone() if rule == "last" else value.detach()
            q.append(value)
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

    def addf(self, field: Field, value: float) -> None:
        """Fold a host float into ``field`` (``sum``, ``min``, ``max``, ``first`` or ``last``)."""
        self._addf(field.name, value, field.rule)

    def _addf(self, name: str, value: float, rule: str) -> None:
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

    def count(self, field: Field, k: int = 1) -> None:
        """Add ``k`` to the host integer ``field`` (rule ``count``)."""
        self.ints[field.name] = self.ints.get(field.name, 0) + k

    def _queue(self, name: str, parts: list) -> None:
        q = self._p.setdefault(name, [])
        q.extend(parts)
        if len(q) >= self.PENDING:
            self._fold(name)

    def _fold(self, name: str) -> None:
        parts = self._p.pop(name, None)
        if not parts:
            return
        old = self._t.get(name)
        rule = self.rule[name]
        if rule == "moments":
            self._t[name] = fold_moments(old, parts)
            return
        parts = _as_tensors(parts)
        if rule == "last":
            self._t[name] = parts[-1]
            return
        try:
            stacked = torch.stack(parts)
            total = stacked.sum(0) if rule == "sum" else stacked.amax(0)
        except RuntimeError:   # shapes differ (a layer seen with more units): fold one by one
            total = parts[0]
            for p in parts[1:]:
                total = _combine(total, p, rule)
        self._t[name] = total if old is None else _combine(old, total, rule)

    # --------------------------------------------------------------------- read
    @property
    def t(self) -> dict[str, torch.Tensor]:
        """The folded tensors (folds pending parts first)."""
        for name in list(self._p):
            self._fold(name)
        return self._t

    def read(self, field: Field):
        """The folded value of ``field``: a tensor, a host float, a host int (``count``), or None."""
        if field.rule == "count":
            return self.ints.get(field.name, 0)
        if field.name in self.h:
            return self.h[field.name]
        return self.t.get(field.name)

    def get(self, field: Field):
        """A field as a host float (from the host or device part), or None."""
        name = field.name
        if name in self.h:
            return self.h[name]
        t = self.t.get(name)
        return None if t is None else float(t)

    # --------------------------------------------------------------------- merge
    def merge(self, other: "Bag") -> "Bag":
        """Fold ``other`` (a later part of the stream, or another process) into ``self``.

        Queued fields only concatenate their parts (``other``'s folded value, then its pending parts:
        stream order, which ``last`` needs).
        """
        for name, value in other._t.items():
            rule = other.rule[name]
            if rule in _QUEUED:
                self.rule[name] = rule
                self._queue(name, [value])
            else:
                self._add(name, value, rule)
        for name, parts in other._p.items():
            self.rule[name] = other.rule[name]
            self._queue(name, list(parts))
        for name, k in other.ints.items():
            self.ints[name] = self.ints.get(name, 0) + k
        for name, v in other.h.items():
            self._addf(name, v, other.hrule[name])
        return self

    def copy(self) -> "Bag":
        """An independent bag (tensors are never modified in place, so parts are shared)."""
        b = Bag()
        b._t, b._p = dict(self._t), {k: list(v) for k, v in self._p.items()}
        b.rule, b.ints, b.h, b.hrule = dict(self.rule), dict(self.ints), dict(self.h), dict(self.hrule)
        return b

    # --------------------------------------------------------------------- serialise
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
            _part_bytes(p) for q in self._p.values() for p in q)


def _part_bytes(p) -> int:
    if isinstance(p, Batch):
        return 32 if isinstance(p.v, tuple) else p.v.numel() * 8
    if isinstance(p, list):
        return 8 * sum(len(r) if isinstance(r, list) else 1 for r in p)
    return p.numel() * p.element_size()


def _as_tensors(parts: list) -> list:
    """Pending parts as tensors: every host row (a list) becomes float64 in one ``torch.tensor`` call
    per shape, placed where it was in the stream."""
    rows = [i for i, p in enumerate(parts) if isinstance(p, list)]
    if not rows:
        return parts
    out = list(parts)
    by_len: dict = {}
    for i in rows:
        by_len.setdefault(_row_shape(parts[i]), []).append(i)
    for idx in by_len.values():
        for i, t in zip(idx, torch.tensor([parts[i] for i in idx], dtype=torch.float64).unbind(0)):
            out[i] = t
    return out


def _row_shape(row: list) -> tuple:
    return (len(row), len(row[0])) if row and isinstance(row[0], list) else (len(row),)


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
    """Zero-pad the last dim of the shorter tensor (units or parameters seen later)."""
    n = max(a.shape[-1], b.shape[-1])
    pad = lambda t: torch.nn.functional.pad(t, (0, n - t.shape[-1])) if t.shape[-1] < n else t  # noqa: E731
    return pad(a), pad(b)
