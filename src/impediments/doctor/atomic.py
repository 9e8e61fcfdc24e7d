"""Atomic report writing: a temp file in the target folder, then ``os.replace``."""
from __future__ import annotations

import os
from pathlib import Path

from impediments._files import write_atomic


def check_writable_path(path: str | os.PathLike) -> Path:
    """The path as a Path; raise FileNotFoundError if its folder does not exist."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write report {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write report {str(path)!r}: it is a folder")
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` so that readers see either the old file or the whole new one.

    Raises:
        FileNotFoundError: if the folder does not exist (nothing is written).
    """
    return write_atomic(check_writable_path(path), text)
