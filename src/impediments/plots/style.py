"""Shared figure style: legend size and the band over seeds."""
from __future__ import annotations

import numpy as np

LEGEND = {"fontsize": 9}           # legends readable at the notebook's width
TICKS = 9                          # tick label size for dense grids of panels


def fill_band(ax, x, low, high, color, *, alpha: float = 0.18) -> None:
    """Shade the range over seeds between ``low`` and ``high`` (non-finite points are left out)."""
    x, lo, hi = (np.asarray(v, dtype=float) for v in (x, low, high))
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=alpha, lw=0)
