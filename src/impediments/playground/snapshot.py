"""What the page draws, as plain JSON: per-layer statistics and findings from the monitor and doctor.

:func:`monitor_view` reads a :class:`~impediments.monitor.schema.MonitorStats` and its
:class:`~impediments.doctor.Report` (both computed by the library, nothing re-derived here):

- per activation, in depth order: the dead and saturated fractions the doctor's rules judged
  (:mod:`impediments.doctor.fractions`, at the report's thresholds; None where a rule does not
  judge that layer);
- per Linear/Conv weight: gradient-to-weight and update-to-weight norm ratios;
- the findings, each with its remedy, its experiment and the playground link of that experiment;
- the monitor's latest window histograms (signed-log edges) and its loss per window, for pages
  that have nothing else (the live doctor).
"""
from __future__ import annotations

import math

from impediments.activations.catalog import flat_region_name
from impediments.doctor.fractions import dead_fraction, saturated_fraction, thresholds_of
from impediments.playground.links import EXPERIMENT_SETUPS, experiment_fragment


def _num(x) -> float | None:
    """A JSON-safe float (non-finite -> None)."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


def finding_view(f, remedies: list[dict]) -> dict:
    """One finding as the page shows it; ``remedies``: what "Apply remedy" may do (playground runs only)."""
    exp = f.experiment
    link = "#" + experiment_fragment(exp) if exp in EXPERIMENT_SETUPS else None
    return {"code": f.code, "severity": f.severity, "where": list(f.where)[:6], "more": max(0, len(f.where) - 6),
            "explanation": f.explanation, "remedy": f.action, "experiment": exp,
            "reproduce": f.link.removeprefix("see: "), "experiment_link": link, "remedies": remedies}


def monitor_view(stats, report, *, remedies=lambda code: [], histograms: bool = False) -> dict:
    """The page's view of the monitor's statistics and the doctor's findings (``remedies``: a finding's code ->
    the remedies the page can apply, :func:`~impediments.playground.remedies.remedy_options`)."""
    acts = sorted(stats.activations.values(), key=lambda a: (a.depth, a.name))
    th = thresholds_of(report)
    weights = [(n, p) for n, p in stats.params.items() if n.endswith("weight") and p.samples]
    view = {
        "step": stats.steps, "sampled_steps": stats.sampled_steps,
        "layers": [a.name for a in acts],
        "dead": [_num(dead_fraction(a, th)) for a in acts],
        "saturated": [_num(saturated_fraction(a)) for a in acts],
        "flat_name": [flat_region_name(a.kind) for a in acts],
        "param_layers": [p.module or n for n, p in weights],
        "grad_ratio": [_num(p.grad_to_weight) for _, p in weights],
        "update_ratio": [_num(p.update_to_weight) for _, p in weights],
        "findings": [finding_view(f, remedies(f.code)) for f in report.findings],
    }
    if histograms:
        view["monitor_hist"] = latest_histograms(stats, [a.name for a in acts])
        view["loss_windows"] = [[(w.start_step + w.end_step - 1) / 2, _num(w.loss_mean)]
                                for w in stats.windows if w.loss_mean is not None]
    return view


def latest_histograms(stats, layers: list[str]) -> dict | None:
    """The newest window's output histogram of each activation, cut to the bins any layer uses."""
    from impediments.monitor.state.histogram import HIST_EDGES

    latest: dict[str, list[int]] = {}
    for w in stats.windows:
        latest.update(w.histograms)
    rows = [latest.get(n) for n in layers]
    used = [i for i in range(len(HIST_EDGES) - 1) if any(r and r[i] for r in rows)]
    if not used:
        return None
    lo, hi = used[0], used[-1] + 1
    return {"edges": [_num(e) for e in HIST_EDGES[lo:hi + 1]], "scale": "signed-log",
            "counts": [r[lo:hi] if r else None for r in rows], "step": stats.steps}
