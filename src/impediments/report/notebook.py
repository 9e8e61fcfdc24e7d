"""The lab notebook: one self-contained HTML page telling the module's story.

Experiments appear in the module's order, grouped by section; each shows
its story text, its figure (embedded as a PNG data URI), its tables of
measured numbers and the verdict on every claim. The page loads nothing
from the network: no scripts, no external style sheets or images.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from pathlib import Path

from impediments.report.html import escape, png_data_uri

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.6em} img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .5em;
vertical-align:top} th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#11772d;font-weight:bold} .fail{color:#b00020;font-weight:bold} .muted{color:#666;font-size:.9em}
pre.formula{background:#f8f8f8;padding:.4em .8em} code{background:#f4f4f4;padding:0 .2em}
details{margin:.6em 0} summary{cursor:pointer;color:#444}
"""


LONG_TABLE = 20  # tables with more rows are folded (click to open)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
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


def _story(text: str) -> str:
    """Paragraphs separated by blank lines; a paragraph whose lines are all indented stays preformatted."""
    parts = []
    for para in text.strip().split("\n\n"):
        lines = [line for line in para.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line.startswith((" ", "\t")) for line in lines):
            parts.append(f'<pre class="formula">{escape(chr(10).join(line.strip() for line in lines))}</pre>')
        else:
            parts.append(f'<p class="story">{escape(" ".join(line.strip() for line in lines))}</p>')
    return "\n".join(parts)


def _claims(claims) -> str:
    rows = []
    for c in claims:
        verdict = '<span class="pass">PASS</span>' if c.passed else '<span class="fail">FAIL</span>'
        measured = ", ".join(f"{escape(k)} = {escape(_fmt(v))}" for k, v in c.measured.items())
        rows.append(f"<tr><td>{verdict}</td><td>{escape(c.text)}<div class='muted'>{escape(c.source)}</div></td>"
                    f"<td><code>{escape(c.threshold)}</code></td><td>{measured}</td></tr>")
    return ("<table><thead><tr><th>verdict</th><th>claim</th><th>condition</th><th>measured</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _experiment(o) -> str:
    status = '<span class="pass">all claims pass</span>' if o.passed else '<span class="fail">claims fail</span>'
    parts = [f'<h3 id="{escape(o.name)}">{escape(o.name)}</h3>',
             f"<p>{escape(o.description)} — {status} <span class='muted'>(run {o.elapsed_s:.1f} s"
             f"{', from cache' if o.cached else ''})</span></p>"]
    story = getattr(o, "story", "")
    if story:
        parts.append(_story(story))
    if o.png:
        parts.append(f'<img alt="{escape(o.name)} figure" src="{png_data_uri(o.png)}">')
    for t in o.tables:
        table = _table(t.columns, t.rows, title=None if len(t.rows) > LONG_TABLE else t.title)
        if len(t.rows) > LONG_TABLE:
            table = f"<details><summary>{escape(t.title)} ({len(t.rows)} rows)</summary>{table}</details>"
        parts.append(table)
    parts.append(_claims(o.claims))
    return "\n".join(parts)


def render_notebook(outcomes: Sequence, *, quick: bool, seed: int, title: str = "Impediments to learning: "
                    "lab notebook") -> str:
    """The notebook as an HTML string.

    Args:
        outcomes: :class:`impediments.experiments.runner.Outcome` objects in story order.
        quick: whether quick budgets were used (stated at the top).
        seed: the seed used (stated at the top).
    """
    total = sum(len(o.claims) for o in outcomes)
    passed = sum(c.passed for o in outcomes for c in o.claims)
    toc = "".join(f'<li><a href="#{escape(o.name)}">{escape(o.name)}</a> — {escape(o.description)}</li>'
                  for o in outcomes)
    body, section = [], None
    for o in outcomes:
        if o.section != section:
            section = o.section
            body.append(f"<h2>{escape(section)}</h2>")
        body.append(_experiment(o))
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    from impediments import __version__

    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f"<p class='muted'>impediments {escape(__version__)} · {'quick' if quick else 'full'} budgets · "
            f"seed {seed} · {escape(stamp)}</p>"
            f"<p><b>{passed}/{total} claims pass.</b> Every number below was measured by the run that wrote this "
            f"page; every verdict is computed from those numbers.</p><ol>{toc}</ol>{''.join(body)}</body></html>\n")


def write_notebook(path: str | Path, outcomes: Sequence, *, quick: bool, seed: int,
                   writer: Callable[[Path, str], None] | None = None) -> Path:
    """Render and write the notebook (with ``writer(path, text)`` if given, e.g. an atomic writer)."""
    path = Path(path)
    text = render_notebook(outcomes, quick=quick, seed=seed)
    if writer is None:
        path.write_text(text, encoding="utf-8")
    else:
        writer(path, text)
    return path
