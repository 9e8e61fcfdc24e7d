"""A bounded time series of statistics: windows of steps that merge pairwise when the buffer fills.

Each window is a :class:`State` (a dict of :class:`~impediments.monitor.bag.Bag`) covering
steps ``[start, end)``. Windows start ``span`` steps long (``span=1``); when ``capacity`` windows are
closed, adjacent pairs merge and ``span`` doubles, so memory is bounded by ``capacity`` windows
however long training runs, and the whole run is the merge of all windows.
"""
from __future__ import annotations

from impediments.monitor.state.bag import Bag

DEFAULT_CAPACITY = 32


class State(dict):
    """``{(probe key, name): Bag}``; merges key-wise."""

    def bag(self, probe: str, name: str) -> Bag:
        key = (probe, name)
        b = self.get(key)
        if b is None:
            b = self[key] = Bag()
        return b

    def merge(self, other: "State") -> "State":
        for key, b in other.items():
            if key in self:
                self[key].merge(b)
            else:
                self[key] = b.copy()
        return self

    def copy(self) -> "State":
        return State({k: b.copy() for k, b in self.items()})

    def state(self) -> list:
        return [[cat, name, b.state()] for (cat, name), b in self.items()]

    @classmethod
    def from_state(cls, items, device=None) -> "State":
        return cls({(cat, name): Bag.from_state(b, device) for cat, name, b in items})


class Windows:
    """Windows of steps ``[start, end)``; at most ``capacity`` closed windows plus the open one.

    Args:
        capacity: the most closed windows kept (even, >= 2).

    Raises:
        ValueError: for a capacity that is odd or below 2.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if not isinstance(capacity, int) or capacity < 2 or capacity % 2:
            raise ValueError(f"window capacity must be an even int >= 2, got {capacity!r}")
        self.capacity, self.span = capacity, 1
        self.closed: list[tuple[int, int, State]] = []
        self.open: tuple[int, int, State] | None = None

    def at(self, step: int) -> State:
        """The state of the window holding ``step`` (steps must not go backwards)."""
        if self.open is not None and step < self.open[1]:
            return self.open[2]
        if self.open is not None:
            self.closed.append(self.open)
            if len(self.closed) >= self.capacity:
                self._halve()
        start = max(step - step % self.span, self.closed[-1][1] if self.closed else 0)
        self.open = (start, (step // self.span + 1) * self.span, State())
        return self.open[2]

    def _halve(self) -> None:
        merged = []
        for i in range(0, len(self.closed) - 1, 2):
            (s0, _, a), (_, e1, b) = self.closed[i], self.closed[i + 1]
            merged.append((s0, e1, a.merge(b)))
        if len(self.closed) % 2:
            merged.append(self.closed[-1])
        self.closed = merged
        self.span *= 2

    def all(self) -> list[tuple[int, int, State]]:
        return self.closed + ([self.open] if self.open is not None else [])

    def total(self) -> State:
        """The merge of every window: the statistics of the whole run."""
        out = State()
        for _, _, s in self.all():
            out.merge(s)
        return out

    def merge(self, other: "Windows") -> "Windows":
        """Merge another stream over the same steps (another process): windows merge by overlap."""
        mine = {(s, e): st for s, e, st in self.all()}
        for s, e, st in other.all():
            target = next((k for k in mine if k[0] <= s < k[1]), None)
            if target is None:
                mine[(s, e)] = st.copy()
            else:
                mine[target].merge(st)
        items = sorted((s, e, st) for (s, e), st in mine.items())
        self.closed, self.open = [tuple(x) for x in items[:-1]], (tuple(items[-1]) if items else None)
        while len(self.closed) >= self.capacity:
            self._halve()
        return self

    def state(self) -> dict:
        return {"capacity": self.capacity, "span": self.span,
                "windows": [[s, e, st.state()] for s, e, st in self.all()]}

    @classmethod
    def from_state(cls, d: dict, device=None) -> "Windows":
        w = cls(d["capacity"])
        w.span = d["span"]
        items = [(s, e, State.from_state(st, device)) for s, e, st in d["windows"]]
        w.closed, w.open = items[:-1], (items[-1] if items else None)
        return w

    def tensors(self) -> int:
        return sum(b.tensors() for _, _, st in self.all() for b in st.values())

    def nbytes(self) -> int:
        return sum(b.nbytes() for _, _, st in self.all() for b in st.values())
