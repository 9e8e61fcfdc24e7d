"""impediments: show, explain and fix why a neural network won't learn.

Package map, bottom to top. A module imports only from its own layer or below, function-local
imports included, and no two packages import each other (``tests/test_layering.py`` enforces
exactly this order)::

    layer 0: _files, _interrupt, _json, _version, activations, data, models, init, norm   (foundation)
    layer 1: train                 (the training loop)
    layer 2: monitor               (streaming statistics while training)
    layer 3: doctor                (rules, findings, Report, checkup)
    layer 4: fix                   (remedies tried on copies, retrained, verified)
    layer 5: plots, report         (renderers: they pull results and reports; the only matplotlib users)
    layer 6: experiments           (run, then plot with plots and write notebooks with report)
    layer 7: playground, integrations, watching   (local web dashboard; Lightning, Hugging Face, Keras
                                   callbacks; ``watch()``: a monitor with the doctor's report and live view)
    layer 8: cli, impediments      (the command; this facade, whose attributes load lazily)

Layer 0 holds the activation catalogue with its taxonomy and display names (``"relu"`` ->
``"ReLU"``) and the one JSON convention for non-finite numbers (``_json``). Experiments sit above
the renderers because an experiment's ``plot(result)`` calls :mod:`impediments.plots`; plots take
results, never live objects, and import no experiment.

Heavy or optional parts (plots, monitor, doctor) are imported lazily on first
attribute access, so ``import impediments`` never imports matplotlib.
"""
from __future__ import annotations

import importlib

from impediments._version import __version__

from impediments.data import load_dataset
from impediments.models import cnn1d, cnn2d, mlp
from impediments.train import fit

_LAZY = {
    "plot_activations": "impediments.plots",
    "watch": "impediments.watching",
    "Monitor": "impediments.monitor",
    "checkup": "impediments.doctor",
    "diagnose": "impediments.doctor",
    "Report": "impediments.doctor",
    "Finding": "impediments.doctor",
}
_SUBPACKAGES = ("activations", "init", "norm", "monitor", "doctor", "experiments", "plots", "report", "fix", "integrations")


def _register_display() -> None:
    """In IPython (Jupyter), show reports, fix reports, monitor statistics and claims as HTML tables
    (:func:`impediments.report.display.register`); outside IPython nothing is imported."""
    import sys

    if "IPython" in sys.modules:
        from impediments.report.display import register

        register()


_register_display()


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"impediments.{name}")
    raise AttributeError(f"module 'impediments' has no attribute {name!r}")


__all__ = ["__version__", "cnn1d", "cnn2d", "fit", "fix", "load_dataset", "mlp", *_LAZY]
