"""The lab notebook: one self-contained HTML page telling the module's story, every claim judged over seeds.

Experiments appear in the module's order, grouped by section; each shows
its story (docstring markup rendered, math drawn offline by
:mod:`impediments.report.markup`), its figure (the mean over seeds, with the
band between the lowest and highest seed where the plot draws one, and a caption
saying which), its tables, and every claim with the paper's number, our mean and
95 % interval over seeds, a strip plot of the per-seed values and the verdict; a
number every seed gave identically is shown once, as exact. The page loads nothing from the network:
no scripts, no external style sheets or images.
"""
from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from impediments.report.html import escape, png_data_uri
from impediments.report.markup import inline, to_html

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.5}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.6em} img.figure{max-width:100%;border:1px solid #eee}
img.math{vertical-align:middle} img.math-block{max-width:100%}
div.formula{margin:.6em 2em} pre.formula{background:#f8f8f8;padding:.4em .8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.3em .5em;
vertical-align:top} th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.holds{color:#11772d;font-weight:bold} .fails{color:#b00020;font-weight:bold} .inconclusive{color:#a05a00;
font-weight:bold} .muted{color:#666;font-size:.9em} code{background:#f4f4f4;padding:0 .2em}
details{margin:.6em 0} summary{cursor:pointer;color:#444} ul.measured{margin:0;padding-left:1.1em}
td.claim{max-width:30em} td.quantity{min-width:15em}
"""

LONG_TABLE = 20  # tables with more rows are folded (click to open)
VERDICT_TEXT = {"holds": "holds", "fails": "fails", "inconclusive": "inconclusive"}


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.4g}"
    return str(v)


def _table(columns: Sequence[str], rows: Sequence[Sequence], *, title: str | None = None) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{escape(_fmt(v))}</td>' if isinstance(v, (int, float)) and
                         not isinstance(v, bool) else f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in rows)
    caption = f"<caption>{escape(title)}</caption>" if title else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def strip_plot(values: Sequence[float], low: float, high: float, *, width: int = 170, height: int = 30) -> str:
    """An inline SVG: per-seed values (dots), the 95 % interval (bar) and the claimed boundary 0 (red line)."""
    finite = [v for v in (*values, low, high, 0.0) if math.isfinite(v)]
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.08 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        v = min(max(v, lo), hi) if math.isfinite(v) else (hi if v > 0 else lo)
        return 4 + (width - 8) * (v - lo) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="per-seed values">',
             f'<line x1="{x(0):.1f}" y1="2" x2="{x(0):.1f}" y2="{height - 2}" stroke="#b00020" stroke-dasharray="3,2"/>']
    if math.isfinite(low) and math.isfinite(high):
        parts.append(f'<line x1="{x(low):.1f}" y1="{height / 2:.0f}" x2="{x(high):.1f}" y2="{height / 2:.0f}" '
                     'stroke="#555" stroke-width="3" stroke-opacity="0.45"/>')
    for i, v in enumerate(values):
        y = height / 2 + (i % 3 - 1) * 5
        parts.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="2.6" fill="#1f5fa8" fill-opacity="0.8"/>')
    parts.append("</svg>")
    return "".join(parts)


def label_of(name: str, labels: dict) -> str:
    """A measured number's short human label (the experiment's, else its name in words)."""
    return labels.get(name) or name.replace("_", " ")


#: per-seed values this close (relative to their size) are one exact fact, not a spread: float rounding of a
#: deterministic number (sigmoid's peak derivative over 5 seeds gave "d = 2.2e13" from rounding alone)
EXACT_RTOL = 1e-9


def exact_value(values: Sequence[float]) -> float | None:
    """The one value of ``values`` when every seed gave it (to :data:`EXACT_RTOL`; NaN or inf: identical),
    else None."""
    values = list(values)
    if not values:
        return None
    first = values[0]
    if not all(isinstance(v, (int, float)) for v in values):
        return None
    if any(not math.isfinite(v) for v in values):
        same = all(v == first or (math.isnan(v) and math.isnan(first)) for v in values)
        return first if same else None
    scale = max(abs(v) for v in values)
    return first if max(values) - min(values) <= EXACT_RTOL * scale else None


def _exact_quantity(q, value: float) -> str:
    return (f"<div><code>{escape(q.quantity)} {escape(q.side)}</code></div>"
            f"<div>{escape(_fmt(value))} <span class='muted'>exact: the same at every one of the "
            f"{len(q.values)} seeds</span> <span class='{q.verdict}'>{q.verdict}</span></div>")


def _quantity(q) -> str:
    value = exact_value(q.values)
    if value is not None:
        return _exact_quantity(q, value)
    half = (q.high - q.low) / 2
    if q.interval == "t":
        stat = f"{_fmt(q.mean)} ± {_fmt(half)}"
    else:
        stat = f"per-seed range [{_fmt(q.low)}, {_fmt(q.high)}]"
    effect = "" if math.isnan(q.effect_size) else f", effect size d = {_fmt(q.effect_size)}"
    return (f"<div><code>{escape(q.quantity)} {escape(q.side)}</code></div>"
            f"<div>{escape(stat)} <span class='muted'>(95 % interval [{escape(_fmt(q.low))}, "
            f"{escape(_fmt(q.high))}]{escape(effect)})</span></div>"
            f"<div>{strip_plot(q.values, q.low, q.high)} <span class='{q.verdict}'>{q.verdict}</span></div>")


def _claims(claims) -> str:
    rows = []
    for c in claims:
        verdict = f'<span class="{c.verdict}">{VERDICT_TEXT[c.verdict]}</span>'
        if c.verdict == "inconclusive" and c.inconclusive_reason:
            verdict += f"<div class='muted'>why: {escape(c.inconclusive_reason)}</div>"
        paper = f"<div class='muted'>paper / module: {escape(c.paper)}</div>" if c.paper else ""
        measured = "".join(_measured(label_of(k, c.labels), v) for k, v in c.measured.items())
        checks = "".join(_quantity(q) for q in c.quantities) or "<code>" + escape(c.condition) + "</code>"
        rows.append(f"<tr><td>{verdict}</td><td class='claim'>{inline(c.text)}<div class='muted'>{escape(c.source)}"
                    f"</div>{paper}</td><td class='quantity'><div class='muted'>condition: <code>"
                    f"{escape(c.condition)}</code></div>{checks}</td><td><ul class='measured'>{measured}</ul></td></tr>")
    return ("<table><thead><tr><th>verdict</th><th>claim</th><th>quantity over seeds (mean ± 95 % interval)</th>"
            f"<th>measured (mean over seeds)</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _measured(label: str, values: Sequence[float]) -> str:
    """One measured number: once, marked exact, when every seed gave it; else the mean and each seed's value."""
    value = exact_value(values)
    if value is not None:
        return f"<li>{escape(label)}: <b>{escape(_fmt(value))}</b> <span class='muted'>(exact: every seed)</span></li>"
    return (f"<li>{escape(label)}: <b>{escape(_fmt(_mean(values)))}</b> <span class='muted'>"
            f"(seeds: {escape(', '.join(_fmt(x) for x in values))})</span></li>")


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def caption(o) -> str:
    """What the figure draws: the mean over the seeds, and the band only where the plot draws one."""
    if o.band:
        return (f"Figure: the mean of {len(o.seeds)} seeds; the shaded band around each curve runs from the lowest "
                "to the highest seed.")
    return (f"Figure: each number drawn is its mean over {len(o.seeds)} seeds (no band; the spread over seeds of "
            "every claimed number is in the strip plots below).")


def _links(pairs: Sequence[tuple[str, str]]) -> str:
    """One "Try it" line: each ``(label, href)`` a link (a repository path or a playground URL)."""
    if not pairs:
        return ""
    items = " · ".join(f'<a href="{escape(href)}">{escape(label)}</a>' for label, href in pairs)
    return f"<p class='muted'>Try it: {items}</p>"


def _experiment(o, links: Sequence[tuple[str, str]] = ()) -> str:
    verdict = o.verdict
    status = {"holds": "every claim holds", "inconclusive": "some claims inconclusive",
              "fails": "a claim fails"}[verdict]
    parts = [f'<h3 id="{escape(o.name)}">{escape(o.name)}</h3>',
             f"<p>{escape(o.description)} — <span class='{verdict}'>{status}</span> <span class='muted'>"
             f"({len(o.seeds)} seeds, run {o.elapsed_s:.1f} s in total{', from cache' if o.cached else ''})</span></p>",
             _links(links)]
    if o.story:
        parts.append(to_html(o.story))
    if o.png:
        parts.append(f'<img class="figure" alt="{escape(o.name)} figure" src="{png_data_uri(o.png)}">')
        parts.append(f"<p class='muted'>{escape(caption(o))}</p>")
    for t in o.tables:
        table = _table(t.columns, t.rows, title=None if len(t.rows) > LONG_TABLE else f"{t.title} (mean over seeds)")
        if len(t.rows) > LONG_TABLE:
            table = f"<details><summary>{escape(t.title)} ({len(t.rows)} rows)</summary>{table}</details>"
        parts.append(table)
    parts.append(_claims(o.claims))
    return "\n".join(parts)


HOW_TO_READ = (
    "Each experiment ran once per seed. A claim's condition is one expression over the measured numbers; each "
    "comparison in it is a quantity claimed positive (for example <code>acc_std - acc_raw &gt; 0</code>). Over "
    "the seeds we show its mean with a 95 % Student-t interval and the effect size d = mean / standard deviation. "
    "A claim <span class='holds'>holds</span> when the whole interval lies on the claimed side, "
    "<span class='fails'>fails</span> when it lies on the other side, and is <span class='inconclusive'>"
    "inconclusive</span> when it straddles the boundary (shown, with the reason; it does not fail the run). In "
    "the strip plots the dots are the seeds, the grey bar the interval and the dashed red line the boundary 0. "
    "A number that every seed gave identically (a closed form, a deterministic count) is a fact, not a "
    "sample: it is shown once, marked exact, with no interval or effect size.")


def render_notebook(outcomes: Sequence, *, quick: bool, seeds: Sequence[int],
                    title: str = "Impediments to learning: lab notebook",
                    links: Callable[[str], Sequence[tuple[str, str]]] | None = None) -> str:
    """The notebook as an HTML string.

    Args:
        outcomes: :class:`impediments.experiments.runner.Outcome` objects in story order.
        quick: whether quick budgets were used (stated at the top).
        seeds: the seeds every claim was judged over (stated at the top).
        links: experiment name -> ``(label, href)`` pairs shown under its heading (its Jupyter notebook and
            playground setup: the CLI passes :func:`impediments.playground.links.experiment_links`; the
            renderer imports nothing above it).
    """
    claims = [c for o in outcomes for c in o.claims]
    counts = {v: sum(c.verdict == v for c in claims) for v in VERDICT_TEXT}
    toc = "".join(f'<li><a href="#{escape(o.name)}">{escape(o.name)}</a> — {escape(o.description)} '
                  f"<span class='{o.verdict}'>({escape(o.verdict)})</span></li>" for o in outcomes)
    pending = [(o.name, c) for o in outcomes for c in o.claims if c.verdict != "holds"]
    summary = ""
    if pending:
        items = "".join(f"<li><a href='#{escape(n)}'>{escape(n)}</a>: <span class='{c.verdict}'>{c.verdict}"
                        f"</span> — {inline(c.text)}"
                        + (f" <span class='muted'>Why: {escape(c.inconclusive_reason)}</span>"
                           if c.verdict == "inconclusive" and c.inconclusive_reason else "") + "</li>"
                        for n, c in pending)
        summary = f"<h2>Claims that do not hold</h2><ul>{items}</ul>"
    body, section = [], None
    for o in outcomes:
        if o.section != section:
            section = o.section
            body.append(f"<h2>{escape(section)}</h2>")
        body.append(_experiment(o, links(o.name) if links is not None else ()))
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    from impediments._version import __version__

    seed_text = ", ".join(str(s) for s in seeds)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"<p class='muted'>impediments {escape(__version__)} · {'quick' if quick else 'full'} budgets · "
            f"seeds {escape(seed_text)} · {escape(stamp)}</p>"
            f"<p><b>{counts['holds']} of {len(claims)} claims hold, {counts['inconclusive']} inconclusive, "
            f"{counts['fails']} fail</b> over {len(seeds)} seeds. Every number below was measured by the run that "
            f"wrote this page; every verdict is computed from those numbers.</p><p>{HOW_TO_READ}</p>"
            f"{summary}<ol>{toc}</ol>{''.join(body)}</body></html>\n")


def write_notebook(path: str | Path, outcomes: Sequence, *, quick: bool, seeds: Sequence[int],
                   writer: Callable[[Path, str], None] | None = None,
                   links: Callable[[str], Sequence[tuple[str, str]]] | None = None) -> Path:
    """Render and write the notebook (with ``writer(path, text)`` if given, e.g. an atomic writer; ``links`` as
    in :func:`render_notebook`)."""
    path = Path(path)
    text = render_notebook(outcomes, quick=quick, seeds=seeds, links=links)
    if writer is None:
        path.write_text(text, encoding="utf-8")
    else:
        writer(path, text)
    return path
