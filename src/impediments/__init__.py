"""impediments: show, explain and fix why a neural network won't learn.

Package map (dependencies run one way, top to bottom)::

    data, models, train        foundation: datasets, model builders, training loop
    activations, init, norm    the module's remedies as library code
    monitor, doctor            watch training, name impediments with evidence
    fix                        try each remedy on a copy, retrain, verify (``imp.fix(model, data)``)
    experiments                the module's experiments: run / plot / claims
    plots, report              the only places that import matplotlib
    cli                        the ``impediments`` command

Heavy or optional parts (plots, monitor, doctor) are imported lazily on first
attribute access, so ``import impediments`` never imports matplotlib.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from impediments.data import load_dataset
from impediments.models import cnn1d, cnn2d, mlp
from impediments.train import fit

_LAZY = {
    "plot_activations": "impediments.plots",
    "watch": "impediments.monitor",
    "Monitor": "impediments.monitor",
    "checkup": "impediments.doctor",
    "diagnose": "impediments.doctor",
    "Report": "impediments.doctor",
    "Finding": "impediments.doctor",
}
_SUBPACKAGES = ("activations", "init", "norm", "monitor", "doctor", "experiments", "plots", "report", "fix", "integrations")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"impediments.{name}")
    raise AttributeError(f"module 'impediments' has no attribute {name!r}")


__all__ = ["__version__", "cnn1d", "cnn2d", "fit", "fix", "load_dataset", "mlp", *_LAZY]
