"""The result cache of ``impediments reproduce``: atomic files, keys, corrupt-entry handling.

A cache entry is ``out/.cache/<name>-<key>.json``, one per (experiment,
seed); the key hashes (experiment name, config with its seed, package
version, experiment module source, and the source of the library code
experiments run on: every module of the package outside the presentation
layers, so an edit to a model, an initializer or a norm layer reruns what it
could change). Every file is written atomically
(temporary file in the same folder, then ``os.replace``), so an entry that
exists is complete. An unreadable entry warns (:class:`CacheWarning`) and is
treated as absent, so that seed reruns. Figures are cached by the runner under
a key of their seeds' entries and the plotting module's source.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path

from impediments._files import write_atomic as atomic_write
from impediments.experiments.claims import Claim
from impediments.experiments.framework import to_jsonable

CACHE_DIR = ".cache"
CACHE_FORMAT = 2


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


#: packages whose code cannot change an experiment's numbers (figures, pages, the command line, servers)
PRESENTATION = ("plots", "report", "cli", "playground", "integrations")
#: the impediments package folder, whose library source the cache key hashes
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def library_source_hash() -> str:
    """Hash of every ``.py`` file of the package outside :data:`PRESENTATION`, read once per process."""
    root = PACKAGE_ROOT
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in PRESENTATION:
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(name: str, config, module) -> str:
    """Hash of (name, config, package version, experiment module source, library source)."""
    from impediments._version import __version__

    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        source = ""
    payload = json.dumps({"name": name, "config": config_dict(config), "version": __version__,
                          "format": CACHE_FORMAT, "source": hashlib.sha256(source.encode()).hexdigest(),
                          "library": library_source_hash()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def entry_paths(out: Path, name: str, key: str) -> Path:
    """The cache entry of one (experiment, seed)."""
    return out / CACHE_DIR / f"{name}-{key}.json"


def load_cached(out: Path, name: str, key: str) -> dict | None:
    """The cached record, or None when absent; a corrupt entry warns and returns None."""
    jpath = entry_paths(out, name, key)
    if not jpath.exists():
        return None
    try:
        record = json.loads(jpath.read_text("utf-8"))
        if record.get("key") != key or record.get("name") != name:
            raise ValueError("key mismatch")
        record["claims"] = [Claim.from_dict(c) for c in record["claims"]]
        record["result"]  # noqa: B018  (a record without its result is corrupt)
        return record
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"cache entry {jpath} is corrupt ({exc}); rerunning {name}", CacheWarning, stacklevel=2)
        return None
