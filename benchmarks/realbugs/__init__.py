"""The real-bug corpus (issue 24): PyTorch ports of bugs people filed, each in a buggy and a fixed version.

One module per entry (see :mod:`realbugs._common` for what an entry defines). The tuned-on part lives here,
the held-out part in ``heldout/`` (chosen at random with a fixed seed before the doctor ran on anything;
see ``HELDOUT.md``; run once and now seen), and a second held-out part in ``heldout2/`` (new ports, never run
under the doctor; see ``HELDOUT2.md``). ``benchmarks/realbugs.py`` scores the doctor on them.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).resolve().parent


#: the parts of the corpus: the tuned-on part (this folder), the first held-out part (run once, now seen) and
#: the second held-out part (chosen, written and gated without the doctor; ``HELDOUT2.md``)
PARTS = ("tuned", "heldout", "heldout2")


def entry_names(*, held_out: bool = False, folder: str | None = None, part: str | None = None) -> list[str]:
    """Module names of the entries, sorted: the tuned-on part, the held-out part (``heldout.<name>``), a named
    ``part`` (one of :data:`PARTS`; ``heldout2.<name>``), or the bare names in another sub-folder
    (``folder="dropped"``).

    Raises:
        ValueError: ``part`` is not one of :data:`PARTS`.
    """
    if folder is not None:
        return sorted(m.name for m in pkgutil.iter_modules([str(_HERE / folder)]) if not m.name.startswith("_"))
    if part is None:
        part = "heldout" if held_out else "tuned"
    if part not in PARTS:
        raise ValueError(f"unknown corpus part {part!r}; valid: {', '.join(PARTS)}")
    where, prefix = (_HERE, "") if part == "tuned" else (_HERE / part, part + ".")
    return sorted(prefix + m.name for m in pkgutil.iter_modules([str(where)])
                  if not m.name.startswith("_") and not m.ispkg)


def load(name: str) -> ModuleType:
    """Import entry ``name`` (``so_...``, ``heldout.so_...`` or ``heldout2.so_...``)."""
    return importlib.import_module(f"{__name__}.{name}")
