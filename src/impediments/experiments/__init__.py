"""The module's experiments: each has ``Config``, ``run``, ``plot`` and ``claims``.

The registry maps an experiment name to its module path; modules are
imported lazily so that ``impediments list`` stays fast.
"""
from __future__ import annotations

import importlib
from types import ModuleType

# name -> module path. Each module defines DESCRIPTION, Config, run, plot, claims.
REGISTRY: dict[str, str] = {}


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> ModuleType:
    """Import an experiment module by name.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(REGISTRY) or '(none registered yet)'}")
    return importlib.import_module(REGISTRY[name])
