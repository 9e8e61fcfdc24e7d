"""Results over seeds: the mean result a figure draws, and the band (lowest, highest) around it.

A ``Result`` holds numbers, lists, arrays and dicts of those. Over seeds,
every number and every equally shaped array or list of numbers is averaged
(the band is its elementwise minimum and maximum); anything else (strings,
lists of different lengths such as optimization paths) is taken from the
first seed. The mean of per-seed values is what the figure shows; the claims
are judged from the per-seed values themselves
(:mod:`impediments.experiments.verdict`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Band:
    """Elementwise lowest and highest values over seeds, as two results of the experiment's type."""

    low: object
    high: object
    seeds: int


def _numeric(values: list) -> np.ndarray | None:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.dtype != object else None


def _combine(values: list, how: str):
    first = values[0]
    if isinstance(first, bool) or isinstance(first, str) or first is None:
        return first
    if isinstance(first, dict):
        if all(isinstance(v, dict) and v.keys() == first.keys() for v in values):
            return {k: _combine([v[k] for v in values], how) for k in first}
        return first
    arr = _numeric(values)
    if arr is None:
        if isinstance(first, (list, tuple)) and all(isinstance(v, (list, tuple)) and len(v) == len(first)
                                                    for v in values):
            return type(first)(_combine([v[i] for v in values], how) for i in range(len(first)))
        return first
    if all(np.array_equal(arr[0], a, equal_nan=True) for a in arr[1:]):
        return first  # identical at every seed (a size, a grid, a count): keep its type
    reduce = {"mean": np.mean, "low": np.min, "high": np.max}[how]
    with np.errstate(invalid="ignore"):
        out = reduce(arr, axis=0)
    if isinstance(first, np.ndarray):
        return np.asarray(out, dtype=float)
    if isinstance(first, (list, tuple)):
        return out.tolist()
    if isinstance(first, int) and how != "mean":
        return int(out)
    return float(out)


def _reduce(results: Sequence, how: str):
    cls = type(results[0])
    return cls(**{f.name: _combine([getattr(r, f.name) for r in results], how) for f in dataclasses.fields(cls)})


def mean_result(results: Sequence):
    """The seeds' results averaged field by field (see the module docstring)."""
    if not results:
        raise ValueError("no results to average")
    return _reduce(results, "mean")


def band(results: Sequence) -> Band:
    """The elementwise range over seeds of every averaged field."""
    return Band(low=_reduce(results, "low"), high=_reduce(results, "high"), seeds=len(results))
