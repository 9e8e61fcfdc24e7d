"""Hooks that the model carries without carrying the monitor.

A hook registered on a module or a parameter lives in the model's own hook tables, so
``torch.save(model)``, ``pickle`` and ``copy.deepcopy(model)`` inside ``watch()`` copy it too. A closure
cannot be pickled, and a bound method drags the whole monitor (its optimizer, weak references,
device buffers) into the copy: ``TypeError: cannot pickle 'weakref.ReferenceType'``, ``RecursionError``.

Every hook the monitor puts on the model is therefore a :class:`PortableHook`: called, it forwards to
the monitor; copied or pickled, it becomes :func:`inert`, a module-level function that does nothing.
A checkpoint taken inside ``watch()`` is the same model with the monitor's table entries inert (loading
it needs ``impediments`` importable, as any pickled object needs its classes); a deep copy (an EMA or
"best model" copy) is not watched, exactly as a copy made outside ``watch()``.
"""
from __future__ import annotations


def inert(*args, **kwargs) -> None:
    """A hook that does nothing (what a copied or unpickled :class:`PortableHook` becomes)."""
    return None


def _inert_hook():
    return inert


class PortableHook:
    """``PortableHook(fn)``: a hook calling ``fn``; pickles and deep-copies as :func:`inert`."""

    __slots__ = ("fn",)

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __reduce_ex__(self, protocol):
        return (_inert_hook, ())
