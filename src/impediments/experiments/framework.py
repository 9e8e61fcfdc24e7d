"""Shared pieces of every experiment: claims, tables, JSON conversion, seeded training.

An experiment measures numbers at one seed (``run``) and states the module's
claims about them (``claims``); a :class:`Claim` records the statement, the
measured numbers and the one condition that is both printed and checked
(:mod:`impediments.experiments.claims`). The verdict comes from several seeds
(:mod:`impediments.experiments.verdict`).
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from impediments import _json
from impediments.experiments.claims import Claim, claim  # noqa: F401  (re-exported for the experiments)

@dataclass(frozen=True)
class Table:
    """A small table of numbers for the lab notebook (``tables(result)`` hook)."""

    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": to_jsonable(self.rows)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Table":
        return cls(title=d["title"], columns=list(d["columns"]), rows=[list(r) for r in d["rows"]])


def to_jsonable(obj):
    """Convert results to plain JSON types: dataclasses, arrays, tensors, numpy scalars.

    Non-finite floats become the strings ``"nan"``, ``"inf"`` and ``"-inf"``, the package's one
    convention (:mod:`impediments._json`); :func:`from_jsonable` turns them back.

    Raises:
        TypeError: for any other object (results hold numbers, lists and arrays only).
    """
    return _json.to_jsonable(obj)


def from_jsonable(cls: type, data: Mapping):
    """Rebuild a ``Result`` dataclass from :func:`to_jsonable` output.

    Fields annotated ``np.ndarray`` become float arrays again; other fields
    keep their JSON types (lists, dicts, numbers).
    """
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            raise KeyError(f"cached result for {cls.__qualname__} lacks field {f.name!r}")
        value = _json.from_jsonable(data[f.name])
        if hints.get(f.name) is np.ndarray:
            value = np.asarray(value, dtype=float)
        kwargs[f.name] = value
    return cls(**kwargs)


class Presets:
    """Mixin for an experiment's frozen ``Config`` dataclass: ``quick(seed)`` and ``full(seed)`` are
    the defaults overridden by the class attributes ``QUICK`` and ``FULL`` (plain dicts, not fields,
    so they never enter the cache key)."""

    QUICK: dict = {}
    FULL: dict = {}

    @classmethod
    def quick(cls, seed: int = 0):
        return cls(seed=seed, **cls.QUICK)

    @classmethod
    def full(cls, seed: int = 0):
        return cls(seed=seed, **cls.FULL)


def seeded(seed: int, build, *args, **kwargs) -> nn.Module:
    """Build a model with the global torch RNG seeded, so default init is reproducible."""
    torch.manual_seed(seed)
    return build(*args, **kwargs)


def train(model: nn.Module, data, *, seed: int, **kwargs):
    """:func:`impediments.train.fit` with no progress bar (experiments show their own progress)."""
    from impediments.train import fit

    kwargs.setdefault("progress", False)
    return fit(model, data, seed=seed, **kwargs)


def max_pairwise_unit_difference(weight: torch.Tensor, bias: torch.Tensor | None = None) -> float:
    """Largest difference between any two units' incoming weights (and bias) of one layer.

    .. math:: \\max_{i,j} \\max_k |W_{ik} - W_{jk}|

    Zero means all units of the layer compute the same function (unbroken symmetry).
    """
    w = weight.detach().reshape(weight.shape[0], -1)
    if bias is not None:
        w = torch.cat([w, bias.detach().reshape(-1, 1)], dim=1)
    return float((w.max(dim=0).values - w.min(dim=0).values).abs().max())


class UnitSpread:
    """Training callback: :func:`max_pairwise_unit_difference` of chosen layers at every evaluation.

    Attributes:
        steps: the evaluation steps (0 = before training).
        spread: ``{layer name: [difference at each evaluation]}``.
    """

    def __init__(self, model: nn.Module, layers: list[str]) -> None:
        self.model, self.layers = model, list(layers)
        self.steps: list[int] = []
        self.spread: dict[str, list[float]] = {name: [] for name in self.layers}

    def on_eval(self, step: int, metrics: Mapping) -> None:
        self.steps.append(step)
        for name in self.layers:
            layer = self.model.get_submodule(name)
            self.spread[name].append(max_pairwise_unit_difference(layer.weight, layer.bias))
