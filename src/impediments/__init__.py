"""impediments: show, explain and fix why a neural network won't learn.

Package map (dependencies run one way, top to bottom)::

    data, models, train        foundation: datasets, model builders, training loop
    activations, init, norm    the module's remedies as library code
    monitor, doctor            watch training, name impediments with evidence
    experiments                the module's experiments: run / plot / claims
    plots, report              the only places that import matplotlib
    cli                        the ``impediments`` command
"""
from __future__ import annotations

__version__ = "0.1.0"

from impediments.data import load_dataset
from impediments.models import cnn1d, cnn2d, mlp
from impediments.train import fit

__all__ = ["__version__", "cnn1d", "cnn2d", "fit", "load_dataset", "mlp"]
