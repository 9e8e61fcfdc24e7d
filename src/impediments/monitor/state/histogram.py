"""Fixed-edge signed-log histograms: any magnitude fits, every histogram has the same bins, so they add.

Edges are :math:`\\pm 10^{k/4}` for :math:`10^{-6} \\le 10^{k/4} \\le 10^{6}` (4 bins per decade,
as TensorBoard's exponential buckets but fixed), a middle bin :math:`[-10^{-6}, 10^{-6})` for exact
zeros, outer bins that also take everything beyond :math:`\\pm 10^6`, and one last slot for NaN/Inf.
A histogram counts a deterministic subsample of at most :data:`HIST_MAX_VALUES` values per tensor and
call, so a sampled step costs O(1) in the tensor size. Moments, non-finite counts and per-unit counts always use every value.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from impediments.monitor.state.moments import to_device

#: decades covered by the signed-log histogram (magnitudes 1e-6 .. 1e6) and bins per decade
HIST_DECADES, HIST_PER_DECADE = (-6, 6), 4
_POS = torch.logspace(HIST_DECADES[0], HIST_DECADES[1], (HIST_DECADES[1] - HIST_DECADES[0]) * HIST_PER_DECADE + 1,
                      dtype=torch.float64)
#: histogram edges: ``-1e6 .. -1e-6, 1e-6 .. 1e6``; the middle bin ``[-1e-6, 1e-6)`` holds exact zeros and
#: values beyond the outer edges are counted in the outer bins (so every finite value is counted).
HIST_EDGES: list[float] = [-v for v in reversed(_POS.tolist())] + _POS.tolist()
HIST_BINS = len(HIST_EDGES) - 1


@dataclass
class Histogram:
    """Counts over fixed signed-log edges (identical for every histogram, so histograms merge)."""

    edges: list[float]
    counts: list[int]


#: histograms count at most this many values per tensor and call (see :func:`subsample_stride`)
HIST_MAX_VALUES = 1 << 10


@lru_cache(maxsize=256)
def subsample_stride(numel: int) -> int:
    """Stride of the histogram subsample ``x.flatten()[::stride]``: 1 up to :data:`HIST_MAX_VALUES`
    values, else the smallest prime ``>= ceil(numel / HIST_MAX_VALUES)``.

    A prime stride is coprime with the feature and channel sizes of real layers (powers of two,
    28*28...), so the subsample cycles through every unit instead of always reading the same columns.
    """
    stride = -(-numel // HIST_MAX_VALUES)
    if stride <= 2:
        return stride
    while any(stride % p == 0 for p in range(2, int(stride ** 0.5) + 1)):
        stride += 1
    return stride


def histogram_subsample(x: torch.Tensor) -> torch.Tensor:
    """The values a histogram counts (see :func:`subsample_stride`), flat."""
    x = x.detach().reshape(-1)
    stride = subsample_stride(x.numel())
    return x[::stride] if stride > 1 else x


def histogram_counts(x: torch.Tensor) -> torch.Tensor:
    """int64 counts of :func:`histogram_subsample` of ``x`` in :data:`HIST_EDGES` bins, plus one last
    slot for non-finite values; shape ``(HIST_BINS + 1,)``. Bins are ``[a, b)`` as in numpy."""
    return histogram_many([histogram_subsample(x).double()])[0]


_OFFSETS: dict = {}
_EDGES: dict = {}


def _row_offsets(sizes: tuple, device) -> torch.Tensor:
    key = (sizes, str(device))
    off = _OFFSETS.get(key)
    if off is None:
        _OFFSETS.clear()                 # one forward's layout at a time (the same at every sampled step)
        off = _OFFSETS[key] = torch.cat([torch.full((n,), i * _WIDTH, dtype=torch.long, device=device)
                                         for i, n in enumerate(sizes)])
    return off


def histogram_many(parts: list) -> torch.Tensor:
    """Counts of several already-subsampled float64 tensors in one pass: ``(len(parts), HIST_BINS + 1)``.

    Each value's bin is a binary search among the edges (``searchsorted(edges, x, right) - 1``, the
    ``[a, b)`` bins of ``numpy.histogram``, clipped into the outer bins); the parts are concatenated and
    each one's bin index offset by its row, so one search and one ``bincount`` serve every activation of
    a forward pass. On CPU it runs in numpy (a few microseconds less per call).
    """
    if all(p.device.type == "cpu" for p in parts):
        return torch.from_numpy(_many_numpy([p.numpy() for p in parts]))
    return _many_torch(parts)


_WIDTH = HIST_BINS + 1
_EDGES_NP = np.asarray(HIST_EDGES)


def _many_numpy(parts: list) -> np.ndarray:
    a = np.concatenate(parts) if len(parts) > 1 else parts[0]
    idx = np.searchsorted(_EDGES_NP, a, side="right") - 1
    np.clip(idx, 0, HIST_BINS - 1, out=idx)
    idx[~np.isfinite(a)] = HIST_BINS
    if len(parts) > 1:
        idx += np.repeat(np.arange(len(parts)) * _WIDTH, [len(p) for p in parts])
    return np.bincount(idx, minlength=_WIDTH * len(parts)).reshape(len(parts), _WIDTH)


def _many_torch(parts: list) -> torch.Tensor:
    a = torch.cat(parts) if len(parts) > 1 else parts[0]
    key = (a.dtype, str(a.device))
    if key not in _EDGES:
        _EDGES[key] = to_device(HIST_EDGES, a.dtype, a.device)   # pinned, non-blocking on CUDA: no wait
    idx = (torch.searchsorted(_EDGES[key], a, right=True) - 1).clamp_(0, HIST_BINS - 1)
    idx = idx.masked_fill(~torch.isfinite(a), HIST_BINS)
    if len(parts) > 1:
        idx = idx + _row_offsets(tuple(len(p) for p in parts), a.device)
    # not bincount: on CUDA it reads the maximum back to size its output (a sync)
    counts = torch.zeros(_WIDTH * len(parts), dtype=torch.int64, device=a.device)
    return counts.index_add_(0, idx, torch.ones_like(idx)).view(len(parts), _WIDTH)


#: bins of the linear histogram kept for bounded activations (:func:`linear_counts`)
LINEAR_BINS = 40


def linear_edges(lo: float, hi: float, bins: int = LINEAR_BINS) -> list[float]:
    """``bins + 1`` evenly spaced edges from ``lo`` to ``hi``."""
    return [lo + (hi - lo) * i / bins for i in range(bins + 1)]


def linear_counts(sub: torch.Tensor, lo: float, hi: float, bins: int = LINEAR_BINS) -> torch.Tensor:
    """float64 counts of the (already subsampled) values ``sub`` in ``bins`` equal bins over ``[lo, hi]``
    (``torch.histc``: values outside are not counted; a bounded activation has none). On a linear axis a
    saturated sigmoid shows as two piles at 0 and 1 (Glorot & Bengio 2010, fig. 2), which the signed-log
    bins merge with every output above 0.56."""
    return torch.histc(sub.to(torch.float32), bins=bins, min=lo, max=hi).to(torch.float64)
