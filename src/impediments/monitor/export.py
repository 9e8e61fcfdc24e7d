"""Exports: versioned JSON (``to_json``) and an optional TensorBoard writer (``to_tensorboard``)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from impediments._files import write_atomic
from impediments._json import from_jsonable, to_jsonable
from impediments.monitor import schema as S


def to_dict(stats: S.MonitorStats) -> dict:
    """``{"schema": "impediments.monitor.stats", "version": 1, "stats": ...}`` in the package's one JSON
    convention (:mod:`impediments._json`: non-finite floats as ``"nan"``, ``"inf"``, ``"-inf"``)."""
    return {"schema": S.SCHEMA_NAME, "version": S.SCHEMA_VERSION, "stats": to_jsonable(stats)}


def to_json(stats: S.MonitorStats, path) -> Path:
    """Write :func:`to_dict` to ``path`` atomically (the folder must exist)."""
    return write_atomic(path, json.dumps(to_dict(stats), indent=1, allow_nan=False))


def from_json(path) -> S.MonitorStats:
    """Read :func:`to_json` output (non-finite floats restored).

    Raises:
        ValueError: if the file is not a monitor-stats document of a supported version.
    """
    d = json.loads(Path(path).read_text())
    if d.get("schema") != S.SCHEMA_NAME or d.get("version") != S.SCHEMA_VERSION:
        raise ValueError(f"not an {S.SCHEMA_NAME} v{S.SCHEMA_VERSION} document "
                         f"(schema={d.get('schema')!r}, version={d.get('version')!r})")
    return S.MonitorStats.from_dict(from_jsonable(d["stats"]))


def to_tensorboard(stats: S.MonitorStats, writer, step: int | None = None) -> int:
    """Write scalars and histograms to a ``torch.utils.tensorboard.SummaryWriter``; returns the count.

    Needs the ``tensorboard`` extra only for creating the writer.
    """
    import numpy as np

    step = stats.steps if step is None else step
    n = 0
    for name, a in stats.activations.items():
        for k, v in (("output_mean", a.output.mean), ("output_var", a.output.var),
                     ("saturated_fraction", a.saturated_fraction), ("dead_units", float(len(a.dead_units)))):
            if isinstance(v, float) and math.isfinite(v):
                writer.add_scalar(f"activations/{name}/{k}", v, step)
                n += 1
        n += _histogram(writer, f"activations/{name}/output", a.histogram.counts, a.histogram.edges,
                        a.output.min, a.output.max, step)
    for name, p in stats.params.items():
        for k, v in (("grad_norm", p.grad_norm), ("grad_to_weight", p.grad_to_weight),
                     ("update_to_weight", p.update_to_weight)):
            if math.isfinite(v):
                writer.add_scalar(f"params/{name}/{k}", v, step)
                n += 1
    edges = next(iter(stats.activations.values())).histogram.edges if stats.activations else None
    for w in stats.windows:
        if w.loss_mean is not None and math.isfinite(w.loss_mean):
            writer.add_scalar("loss/window_mean", w.loss_mean, w.end_step)
            n += 1
        for name, counts in (w.histograms or {}).items():     # TensorBoard's histograms-over-time view
            n += _histogram(writer, f"activations_over_time/{name}", counts, edges, NAN, NAN, w.end_step)
    return n


NAN = float("nan")


def _histogram(writer, tag: str, counts, edges, lo: float, hi: float, step: int) -> int:
    """One ``add_histogram_raw`` of fixed-edge counts; 0 if empty. ``sum``/``sum_squares`` are estimated
    from bin centres (TensorBoard does not draw them)."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.float64)
    if edges is None or counts.sum() <= 0:
        return 0
    edges = np.asarray(edges)
    centers = (edges[:-1] + edges[1:]) / 2
    # TensorBoard draws the outer non-empty buckets from min to max; without finite moments (a window,
    # or an activation that saw NaN/Inf) the edges of the outer non-empty buckets stand in
    nz = np.flatnonzero(counts)
    lo = lo if math.isfinite(lo) else edges[nz[0]]
    hi = hi if math.isfinite(hi) else edges[nz[-1] + 1]
    writer.add_histogram_raw(tag, min=float(lo), max=float(hi), num=int(counts.sum()),
                             sum=float((counts * centers).sum()), sum_squares=float((counts * centers ** 2).sum()),
                             bucket_limits=edges[1:].tolist(), bucket_counts=counts.tolist(), global_step=step)
    return 1
