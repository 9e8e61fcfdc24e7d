"""The doctor's report as one self-contained HTML page (findings first, then plots as inline PNG).

Each finding is a card, causes first: its code and what it means, where, why (the mechanism), the evidence
as a short sentence (the rule's confidence and how much it saw) with small tables of the numbers (one row
per layer where the rule judged layers), the fix and the experiment that shows it.

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

from impediments.doctor.codes import CODES
from impediments.doctor.fractions import layer_fractions, thresholds_of
from impediments.doctor.terminal import module_types, readable
from impediments.report.html import escape, fig_to_data_uri

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;
font-size:14px}th{background:#f3f3f3}.error{color:#b00020;font-weight:bold}.warning{color:#a66400;
font-weight:bold}.info{color:#00638a}.ok{color:#1b7f2a;font-weight:bold}img{max-width:100%}
.small{font-size:12px;color:#555}code{background:#f5f5f5;padding:1px 3px}
.finding{border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:0.4em 1em;margin:1em 0}
.finding.sev-error{border-left-color:#b00020}.finding.sev-warning{border-left-color:#a66400}
.finding.sev-info{border-left-color:#00638a}
.finding h3{margin:0.3em 0;font-size:17px;color:#222}.finding p{margin:0.4em 0}
.finding table{margin:0.4em 0}.finding td,.finding th{font-size:13px;padding:2px 8px}"""


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


#: evidence keys said elsewhere in a card (the sentence, the "seen" line, merged findings) or too long for a cell
_SAID_ELSEWHERE = ("confidence", "seen", "also", "layers")
#: at most this many rows in an evidence table (a report lists every layer in its JSON)
MAX_ROWS = 6
#: at most this many numbers per layer in the per-layer table
MAX_COLUMNS = 5
#: at most this many places named in a card's "Where."
MAX_WHERE = 12


def _words(key: str) -> str:
    return str(key).replace("_", " ")


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def _rows_table(header: tuple, rows: list[tuple], more: int = 0) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(_short(c))}</td>" for c in row) + "</tr>" for row in rows)
    tail = f'<tr><td colspan="{len(header)}" class=small>+{more} more</td></tr>' if more else ""
    return f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}{tail}</table>"


def _per_layer(layers: dict, types: dict) -> str:
    """``{layer: {number: value}}`` as one row per layer and a column per number (the first few scalars)."""
    rows = [(n, v) for n, v in layers.items() if isinstance(v, dict)]
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for _, v in rows for k, x in v.items()
                                 if isinstance(x, (int, float)) and not isinstance(x, bool)))
    columns = columns[:MAX_COLUMNS]
    shown = [(readable(n, types), *(v.get(c, "") for c in columns)) for n, v in rows[:MAX_ROWS]]
    return _rows_table(("layer", *map(_words, columns)), shown, len(rows) - MAX_ROWS if len(rows) > MAX_ROWS else 0)


def _seen(evidence: dict) -> str:
    seen = evidence.get("seen")
    if not isinstance(seen, dict) or not seen:
        return ""
    return "seen: " + ", ".join(f"{_short(v)} {_words(k)}" for k, v in seen.items())


def evidence_html(evidence: dict, types: dict) -> str:
    """The evidence as a short sentence (the rule's ``confidence``, and how much it saw) plus small tables: the
    measured numbers, one row per layer where the rule judged layers one by one, and a ``{name: number}``
    breakdown (a gain or variance per layer); never a dump of nested dicts."""
    sentence = evidence.get("confidence") if isinstance(evidence.get("confidence"), str) else ""
    sentence = sentence[:1].upper() + sentence[1:].rstrip(".") + "." if sentence else ""
    seen = _seen(evidence)
    para = escape(sentence) + (f" <span class=small>({escape(seen)})</span>" if seen else "")
    numbers = [(_words(k), v) for k, v in evidence.items()
               if k not in _SAID_ELSEWHERE and _is_scalar(v) and v not in ("", None)]
    parts = [f"<p><b>Evidence.</b> {para}</p>"] if para.strip() else ["<p><b>Evidence.</b></p>"]
    if numbers:
        parts.append(_rows_table((), numbers[:MAX_ROWS], max(0, len(numbers) - MAX_ROWS)))
    if isinstance(evidence.get("layers"), dict):
        parts.append(_per_layer(evidence["layers"], types))
    breakdown = next(((k, v) for k, v in evidence.items() if k not in _SAID_ELSEWHERE and isinstance(v, dict) and v
                      and all(_is_scalar(x) for x in v.values())), None)
    if breakdown is not None:
        key, values = breakdown
        items = list(values.items())
        parts.append(_rows_table(("", _words(key)), [(readable(n, types), v) for n, v in items[:MAX_ROWS]],
                                 max(0, len(items) - MAX_ROWS)))
    return "".join(parts)


def finding_card(f, types: dict) -> str:
    """One finding: its severity, code and summary, where (the first :data:`MAX_WHERE` places, the rest counted),
    why, the evidence, the fix and where it is shown."""
    where = ", ".join(readable(w, types) for w in f.where[:MAX_WHERE]) + (
        f" (+{len(f.where) - MAX_WHERE} more)" if len(f.where) > MAX_WHERE else "")
    caused = (f'<p class=small>caused by <code>{escape(f.caused_by)}</code>, reported above</p>'
              if f.caused_by else "")
    return (f'<div class="finding sev-{f.severity}" data-code="{f.code}"><h3><span class="{f.severity}">{f.severity}</span> '
            f"<code>{escape(f.code)}</code>: {escape(CODES[f.code].summary)}</h3>{caused}"
            + (f"<p><b>Where.</b> {escape(where)}</p>" if where else "")
            + f"<p><b>Why.</b> {escape(f.explanation)}</p>{evidence_html(f.evidence, types)}"
            f"<p><b>Fix.</b> {escape(f.action)}</p><p class=small>{escape(f.link)}</p></div>")


def findings_table(report) -> str:
    """The findings, causes first, one card each (:func:`finding_card`)."""
    if not report.findings:
        return '<p class="ok">No impediments found.</p>'
    types = module_types(report.stats)
    return "".join(finding_card(f, types) for f in report.findings)


def _by_depth(items: dict):
    return sorted(items.items(), key=lambda kv: (kv[1].depth, kv[0]))


def _histogram_panel(ax, a) -> str:
    """One activation's output distribution on the scale that shows its signature; returns the scale's name.

    A bounded kind (sigmoid, tanh, ...) in linear bins over its output range
    (:attr:`~impediments.monitor.schema.ActivationStats.linear_histogram`): saturation shows as piles at the
    bounds (0 and 1 for a sigmoid, Glorot & Bengio 2010), which signed-log bins merge with every output above
    0.56. Any other kind in the monitor's signed-log bins, cut to the bins holding values: a ReLU's exact
    zeros in the middle bin, magnitudes over decades beside it."""
    lin = a.linear_histogram
    if lin is not None and sum(lin.counts) > 0:
        total = sum(lin.counts)
        ax.stairs([c / total for c in lin.counts], lin.edges, fill=True, alpha=0.75, color="#d95f02")
        ax.set_xlim(lin.edges[0], lin.edges[-1])
        ax.tick_params(axis="x", labelsize=7)
        return "linear"
    edges, counts = a.histogram.edges, a.histogram.counts
    used = [j for j, c in enumerate(counts) if c]
    lo, hi = max(0, used[0] - 1), min(len(counts), used[-1] + 2)
    total = sum(counts)
    ax.stairs([c / total for c in counts[lo:hi]], range(lo, hi + 1), fill=True, alpha=0.75, color="#1f78b4")
    zero = len(counts) // 2                  # the middle bin [-1e-6, 1e-6): exact zeros, labelled 0 at its centre
    ticks = [j for j in range(lo, hi + 1, max(1, (hi - lo) // 4)) if abs(j - zero - 0.5) > max(1.0, (hi - lo) / 8)]
    labels = [f"{edges[j]:.2g}" for j in ticks]
    if lo <= zero < hi:
        ticks, labels = [*ticks, zero + 0.5], [*labels, "0"]
    ax.set_xticks(ticks, labels, fontsize=7)
    return "signed-log"


def activation_histograms(stats) -> str | None:
    """Each activation's output distribution (the 16 shallowest), on the scale of :func:`_histogram_panel`."""
    acts = [(n, a) for n, a in _by_depth(stats.activations) if sum(a.histogram.counts) > 0][:16]
    if not acts:
        return None
    cols = min(4, len(acts))
    rows = math.ceil(len(acts) / cols)
    fig = _figure(3.2 * cols, 2.3 * rows)
    types = module_types(stats)
    for i, (name, a) in enumerate(acts):
        ax = fig.add_subplot(rows, cols, i + 1)
        scale = _histogram_panel(ax, a)
        ax.set_title(f"{readable(name, types)}: {scale} bins", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("activation outputs by layer (fraction of values per bin): linear bins over the output range for "
                 "bounded activations, signed-log bins for the others", fontsize=9)
    fig.tight_layout()
    return _img(fig, "activation distributions")


def fractions_by_layer(stats, th=None) -> str | None:
    """Per activation, the dead and saturated fractions the ``dead_units`` and ``saturated_units`` rules
    judged (:mod:`impediments.doctor.fractions`, at the report's thresholds ``th``); a layer a rule does
    not judge (a kind that cannot die or saturate, too few values) has no bar. With every fraction 0 the panel
    would be empty: one line says so instead."""
    acts = _by_depth(stats.activations)
    if not acts:
        return None
    names = [n for n, _ in acts]
    fractions = layer_fractions(stats, th)
    dead = [math.nan if fractions[n][0] is None else fractions[n][0] for n in names]
    sat = [math.nan if fractions[n][1] is None else fractions[n][1] for n in names]
    if not any(v > 0 for v in dead + sat if math.isfinite(v)):      # an empty panel: say it in words
        judged = sum(1 for d, t in zip(dead, sat) if math.isfinite(d) or math.isfinite(t))
        return (f"<p class=small>dead and saturated fractions by layer: 0 in each of the {judged} layers judged"
                f"{'' if judged == len(names) else f' ({len(names) - judged} of {len(names)} not judged)'}</p>")
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


#: a log10 colour scale spans at least this many decades: a spread of a few hundredths of a decade is noise,
#: and a colour bar stretched over it (-0.70 .. -0.675) draws noise as structure
MIN_DECADES = 2.0


def _colour_range(grid: list[list[float]], log: bool) -> tuple[float, float]:
    """The colour range of a panel: ``[0, 1]`` for a fraction; for a log10 quantity the data's range widened
    to at least :data:`MIN_DECADES` about its middle."""
    if not log:
        return 0.0, 1.0
    values = [v for row in grid for v in row if math.isfinite(v)]
    if not values:
        return -1.0, 1.0
    lo, hi = min(values), max(values)
    if hi - lo < MIN_DECADES:
        mid = (lo + hi) / 2
        lo, hi = mid - MIN_DECADES / 2, mid + MIN_DECADES / 2
    return lo, hi


def history(stats, dead_warning: float | None = None) -> str | None:
    """Per layer and sampled window: log10 activation variance, the fraction of units silent in the window
    (drawn only when some layer reached ``dead_warning`` in some window: otherwise an empty panel), and log10
    gradient norm, on colour ranges that mean something (:func:`_colour_range`)."""
    # per window, the monitor's fraction of units silent over that window's examples: not the dead_units rule's
    # whole-run count (:mod:`impediments.doctor.fractions`), which the bars by layer show
    panels = [("activation_var", "log10 activation variance", True, "viridis"),
              ("dead_fraction", "fraction of units silent in the window", False, "YlOrRd"),
              ("grad_norm", "log10 gradient norm", True, "viridis")]
    panels = [(key, title, log, cmap, sampled_windows(stats, key)) for key, title, log, cmap in panels]
    panels = [p for p in panels if len(p[4]) >= 2]
    if dead_warning is not None:
        panels = [p for p in panels if p[0] != "dead_fraction" or any(
            math.isfinite(v) and v >= dead_warning for w in p[4] for v in w.dead_fraction.values())]
    if not panels:
        return None
    fig = _figure(11, 2.9 * len(panels))
    types = module_types(stats)
    for i, (key, title, log, cmap, windows) in enumerate(panels):
        names = sorted({n for w in windows for n in getattr(w, key)})
        grid = [[_cell(getattr(w, key).get(n), log) for w in windows] for n in names]
        lo, hi = _colour_range(grid, log)
        ax = fig.add_subplot(len(panels), 1, i + 1)
        im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap=cmap, vmin=lo, vmax=hi)
        ax.set_yticks(range(len(names)), [readable(n, types) for n in names], fontsize=7)
        _step_ticks(ax, windows)
        ax.set_title(f"{title} over training" + (" (an exact 0 drawn at -12)" if log else ""), fontsize=9)
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


#: the loss is drawn on a log axis when it spans at least this factor; below it on a linear axis from 0, where a
#: loss that stays at 2.30 is a flat line rather than its third-decimal noise stretched over the panel
LOG_LOSS_RATIO = 10.0


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
    low, high = min(w.loss_mean for w in windows), max(w.loss_mean for w in windows)
    if low > 0 and high / low >= LOG_LOSS_RATIO:
        ax.set_yscale("log")
    elif low >= 0:
        ax.set_ylim(0, 1.1 * high)          # from 0: a plateau is flat, not its noise magnified
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
    normalised per column: drift, collapse to zero and saturation at +-1 show as bands moving. An activation
    whose values all fell in one bin in every window (exact zeros throughout) has no distribution to draw:
    the panels above already show it, so it gets no panel here."""
    windows = sampled_windows(stats, "histograms")

    def bins_used(name: str) -> int:
        rows = [w.histograms[name] for w in windows if w.histograms.get(name)]
        return sum(1 for b in range(min(map(len, rows), default=0)) if any(r[b] for r in rows))

    acts = [n for n, _ in _by_depth(stats.activations)
            if sum(1 for w in windows if sum(w.histograms.get(n, [])) > 0) >= 2 and bins_used(n) >= 2][:most]
    if not acts:
        return None
    from matplotlib.colors import LogNorm

    edges = next(iter(stats.activations.values())).histogram.edges
    zero = (len(edges) - 1) // 2             # the middle bin [-1e-6, 1e-6): exact zeros
    types = module_types(stats)
    fig = _figure(11, 2.2 * len(acts))
    for i, name in enumerate(acts):
        cols = [(w, w.histograms[name]) for w in windows if sum(w.histograms.get(name, [])) > 0]
        used = [b for b in range(len(edges) - 1) if any(c[b] for _, c in cols)]
        lo, hi = used[0], used[-1] + 1
        grid = [[c[b] / sum(c) if c[b] else math.nan for _, c in cols] for b in range(lo, hi)]
        ax = fig.add_subplot(len(acts), 1, i + 1)
        # a log colour scale from 1e-3: a bin holding a few values shows beside one holding half of them (on a
        # linear scale everything but the largest bin is black); an empty bin is left white
        im = ax.imshow(grid, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                       norm=LogNorm(vmin=1e-3, vmax=1.0))
        rows = list(range(0, hi - lo, max(1, (hi - lo) // 5)))
        ax.set_yticks(rows, ["0" if lo + r == zero else f"{edges[lo + r]:.0e}" for r in rows], fontsize=7)
        _step_ticks(ax, [w for w, _ in cols])
        ax.set_title(f"{readable(name, types)}: output distribution over training (signed-log bins)", fontsize=9)
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
                   lambda st: gradient_through_time(st, floor), lambda st: history(st, th.dead_warning),
                   distributions_over_time):
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
