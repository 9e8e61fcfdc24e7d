"""The one JSON convention of the package: non-finite floats as the strings ``"nan"``, ``"inf"``, ``"-inf"``.

JSON has no literal for NaN or infinity (``json.dumps`` writes ``NaN``, which strict parsers such as
JavaScript's ``JSON.parse`` reject). The two usual ways out:

* ``null``: loses information. A statistic that was measured and came out NaN (a diverged loss, a
  ratio of two zero norms) reads back the same as one that was never measured, and ``+inf`` and
  ``-inf`` cannot be told apart from it or from each other.
* strings: keep all three values apart from ``null`` (not measured) and round-trip exactly.

This module takes the strings. :func:`to_jsonable` turns a value into plain JSON types,
:func:`from_jsonable` is its inverse, and :func:`dumps` / :func:`loads` write and read text with
``allow_nan=False``, so a non-finite float that escaped the conversion is an error rather than an
invalid document. The one ambiguity: a *string* field whose value is exactly ``"nan"``, ``"inf"`` or
``"-inf"`` reads back as a float; no document of the package has such a string.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping

#: the three strings and the floats they stand for
NONFINITE: dict[str, float] = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_float(x: float) -> float | str:
    """``x`` itself when finite, else ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def to_jsonable(value, *, default: Callable | None = None):
    """``value`` as plain JSON types (dict with string keys, list, str, int, float, bool, None).

    Dataclass instances become dicts of their fields, mappings dicts (keys as strings), tuples lists;
    numpy arrays and scalars and torch tensors go through their ``tolist()``; non-finite floats become
    ``"nan"``, ``"inf"`` or ``"-inf"`` (:func:`encode_float`).

    Args:
        value: what to convert.
        default: called on any other object to get something convertible (``str`` for free-form
            evidence); without it such an object is an error.

    Raises:
        TypeError: an object of another type and no ``default``.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return encode_float(float(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), default=default) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, default=default) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, default=default) for v in value]
    if hasattr(value, "tolist"):                    # numpy arrays and scalars, torch tensors
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        return to_jsonable(value.tolist(), default=default)
    if default is not None:
        return to_jsonable(default(value))
    raise TypeError(f"cannot convert {type(value).__name__} to JSON; valid: numbers, strings, lists, dicts, "
                    f"dataclasses, arrays and tensors")


def from_jsonable(value):
    """The inverse of :func:`to_jsonable` for numbers: ``"nan"``, ``"inf"``, ``"-inf"`` back to floats."""
    if isinstance(value, str):
        return NONFINITE.get(value, value)
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: from_jsonable(v) for k, v in value.items()}
    return value


def dumps(value, *, default: Callable | None = None, **kwargs) -> str:
    """JSON text of ``value`` in this convention (``json.dumps`` keyword arguments pass through)."""
    return json.dumps(to_jsonable(value, default=default), allow_nan=False, **kwargs)


def loads(text: str):
    """Read :func:`dumps` output, non-finite floats restored."""
    return from_jsonable(json.loads(text))
