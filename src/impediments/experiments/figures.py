"""An experiment's figure (the mean result with its band over seeds), cached by seeds and plotting source,
and its story for the notebook."""
from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

from impediments.experiments.cache import CACHE_DIR, atomic_write


def story_of(module) -> str:
    """The experiment's story for the notebook: its module docstring after the first line."""
    doc = inspect.getdoc(module) or ""
    return doc.split("\n", 1)[1].strip() if "\n" in doc else ""


def takes_band(module) -> bool:
    """Whether the experiment's ``plot(result, band)`` draws the band over seeds (else it draws the mean only)."""
    return len(inspect.signature(module.plot).parameters) >= 2


def draw(module, result, spread) -> bytes:
    """The experiment's figure of the mean result, with the band over seeds where the plot takes one."""
    from impediments.report.html import fig_to_png

    fig, _ = module.plot(result, spread) if takes_band(module) else module.plot(result)
    return fig_to_png(fig)


def plotting_source_hash() -> str:
    """Hash of every figure module's source (``impediments.plots``), so a changed figure is redrawn."""
    import impediments.plots

    digest = hashlib.sha256()
    for path in sorted(Path(impediments.plots.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_figure(out: Path, name: str, module, keys: list[str], result, spread) -> bytes:
    key = hashlib.sha256(json.dumps([keys, plotting_source_hash()]).encode()).hexdigest()
    path = out / CACHE_DIR / f"{name}-figure-{key[:16]}.png"
    if path.exists():
        png = path.read_bytes()
        if png.startswith(b"\x89PNG"):
            return png
    png = draw(module, result, spread)
    atomic_write(path, png)
    return png
