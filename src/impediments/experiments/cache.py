"""The result cache of ``impediments reproduce``: atomic files, keys, corrupt-entry handling.

A cache entry is ``out/.cache/<name>-<key>.json`` plus ``<name>-<key>.png``;
the key hashes (experiment name, config, package version, experiment module
source). Every file is written atomically (temporary file in the same folder,
then ``os.replace``), and the JSON entry is written after its PNG, so an entry
that exists is complete. An unreadable entry warns (:class:`CacheWarning`)
and is treated as absent, so the experiment reruns. Figures are cached with
their results: delete ``.cache`` to redraw after changing only plotting code.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path

from impediments._files import write_atomic as atomic_write
from impediments.experiments.framework import Claim, Table, to_jsonable

CACHE_DIR = ".cache"
CACHE_FORMAT = 1


class OutputFolderError(OSError):
    """The output folder cannot be created or written to."""


class CacheWarning(UserWarning):
    """A cache entry was unreadable and the experiment is rerun."""


# ---------------------------------------------------------------- files


def prepare_output(out: str | os.PathLike) -> Path:
    """Create ``out`` and its cache folder and check they can be written.

    Raises:
        OutputFolderError: naming the folder and the reason.
    """
    out = Path(out)
    try:
        (out / CACHE_DIR).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=out / CACHE_DIR)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputFolderError(f"cannot write to output folder {str(out)!r}: {exc.strerror or exc}; "
                                f"choose another folder with --out") from exc
    return out


# ---------------------------------------------------------------- cache


def config_dict(config) -> dict:
    return to_jsonable(config)


def cache_key(name: str, config, module) -> str:
    """Hash of (name, config, package version, experiment module source)."""
    from impediments import __version__

    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        source = ""
    payload = json.dumps({"name": name, "config": config_dict(config), "version": __version__,
                          "format": CACHE_FORMAT, "source": hashlib.sha256(source.encode()).hexdigest()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def entry_paths(out: Path, name: str, key: str) -> tuple[Path, Path]:
    base = out / CACHE_DIR / f"{name}-{key}"
    return base.with_suffix(".json"), base.with_suffix(".png")


def load_cached(out: Path, name: str, key: str) -> dict | None:
    """The cached record, or None when absent; a corrupt entry warns and returns None."""
    jpath, ppath = entry_paths(out, name, key)
    if not jpath.exists():
        return None
    try:
        record = json.loads(jpath.read_text("utf-8"))
        if record.get("key") != key or record.get("name") != name:
            raise ValueError("key mismatch")
        record["claims"] = [Claim.from_dict(c) for c in record["claims"]]
        record["tables"] = [Table.from_dict(t) for t in record.get("tables", [])]
        record["png"] = ppath.read_bytes()
        if not record["png"].startswith(b"\x89PNG"):
            raise ValueError("figure is not a PNG")
        return record
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"cache entry {jpath} is corrupt ({exc}); rerunning {name}", CacheWarning, stacklevel=2)
        return None
