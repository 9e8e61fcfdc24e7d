"""Framework callbacks: one line to diagnose a Lightning, Hugging Face or Keras 3 (torch) training run.

Each submodule imports its framework lazily, on first use of its ``Doctor`` (an optional extra:
``impediments[lightning]``, ``impediments[transformers]``, ``impediments[keras]``)::

    Trainer(callbacks=[impediments.integrations.lightning.Doctor()])          # PyTorch Lightning
    Trainer(..., callbacks=[impediments.integrations.huggingface.Doctor()])   # Hugging Face Trainer
    model.fit(..., callbacks=[impediments.integrations.keras.Doctor()])       # Keras 3, KERAS_BACKEND=torch

They are thin adapters over :func:`impediments.watch` and :func:`impediments.diagnose`: the same
statistics, findings and report, written once on rank 0. Every callback keeps the last Report as
``.report`` (None on other ranks).
"""
from __future__ import annotations

import importlib

_SUBMODULES = ("lightning", "huggingface", "keras")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"impediments.integrations.{name}")
    raise AttributeError(f"module 'impediments.integrations' has no attribute {name!r}")


__all__ = list(_SUBMODULES)
