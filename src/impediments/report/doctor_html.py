"""The doctor's report as one self-contained HTML page (findings first, then plots as inline PNG).

Plots, from the report's MonitorStats when present: the loss over training (window means, with
the windows the loss rules compare shaded), activation distributions by layer, dead and saturated
fractions by layer, gradient norms by layer, and, when there is history, a per-layer "colorful
dimension" view of activation variance, dead fraction and gradient norm over training, and each
activation's distribution over training (its histogram per time window, the view TensorBoard calls
histograms over time). Activations are recorded on sampled steps only, so the x axis of the views
over training is the windows that hold a sampled step, each labelled with its steps.
"""
from __future__ import annotations

import math

from impediments.doctor.fractions import layer_fractions, thresholds_of
from impediments.doctor.terminal import module_types, readable
from impediments.report.html import escape, fig_to_data_uri

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;
font-size:14px}th{background:#f3f3f3}.error{color:#b00020;font-weight:bold}.warning{color:#a66400;
font-weight:bold}.info{color:#00638a}.ok{color:#1b7f2a;font-weight:bold}img{max-width:100%}
.small{font-size:12px;color:#555}code{background:#f5f5f5;padding:1px 3px}"""


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _img(fig, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="{fig_to_data_uri(fig)}">'


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:6]) + \
            (", ..." if len(value) > 6 else "") + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value[:6]) + (", ..." if len(value) > 6 else "") + "]"
    return str(value)


def findings_table(report) -> str:
    if not report.findings:
        return '<p class="ok">No impediments found.</p>'
    types = module_types(report.stats)
    rows = ["<tr><th>severity</th><th>code</th><th>where</th><th>evidence</th><th>why</th><th>fix</th></tr>"]
    for f in report.findings:
        evidence = "<br>".join(f"{escape(k)} = {escape(_short(v))}" for k, v in f.evidence.items())
        rows.append(f'<tr><td class="{f.severity}">{f.severity}</td><td><code>{escape(f.code)}</code></td>'
                    f"<td>{escape(', '.join(readable(w, types) for w in f.where))}</td><td class=small>{evidence}</td>"
                    f"<td>{escape(f.explanation)}</td><td>{escape(f.remedy)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _by_depth(items: dict):
    return sorted(items.items(), key=lambda kv: (kv[1].depth, kv[0]))


def activation_histograms(stats) -> str | None:
    acts = [(n, a) for n, a in _by_depth(stats.activations) if sum(a.histogram.counts) > 0][:16]
    if not acts:
        return None
    cols = min(4, len(acts))
    rows = math.ceil(len(acts) / cols)
    fig = _figure(3.2 * cols, 2.2 * rows)
    for i, (name, a) in enumerate(acts):
        ax = fig.add_subplot(rows, cols, i + 1)
        edges, counts = a.histogram.edges, a.histogram.counts
        total = sum(counts)
        ax.stairs([c / total for c in counts], range(len(edges)), fill=True, alpha=0.7)
        ticks = [j for j in range(0, len(edges), max(1, len(edges) // 4))]
        ax.set_xticks(ticks, [f"{edges[j]:.2g}" for j in ticks], fontsize=7)
        ax.set_title(f"{name} ({a.kind})", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("activation output distributions by layer (signed-log bins)", fontsize=10)
    fig.tight_layout()
    return _img(fig, "activation distributions")


def fractions_by_layer(stats, th=None) -> str | None:
    """Per activation, the dead and saturated fractions the ``dead_units`` and ``saturated_units`` rules
    judged (:mod:`impediments.doctor.fractions`, at the report's thresholds ``th``); a layer a rule does
    not judge (a kind that cannot die or saturate, too few values) has no bar."""
    acts = _by_depth(stats.activations)
    if not acts:
        return None
    names = [n for n, _ in acts]
    fractions = layer_fractions(stats, th)
    dead = [math.nan if fractions[n][0] is None else fractions[n][0] for n in names]
    sat = [math.nan if fractions[n][1] is None else fractions[n][1] for n in names]
    fig = _figure(max(5.0, 0.6 * len(names) + 2), 3.0)
    ax = fig.add_subplot(1, 1, 1)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], dead, width=0.4, label="dead units", color="#444")
    ax.bar([i + 0.2 for i in x], sat, width=0.4, label="saturated inputs (sigmoid-like)", color="#d95f02")
    ax.set_xticks(list(x), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction")
    ax.legend(fontsize=8)
    ax.set_title("dead and saturated fractions by layer", fontsize=10)
    fig.tight_layout()
    return _img(fig, "dead and saturated fractions")


def gradient_norms(stats) -> str | None:
    params = [(n, p) for n, p in stats.params.items() if p.samples > 0 and math.isfinite(p.grad_norm)]
    if not params:
        return None
    fig = _figure(max(5.0, 0.5 * len(params) + 2), 3.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(params)), [max(p.grad_norm, 1e-30) for _, p in params], color="#1b9e77")
    ax.set_yscale("log")
    ax.set_xticks(range(len(params)), [n for n, _ in params], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("mean ||grad||")
    ax.set_title("gradient norms by parameter", fontsize=10)
    fig.tight_layout()
    return _img(fig, "gradient norms")


def step_label(window) -> str:
    """The steps of a window: ``"12"`` for one step, ``"8-11"`` for steps 8 to 11 (inclusive)."""
    last = window.end_step - 1
    return str(window.start_step) if last <= window.start_step else f"{window.start_step}-{last}"


def _step_ticks(ax, windows: list) -> None:
    ticks = list(range(0, len(windows), max(1, math.ceil(len(windows) / 10))))
    ax.set_xticks(ticks, [step_label(windows[j]) for j in ticks], fontsize=7, rotation=30, ha="right")
    ax.set_xlabel("sampled steps (one column per window holding a sampled step)", fontsize=8)


def sampled_windows(stats, key: str) -> list:
    """The windows in which ``key`` (``activation_var``, ``dead_fraction``, ``grad_norm``,
    ``histograms``) holds data: those with a sampled step. The others would be blank columns."""
    return [w for w in stats.windows if getattr(w, key)]


def history(stats) -> str | None:
    # per window, the monitor's fraction of units silent over that window's examples: not the dead_units rule's
    # whole-run count (:mod:`impediments.doctor.fractions`), which the bars by layer show
    panels = [("activation_var", "log10 activation variance", True),
              ("dead_fraction", "fraction of units silent in the window", False),
              ("grad_norm", "log10 gradient norm", True)]
    panels = [(key, title, log, sampled_windows(stats, key)) for key, title, log in panels]
    panels = [p for p in panels if len(p[3]) >= 2]
    if not panels:
        return None
    fig = _figure(11, 2.9 * len(panels))
    types = module_types(stats)
    for i, (key, title, log, windows) in enumerate(panels):
        names = sorted({n for w in windows for n in getattr(w, key)})
        grid = [[_cell(getattr(w, key).get(n), log) for w in windows] for n in names]
        ax = fig.add_subplot(len(panels), 1, i + 1)
        im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap="viridis")
        ax.set_yticks(range(len(names)), [readable(n, types) for n in names], fontsize=7)
        _step_ticks(ax, windows)
        ax.set_title(f"{title} over training", fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return _img(fig, "history")


def compared_windows(windows: list, transient_steps: int) -> tuple[list, list, list]:
    """``(transient, first third, last third)``: the windows with a loss that start before
    ``transient_steps`` (no trend is judged on them), then the first and last third of the others,
    whose mean losses ``diverging_loss`` compares (:mod:`impediments.doctor.rules.loss`)."""
    with_loss = [w for w in windows if w.loss_mean is not None]
    transient = [w for w in with_loss if w.start_step < transient_steps]
    later = [w for w in with_loss if w.start_step >= transient_steps]
    k = max(1, len(later) // 3)
    return transient, later[:k], later[-k:] if later else []


def _threshold(report, name: str, default):
    return next((row["value"] for row in report.thresholds if row.get("name") == name), default)


def loss_curve(stats, transient_steps: int = 0) -> str | None:
    """The loss of every window (its mean over the window's steps) against the step, with the windows
    the loss rules read shaded (:func:`compared_windows`)."""
    windows = [w for w in stats.windows if w.loss_mean is not None and math.isfinite(w.loss_mean)]
    if stats.loss is None or not windows:
        return None
    fig = _figure(8, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    mid = [(w.start_step + w.end_step - 1) / 2 for w in windows]
    ax.plot(mid, [w.loss_mean for w in windows], marker="o", markersize=3, color="#1b5e20", label="window mean")
    transient, first, last = compared_windows(stats.windows, transient_steps)
    for part, color, label in ((transient, "#999999", f"first {transient_steps} steps: transient, no trend judged"),
                               (first, "#1f78b4", "first third" + (" after it" if transient else "")), (last, "#e31a1c", "last third")):
        if part:
            ax.axvspan(part[0].start_step - 0.5, part[-1].end_step - 0.5, color=color, alpha=0.15, label=label)
    if min(w.loss_mean for w in windows) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss", fontsize=8)
    ax.legend(fontsize=7)
    nonfinite = f"; first non-finite at step {stats.loss.first_nonfinite_step}" \
        if stats.loss.first_nonfinite_step is not None else ""
    ax.set_title(f"loss over training ({stats.loss.count} steps in {len(windows)} windows{nonfinite})", fontsize=9)
    fig.tight_layout()
    return _img(fig, "loss curve")


def distributions_over_time(stats, most: int = 6) -> str | None:
    """Per activation (the ``most`` shallowest), its output histogram in each window as a column,
    normalised per column: drift, collapse to zero and saturation at +-1 show as bands moving."""
    windows = sampled_windows(stats, "histograms")
    acts = [n for n, _ in _by_depth(stats.activations)
            if sum(1 for w in windows if sum(w.histograms.get(n, [])) > 0) >= 2][:most]
    if not acts:
        return None
    edges = next(iter(stats.activations.values())).histogram.edges
    types = module_types(stats)
    fig = _figure(11, 2.2 * len(acts))
    for i, name in enumerate(acts):
        cols = [(w, w.histograms[name]) for w in windows if sum(w.histograms.get(name, [])) > 0]
        used = [b for b in range(len(edges) - 1) if any(c[b] for _, c in cols)]
        lo, hi = used[0], used[-1] + 1
        grid = [[c[b] / sum(c) for _, c in cols] for b in range(lo, hi)]
        ax = fig.add_subplot(len(acts), 1, i + 1)
        im = ax.imshow(grid, aspect="auto", origin="lower", interpolation="nearest", cmap="magma")
        rows = list(range(0, hi - lo, max(1, (hi - lo) // 5)))
        ax.set_yticks(rows, [f"{edges[lo + r]:.0e}" for r in rows], fontsize=7)
        _step_ticks(ax, [w for w, _ in cols])
        ax.set_title(f"{readable(name, types)}: output distribution over training", fontsize=9)
        fig.colorbar(im, ax=ax, label="fraction")
    fig.tight_layout()
    return _img(fig, "distributions over time")


def gradient_through_time(stats, floor: float | None = None) -> str | None:
    """Per recurrent module, the gradient energy reaching its input ``k`` steps before its last output,
    relative to ``k = 0`` (:class:`~impediments.monitor.schema.RecurrentStats`), on a log axis, with the
    float32 floor below which the doctor calls the gradient lost."""
    curves = [(n, r) for n, r in stats.recurrent.items()
              if r.samples and any(e > 0 for e in r.energy_by_steps_back if math.isfinite(e))]
    if not curves:
        return None
    fig = _figure(7, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    for name, r in curves:
        points = [(k, e) for k, e in enumerate(r.energy_by_steps_back) if math.isfinite(e) and e > 0]
        ax.plot([k for k, _ in points], [e for _, e in points], marker="o", markersize=2,
                label=f"{name or '(model)'} ({r.kind}, {r.samples} sampled forwards)")
    if floor:
        ax.axhline(floor, color="#b00020", linestyle="--", linewidth=1, label="float32 floor (gradient lost below)")
    ax.set_yscale("log")
    ax.set_xlabel("steps back from the last output", fontsize=8)
    ax.set_ylabel("gradient energy / energy at 0", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("gradient through time of the recurrent modules", fontsize=9)
    fig.tight_layout()
    return _img(fig, "gradient through time")


def _cell(value, log: bool) -> float:
    if value is None or not math.isfinite(value):
        return float("nan")
    return math.log10(max(value, 1e-12)) if log else value      # floor: exact zeros show as 1e-12


def render_report(report) -> str:
    """The whole page as a string (no external URLs: plots are base64 PNGs)."""
    stats = report.stats
    plots = []
    if stats is not None:
        transient = int(float(_threshold(report, "transient_steps", 0)))
        floor = float(_threshold(report, "through_time_floor", 0)) or None
        th = thresholds_of(report)
        for fn in (lambda st: loss_curve(st, transient), activation_histograms,
                   lambda st: fractions_by_layer(st, th), gradient_norms,
                   lambda st: gradient_through_time(st, floor), history, distributions_over_time):
            html = fn(stats)
            if html:
                plots.append(html)
    skipped = "".join(f"<li><code>{escape(k)}</code>: {escape(v)}</li>" for k, v in report.skipped.items())
    thresholds = "".join(f"<tr><td><code>{escape(t['name'])}</code></td><td>{escape(t['value'])}</td>"
                         f"<td>{escape(t['reason'])}</td></tr>" for t in report.thresholds)
    steps = f"<p class=small>steps: {stats.steps}</p>" if stats is not None else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(report.title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(report.title)}</h1>{steps}"
            f"<h2>Findings</h2>{findings_table(report)}"
            + "".join(f"<div>{p}</div>" for p in plots)
            + (f"<h2>Not checked</h2><ul>{skipped}</ul>" if skipped else "")
            + (f"<h2>Thresholds</h2><table><tr><th>name</th><th>value</th><th>reason</th></tr>{thresholds}</table>"
               if thresholds else "")
            + "</body></html>\n")
