"""Atomic file writes, shared by every package that writes files (data, monitor, doctor, experiments).

A reader sees either the old file or the whole new one, never a half-written one: the bytes go to
a temporary file in the target folder, are flushed to disk, and the file is renamed over the target
with ``os.replace`` (atomic on POSIX and Windows). An interrupted write leaves no temporary behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes | str, *, make_parents: bool = False) -> Path:
    """Write ``data`` (``str`` as UTF-8) to ``path`` atomically; returns the path.

    Args:
        path: the target file.
        data: the whole content.
        make_parents: create missing parent folders first (otherwise a missing folder is an error).

    Raises:
        FileNotFoundError: the folder does not exist (and ``make_parents`` is False); nothing is written.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
