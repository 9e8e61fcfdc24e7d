"""Shared figure style: legend size and the band over seeds."""
from __future__ import annotations

import numpy as np
from matplotlib.collections import PathCollection

LEGEND = {"fontsize": 9}           # legends readable at the notebook's width
TICKS = 9                          # tick label size for dense grids of panels


def fill_band(ax, x, low, high, color, *, alpha: float = 0.18) -> None:
    """Shade the range over seeds between ``low`` and ``high`` (non-finite points are left out)."""
    x, lo, hi = (np.asarray(v, dtype=float) for v in (x, low, high))
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=alpha, lw=0)


def _points_under(ax, box) -> int:
    """How many drawn data points (line vertices, scatter offsets) fall inside ``box`` (display coordinates)."""
    ax.get_xlim(), ax.get_ylim()                       # settle autoscaling before reading transData
    inside = 0
    arrays = [np.asarray(line.get_xydata(), dtype=float) for line in ax.get_lines()]
    arrays += [np.asarray(c.get_offsets(), dtype=float) for c in ax.collections
               if isinstance(c, PathCollection) and len(c.get_offsets())]   # scatter points, not filled bands
    for xy in arrays:
        if xy.ndim != 2 or not len(xy):
            continue
        pts = ax.transData.transform(xy)
        pts = pts[np.isfinite(pts).all(axis=1)]
        inside += int(((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1)
                       & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)).sum())
    return inside


def legend_off_data(ax, **kwargs):
    """``ax.legend(**kwargs)``, moved outside the axes (to the right) when it would cover a drawn data point.

    Matplotlib's ``loc="best"`` only minimizes the overlap; a legend over a curve hides the very numbers a
    figure shows, so a legend that still covers any point goes beside the panel instead.
    """
    legend = ax.legend(**kwargs)
    if legend is None:
        return None
    box = legend.get_window_extent(renderer=ax.figure.canvas.get_renderer())
    if _points_under(ax, box) == 0:
        return legend
    legend.remove()
    outside = {k: v for k, v in kwargs.items() if k not in ("loc", "bbox_to_anchor")}
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **outside)
