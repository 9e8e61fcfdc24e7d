"""The module's experiments: each has ``Config``, ``run``, ``plot`` and ``claims``.

The registry maps an experiment name to its module path, in the module's
story order: part 1 (inputs, activations, initialization) then part 2.
Each part package lists its experiment modules in ``EXPERIMENTS``; an
experiment's registry name is its module's file name (``...part1.zigzag`` →
``zigzag``), so modules are imported lazily and ``impediments list`` stays fast.

Each experiment module defines ``SECTION``, a frozen ``Config`` dataclass
with ``quick(seed)`` and ``full(seed)`` classmethods, a ``Result`` dataclass,
``run(config) -> Result`` (one seed), ``plot(result[, band]) -> (fig, axes)``
and ``claims(result) -> list[Claim]``; it may also define
``tables(result) -> list[Table]`` for the lab notebook. Its name is its file
name and its description the first line of its docstring
(:func:`description`). See :mod:`impediments.experiments.framework` and
:mod:`impediments.experiments.runner`.
"""
from __future__ import annotations

import importlib
import re
from types import ModuleType

PARTS = ("impediments.experiments.part1", "impediments.experiments.part2")


def _build_registry() -> dict[str, str]:
    registry: dict[str, str] = {}
    for part in PARTS:
        try:
            package = importlib.import_module(part)
        except ModuleNotFoundError as exc:
            if exc.name != part:
                raise
            continue
        for path in getattr(package, "EXPERIMENTS", ()):
            name = path.rsplit(".", 1)[-1]
            if name in registry:
                raise RuntimeError(f"experiment name {name!r} registered twice: {registry[name]} and {path}")
            registry[name] = path
    return registry


# name -> module path, in story order.
REGISTRY: dict[str, str] = _build_registry()


def names() -> list[str]:
    """Registered experiment names in the module's story order."""
    return list(REGISTRY)


def get(name: str) -> ModuleType:
    """Import an experiment module by name.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(REGISTRY) or '(none registered yet)'}")
    return importlib.import_module(REGISTRY[name])


def description(name: str) -> str:
    """An experiment's one-line description: the first line of its module docstring, as plain text."""
    doc = (get(name).__doc__ or "").strip()
    first = doc.splitlines()[0] if doc else name
    first = re.sub(r":\w+:`([^`]*)`", r"\1", first)
    return first.replace("``", "")
