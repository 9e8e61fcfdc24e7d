"""Saturated (or inactive), linear and active regions, computed numerically from each activation.

Definitions (``x`` is the activation's *input*, the pre-activation):

* **flat** (region 0 of :data:`~impediments.activations.REGIONS`): a *tail* of the real line where

  .. math:: |a'(x)| < \\text{tol}_s \\, \\max_x |a'(x)| \\quad\\text{and}\\quad \\lim_{x \\to \\pm\\infty} a'(x) = 0,

  so almost no gradient flows back and less still further out (Glorot & Bengio 2010). The default
  ``tol_s = 4 · 0.01 · 0.99 = 0.0396`` is the derivative ratio :math:`\\sigma'(x)/\\sigma'(0) = 4\\sigma(1-\\sigma)`
  where sigmoid's output is within 1% of its range from a bound (:math:`\\sigma < 0.01` or
  :math:`> 0.99`, :math:`|x| > \\ln 99 \\approx 4.60`); tanh is a rescaled sigmoid, so the same ratio is
  tanh within 1% of its range from :math:`\\pm 1` (:math:`|x| > 2.30`). Both boundaries lie inside the
  module's plotting grid ``np.arange(-5, 5, 0.1)`` (the earlier 0.025 put sigmoid's at 5.06, off the grid).
  A low derivative that does not vanish in its tail is no saturation: leaky ReLU's constant slope 0.01
  is there so that units never stop learning (Maas et al. 2013), so its negative side is not flat (it
  is linear). Dips of the derivative inside the line (GELU near -0.75, SiLU near -1.28, where
  :math:`a'` crosses 0) are stationary points, not tails, and are not flat either.
  How a report *names* the flat region depends on the kind (:func:`flat_region_name`): **saturated**
  for sigmoid-like kinds (two flat tails), **inactive** for rectifiers (ReLU's ``x <= 0``: the unit
  outputs a constant; *dead* is the unit-level verdict when a unit is never outside it).
* **linear**: the connected interval around 0 where ``a`` follows its tangent at 0
  to a *relative* tolerance,

  .. math:: |a(x) - a(0) - s_\\pm x| \\le \\text{tol}_l \\, |s_\\pm x|,

  i.e. the departure from the tangent is at most ``tol_l`` of the tangent's own
  change. ``s_+`` and ``s_-`` are the one-sided slopes at 0, so kinked functions
  get a tangent per side: ReLU's linear region is ``[0, ∞)`` (exactly linear there),
  its left side has slope 0 and is no linear region; identity and leaky ReLU are linear everywhere.
  The measure is invariant to rescaling ``a``; at the default ``tol_l = 0.05`` tanh
  is linear for ``|x| ≲ 0.40`` and sigmoid (a rescaled tanh) for ``|x| ≲ 0.80``.
* **active**: everything else. :func:`classify` gives the flat region precedence over
  linearity (ReLU's ``x = 0`` and hardtanh's ``|x| ≥ 1`` are flat).

The plot (:func:`impediments.plots.plot_activations`), the monitor's per-unit counts
(:mod:`impediments.activations.unit_regions`) and the doctor's ``saturated_units`` and ``dead_units``
all read these intervals, so they share this one definition.

Boundaries come from a fine float64 grid over ``[-40, 40]`` (step 2⁻¹⁰, 0 and the
integers on the grid) refined by bisection; an interval reaching the grid's edge
extends to ±∞ (all catalog functions are monotone in their tails). They are cached
once per ``(name, tol)``, so classifying a tensor costs a few comparisons and sums.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch

from impediments.activations.catalog import get

#: derivative ratio at which sigmoid's (and tanh's) output is within 1% of its range from a bound:
#: sigma'(x) / sigma'(0) = 4 sigma (1 - sigma) at sigma = 0.01
SATURATION_TOL = 4 * 0.01 * 0.99
#: where the derivative is checked for vanishing in a tail, and how small it must be there (relative to its peak)
TAIL_PROBE = 1e6
VANISHED = 1e-9
LINEAR_TOL = 0.05
GRID_HALF_WIDTH = 40.0
GRID_STEP = 2.0 ** -10
_BISECTIONS = 64

Interval = tuple[float, float]


def check_tol(tol: float, what: str) -> float:
    """``tol`` as a float in (0, 1), else ``ValueError`` naming it."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0.0 < float(tol) < 1.0:
        raise ValueError(f"{what} must be a number in (0, 1), got {tol!r}")
    return float(tol)


def _grid() -> torch.Tensor:
    n = int(GRID_HALF_WIDTH / GRID_STEP)
    return torch.arange(-n, n + 1, dtype=torch.float64) * GRID_STEP


def _bisect(inside: float, outside: float, pred: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """The boundary of ``pred`` between an inside and an outside point; returns the last inside point."""
    for _ in range(_BISECTIONS):
        mid = 0.5 * (inside + outside)
        if mid in (inside, outside):
            break
        if bool(pred(torch.tensor([mid], dtype=torch.float64))[0]):
            inside = mid
        else:
            outside = mid
    return inside


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """Inclusive index ranges of the True runs of a 1-D bool tensor."""
    m = torch.cat([torch.tensor([False]), mask, torch.tensor([False])]).to(torch.int8)
    edges = torch.diff(m)
    starts = torch.nonzero(edges == 1).flatten().tolist()
    stops = torch.nonzero(edges == -1).flatten().tolist()
    return [(s, e - 1) for s, e in zip(starts, stops)]


def intervals_where(pred: Callable[[torch.Tensor], torch.Tensor], grid: torch.Tensor) -> tuple[Interval, ...]:
    """Closed intervals where ``pred`` holds, from a grid scan refined by bisection (edges → ±∞)."""
    mask = pred(grid)
    out = []
    last = grid.numel() - 1
    for i, j in _runs(mask):
        lo = -math.inf if i == 0 else _bisect(float(grid[i]), float(grid[i - 1]), pred)
        hi = math.inf if j == last else _bisect(float(grid[j]), float(grid[j + 1]), pred)
        out.append((lo, hi))
    return tuple(out)


@lru_cache(maxsize=None)
def saturated_intervals(name: str, tol: float = SATURATION_TOL) -> tuple[Interval, ...]:
    """The flat tails of catalog activation ``name``: closed intervals reaching ±∞ where
    ``|a'(x)| < tol · max|a'|`` and ``a'`` vanishes at that end (see the module docstring)."""
    act, tol = get(name), check_tol(tol, "saturation tol")
    grid = _grid()
    peak = float(act.derivative(grid).abs().max())
    vanishes = {side: float(act.derivative(torch.tensor([side * TAIL_PROBE], dtype=torch.float64)).abs())
                <= VANISHED * peak for side in (-1, +1)}
    low = intervals_where(lambda x: act.derivative(x).abs() < tol * peak, grid)
    return tuple((lo, hi) for lo, hi in low
                 if (lo == -math.inf and vanishes[-1]) or (hi == math.inf and vanishes[+1]))


@lru_cache(maxsize=None)
def linear_intervals(name: str, tol: float = LINEAR_TOL) -> tuple[Interval, ...]:
    """The interval around 0 where ``a`` is within relative ``tol`` of its one-sided tangents at 0."""
    act, tol = get(name), check_tol(tol, "linear tol")
    grid = _grid()
    zero = torch.zeros(1, dtype=torch.float64)
    a0 = act.fn(zero)
    peak = float(act.derivative(grid).abs().max())
    tiny = torch.tensor([1e-12], dtype=torch.float64)
    slopes = {+1: act.derivative(tiny), -1: act.derivative(-tiny)}

    def within(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (act.fn(x) - a0 - s * x).abs() <= tol * (s * x).abs()

    ends = {}
    for side, s in slopes.items():
        if float(s.abs()) <= 1e-12 * peak:  # flat side: saturated, not linear
            ends[side] = 0.0
            continue
        half = grid[grid > 0] * side
        ok = within(half, s)
        fails = torch.nonzero(~ok).flatten()
        if fails.numel() == 0:
            ends[side] = side * math.inf
            continue
        k = int(fails[0])
        inside = 0.0 if k == 0 else float(half[k - 1])
        ends[side] = _bisect(inside, float(half[k]), lambda x, s=s: within(x, s))
    if ends[-1] == 0.0 and ends[+1] == 0.0:
        return ()
    return ((ends[-1], ends[+1]),)


def _mask(x: torch.Tensor, intervals: tuple[Interval, ...]) -> torch.Tensor:
    """``x ∈ ⋃ [lo, hi]`` as a bool tensor; infinite ends skip their comparison (no host sync)."""
    mask = None
    for lo, hi in intervals:
        if lo == -math.inf and hi == math.inf:
            return torch.ones_like(x, dtype=torch.bool)
        if lo == -math.inf:
            part = x <= hi
        elif hi == math.inf:
            part = x >= lo
        else:
            part = (x >= lo) & (x <= hi)
        mask = part if mask is None else mask | part
    return torch.zeros_like(x, dtype=torch.bool) if mask is None else mask


def region_counts(
    x: torch.Tensor, name: str, *, saturation_tol: float = SATURATION_TOL, linear_tol: float = LINEAR_TOL,
) -> torch.Tensor:
    """Counts of pre-activations ``x`` in the saturated, linear and active regions of ``name``.

    Vectorised, on ``x.device``, no host synchronisation; counts add across
    batches and processes (a mergeable accumulator). Saturation takes precedence
    over linearity; NaN inputs fall in no boundary test and count as active.

    Args:
        x: pre-activation tensor of any shape.
        name: catalog activation name.
        saturation_tol: see :func:`saturated_intervals`.
        linear_tol: see :func:`linear_intervals`.

    Returns:
        int64 tensor ``[saturated, linear, active]`` summing to ``x.numel()``.

    Raises:
        TypeError: if ``x`` is not a tensor. ValueError: unknown name or tol outside (0, 1).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    sat = _mask(x, saturated_intervals(name, saturation_tol))
    lin = _mask(x, linear_intervals(name, linear_tol)) & ~sat
    n_sat, n_lin = sat.sum(), lin.sum()
    return torch.stack([n_sat, n_lin, x.numel() - n_sat - n_lin])


def classify(
    x: torch.Tensor, name: str, *, saturation_tol: float = SATURATION_TOL, linear_tol: float = LINEAR_TOL,
) -> torch.Tensor:
    """Fractions of ``x`` in the ``[saturated, linear, active]`` regions of ``name`` (float32, on device).

    Same classification as :func:`region_counts`, divided by ``max(x.numel(), 1)``.

    Examples:
        >>> classify(torch.tensor([-10.0, 0.0, 2.0, 10.0]), "sigmoid")
        tensor([0.5000, 0.2500, 0.2500])
    """
    counts = region_counts(x, name, saturation_tol=saturation_tol, linear_tol=linear_tol)
    return counts.to(torch.float32) / max(x.numel(), 1)
