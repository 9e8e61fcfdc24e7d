"""``plot_activations``: each catalog activation and its derivative, its flat and linear regions shaded.

The shading reads the one definition of :mod:`impediments.activations.regions`, the same intervals the
monitor counts and the doctor judges; the flat region is named by kind
(:func:`impediments.activations.flat_region_name`): *saturated* for sigmoid-like kinds, *inactive* for
rectifiers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from impediments import activations as A

SATURATED_COLOR, INACTIVE_COLOR, LINEAR_COLOR = "tab:red", "0.45", "tab:green"
FLAT_COLORS = {"saturated": SATURATED_COLOR, "inactive": INACTIVE_COLOR}


def _shade(ax, intervals, lo: float, hi: float, color: str, label: str) -> None:
    for k, (a, b) in enumerate(intervals):
        a, b = max(a, lo), min(b, hi)
        if a < b:
            ax.axvspan(a, b, color=color, alpha=0.15, lw=0, label=label if k == 0 else None)


def _minus(intervals, removed) -> list[tuple[float, float]]:
    """``intervals`` with ``removed`` cut out (classify gives saturation precedence over linearity)."""
    out = list(intervals)
    for c, d in removed:
        out = [piece for a, b in out for piece in ((a, min(b, c)), (max(a, d), b)) if piece[0] < piece[1]]
    return out


def _grid(x) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"x must be a 1-D array of numbers, got {type(x).__name__}") from None
    if arr.ndim != 1 or arr.size < 2 or not np.isfinite(arr).all():
        raise ValueError(f"x must be a finite 1-D array with at least 2 points, got shape {arr.shape}")
    return np.sort(arr)


def plot_activations(
    x=None, names: Sequence[str] | str | None = None, *, saturation_tol: float = A.SATURATION_TOL,
    linear_tol: float = A.LINEAR_TOL, ncols: int = 4,
):
    """Draw ``a(x)`` and ``a'(x)`` for each activation, shading its flat tails and its linear region.

    Flat tails (:func:`impediments.activations.saturated_intervals`: ``|a'| < tol · max|a'|`` where ``a'``
    vanishes) are red and called *saturated* for sigmoid-like kinds, grey and called *inactive* for
    rectifiers; the linear region (within ``linear_tol`` of the tangent at 0) is green. One legend for
    the whole figure sits under the title, off the panels.

    Args:
        x: input grid, e.g. ``np.arange(-5, 5, 0.1)``; default that grid. A list of
            names in first position is taken as ``names`` (``plot_activations(["relu", "tanh"])``).
        names: catalog names (default all 13) or one name.
        saturation_tol, linear_tol: region tolerances (see :mod:`impediments.activations.regions`).
        ncols: panels per row.

    Returns:
        ``(fig, axes)`` with one axes per activation (a 1-D numpy array).

    Raises:
        ValueError: unknown names (valid ones listed), an empty name list, a bad grid.

    Examples:
        >>> fig, _ = plot_activations(np.arange(-5, 5, 0.1))  # doctest: +SKIP
    """
    if isinstance(x, str) or (isinstance(x, (list, tuple)) and x and all(isinstance(n, str) for n in x)):
        x, names = None, x
    grid = _grid(np.arange(-5, 5, 0.1) if x is None else x)
    names = A.names() if names is None else [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"names must not be empty; valid names: {', '.join(A.names())}")
    acts = [A.get(n) for n in names]
    cols = max(1, min(ncols, len(acts)))
    rows = math.ceil(len(acts) / cols)
    fig, grid_axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    flat = grid_axes.ravel()
    for ax in flat[len(acts):]:
        fig.delaxes(ax)
    t = torch.as_tensor(grid)
    lo, hi = float(grid[0]), float(grid[-1])
    for ax, act in zip(flat, acts):
        saturated = act.saturated_region(saturation_tol)
        flat_name = A.flat_region_name(act.name)
        _shade(ax, saturated, lo, hi, FLAT_COLORS[flat_name], flat_name)
        _shade(ax, _minus(act.linear_region(linear_tol), saturated), lo, hi, LINEAR_COLOR, "linear")
        ax.plot(grid, act.fn(t).numpy(), color="black", lw=1.5, label="a(x)")
        ax.plot(grid, act.derivative(t).numpy(), color="tab:blue", ls="--", lw=1.2, label="a'(x)")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_xlim(lo, hi)
        ax.set_title(act.name, fontsize=10)
    handles = {}
    for ax in flat[: len(acts)]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    order = [k for k in ("a(x)", "a'(x)", "saturated", "inactive", "linear") if k in handles]
    fig.suptitle(f"activations and derivatives\nflat tail: |a'| < {saturation_tol:.3g} max|a'|, a' -> 0; "
                 f"linear: within {linear_tol:g} of the tangent", fontsize=8)
    top = 1 - 0.75 / (2.6 * rows)
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.legend([handles[k] for k in order], order, loc="lower center", ncol=len(order), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, top - 0.01))
    return fig, flat[: len(acts)]
