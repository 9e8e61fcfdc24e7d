"""The real-bug corpus (issue 24): PyTorch ports of bugs people filed, each in a buggy and a fixed version.

One module per entry (see :mod:`realbugs._common` for what an entry defines). The tuned-on part lives here,
the held-out part in ``heldout/`` (chosen at random with a fixed seed before the doctor ran on anything;
see ``HELDOUT.md``). ``benchmarks/realbugs.py`` scores the doctor on them.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).resolve().parent


def entry_names(*, held_out: bool = False, folder: str | None = None) -> list[str]:
    """Module names of the entries, sorted: the tuned-on part, the held-out part (``heldout.<name>``), or the
    bare names in another sub-folder (``folder="dropped"``)."""
    if folder is not None:
        return sorted(m.name for m in pkgutil.iter_modules([str(_HERE / folder)]) if not m.name.startswith("_"))
    where, prefix = (_HERE / "heldout", "heldout.") if held_out else (_HERE, "")
    return sorted(prefix + m.name for m in pkgutil.iter_modules([str(where)])
                  if not m.name.startswith("_") and not m.ispkg)


def load(name: str) -> ModuleType:
    """Import entry ``name`` (``so_...`` or ``heldout.so_...``)."""
    return importlib.import_module(f"{__name__}.{name}")
