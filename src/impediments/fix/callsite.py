"""Where in the user's code a torch call was made: the ``file:line`` a remedy names and matches.

A call seen by a :class:`~torch.overrides.TorchFunctionMode` runs under frames of torch itself
(``nn.Module.__call__``, ``F.linear``, ``torch.no_grad``'s decorator), of the standard library
(``contextlib``, ``functools``), and sometimes of impediments' own monitor or remedies (a hook that
reads an activation). :func:`user_site` walks the stack outwards past torch, the standard library and
other modes that only pass the call on; the first frame left is the call site, unless it belongs to
impediments' monitor, doctor or fix packages, in which case the call is ours and has no user site.
"""
from __future__ import annotations

import functools
import linecache
import os
import sys
import sysconfig
from dataclasses import dataclass

import torch

_TORCH = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: impediments' own machinery: a call made from here is never the user's
INTERNAL = tuple(os.path.join(_PACKAGE, d) + os.sep for d in ("monitor", "doctor", "fix", "integrations"))


@dataclass(frozen=True)
class Site:
    """A source line: absolute ``file`` and 1-based ``line``."""

    file: str
    line: int

    @property
    def text(self) -> str:
        """The source line, stripped ('' when the file cannot be read)."""
        return linecache.getline(self.file, self.line).strip()

    def short(self) -> str:
        """``file:line`` with the file relative to the working directory when it lies below it."""
        path = self.file
        try:
            rel = os.path.relpath(path)
            path = rel if not rel.startswith("..") else path
        except ValueError:       # another drive (Windows)
            pass
        return f"{path}:{self.line}"

    def describe(self) -> str:
        """``file:line   <source line>``."""
        return f"{self.short()}   {self.text}" if self.text else self.short()


@functools.lru_cache(maxsize=4096)
def _classify(filename: str) -> str:
    """``"skip"`` (torch, the standard library, generated code), ``"internal"`` or ``"user"``."""
    if filename.startswith("<"):
        return "skip"
    name = os.path.abspath(filename)
    if name.startswith(_TORCH) or (name.startswith(_STDLIB) and "site-packages" not in name
                                   and "dist-packages" not in name):
        return "skip"
    return "internal" if name.startswith(INTERNAL) else "user"


def user_site(func=None, depth: int = 2) -> Site | None:
    """The user's frame that made the current torch call ``func``, or None for impediments' own calls.

    Frames of impediments' monitor that only pass ``func`` on (another mode's ``__torch_function__``,
    which holds the very same ``func`` in its locals) are walked past: the call is still the user's.
    An impediments frame that does not hold ``func`` made the call itself (a hook reading an activation).

    Args:
        func: the call seen by the mode (None: any impediments frame ends the walk).
        depth: frames to skip from the caller of this function (2: the caller of a ``__torch_function__``
            that calls this).
    """
    frame = sys._getframe(depth)
    while frame is not None:
        kind = _classify(frame.f_code.co_filename)
        if kind == "user":
            return Site(os.path.abspath(frame.f_code.co_filename), frame.f_lineno)
        if kind == "internal" and (func is None or frame.f_locals.get("func") is not func):
            return None
        frame = frame.f_back
    return None
