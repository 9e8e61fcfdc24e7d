"""Figures (the only package, with ``report``, that imports matplotlib).

Submodules are imported lazily: ``import impediments.plots`` imports no figure
module; ``impediments.plots.plot_activations`` loads :mod:`.activations` on first use.
"""
from __future__ import annotations

import importlib

_LAZY = {"plot_activations": "impediments.plots.activations"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'impediments.plots' has no attribute {name!r}")


__all__ = list(_LAZY)
