"""The remedy protocol: ``Remedy``, ``Change``, ``Context``, ``NotApplicable`` and composition helpers."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from impediments.fix.pieces import Pieces

#: the order in which a combination applies its remedies (one per slot).
SLOT_ORDER = ("data", "batch", "graph", "guard", "structure", "activation", "init", "mode", "loss", "optimizer",
              "loop", "clip", "warmup")


class NotApplicable(Exception):
    """The remedy does not apply to this setup; the message says why."""


@dataclass(frozen=True)
class Context:
    """What a remedy may read besides the pieces: the baseline's findings (``Finding.to_dict()``) and the seed."""

    findings: tuple = ()
    seed: int = 0

    def where(self, code: str) -> list[str]:
        """The ``where`` of every baseline finding with ``code``."""
        return [w for f in self.findings if f["code"] == code for w in f["where"]]

    def evidence(self, code: str) -> list[dict]:
        return [f["evidence"] for f in self.findings if f["code"] == code]


@dataclass(frozen=True)
class Change:
    """A remedy's result: the new pieces, the change as code, and a note (e.g. what could not be changed)."""

    pieces: Pieces
    code: str
    note: str = ""


@dataclass(frozen=True)
class Remedy:
    """One remedy: its name, the codes it treats, its slot, a one-line description and the function.

    ``continues`` names the remedy whose sweep this one extends (e.g. ``lr_down_270`` after ``lr_down_27``):
    it is tried only when that one changed nothing (no code cleared, none added).
    """

    name: str
    codes: tuple[str, ...]
    slot: str
    description: str
    fn: Callable[[Pieces, Context], Change] = field(compare=False, repr=False)
    continues: str | None = None

    def __post_init__(self):
        if self.slot not in SLOT_ORDER:
            raise ValueError(f"remedy {self.name!r}: unknown slot {self.slot!r}; valid: {', '.join(SLOT_ORDER)}")

    def __call__(self, pieces: Pieces, context: Context) -> Change:
        return self.fn(pieces, context)


class Composed:
    """``() -> transform(inner())``: a model factory with one more change applied to each fresh model."""

    def __init__(self, inner: Callable[[], nn.Module], transform: Callable[[nn.Module], object]):
        self.inner, self.transform = inner, transform

    def __call__(self) -> nn.Module:
        model = self.inner()
        out = self.transform(model)
        return out if isinstance(out, nn.Module) else model


def with_model(pieces: Pieces, transform: Callable[[nn.Module], object]) -> Pieces:
    """New pieces whose models get ``transform``: it edits the fresh model in place (returning anything that
    is not a module, e.g. an init summary) or returns the new model."""
    return replace(pieces, model_fn=Composed(pieces.model_fn, transform))


def probe_model(pieces: Pieces, seed: int) -> nn.Module:
    """A throw-away model built like a trial's (same seed), for a remedy to inspect."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return pieces.model_fn()
    finally:
        torch.random.set_rng_state(state)


def sample(pieces: Pieces) -> torch.Tensor:
    """One training batch of inputs (the first ``batch_size`` rows)."""
    return pieces.X[:pieces.batch_size]


def apply_all(pieces: Pieces, remedies: list[Remedy], context: Context) -> tuple[Pieces, list[Change]]:
    """Apply ``remedies`` in :data:`SLOT_ORDER`; returns the final pieces and each change."""
    changes = []
    for remedy in sorted(remedies, key=lambda r: SLOT_ORDER.index(r.slot)):
        change = remedy(pieces, context)
        pieces = change.pieces
        changes.append(change)
    return pieces, changes
