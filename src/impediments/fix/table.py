"""The text table of a :class:`~impediments.fix.report.FixReport` (baseline, one row per remedy, the choice)."""
from __future__ import annotations

import math
import textwrap

from impediments.fix.remedies.labels import row_label
from impediments.fix.verdict import root_cause

#: the widest line the text report prints (a terminal of 100 columns); cells wrap to fit it
WIDTH = 100
HEADER = ("remedy", "status", "findings cleared / new", "train loss", "metric (change)", "wall s")
#: the columns whose text wraps when the table would be wider than :data:`WIDTH`, with the width each is
#: narrowed towards first (the findings column last, never under its longest code name)
WRAPPING = {0: 24, 1: 13, 2: 24, 3: 5, 4: 18}
GAP = "  "


def _metric(trials, settings) -> str:
    values = [t.val_acc if settings["metric"] == "val_acc" else t.val_loss for t in trials]
    if any(v is None for v in values):
        return "-"
    mean = sum(values) / len(values)
    return f"{mean:.1%}" if settings["metric"] == "val_acc" else f"{mean:.4g}"


def _change(row, settings) -> str:
    d = row.verdict.delta
    if not math.isfinite(d):
        return ""
    return f" ({d * 100:+.1f} pts)" if settings["metric"] == "val_acc" else f" ({-d:+.3g})"


def _loss(trials) -> str:
    vals = [t.train_loss for t in trials]
    return "nan" if not all(map(math.isfinite, vals)) else f"{sum(vals) / len(vals):.3g}"


def _row_cells(row, settings, mark: str = "") -> tuple:
    v = row.verdict
    wall = f"{sum(t.wall_s for t in row.trials):.1f}"
    if v.errors:
        return (mark + row.label, "not run (below)", "-", "-", "-", wall)
    findings = f"cleared: {', '.join(v.cleared) or 'none'}" + (f"; new: {', '.join(v.new)}" if v.new else "")
    return (mark + row.label, v.status + (f": {v.short}" if v.short else ""), findings,
            _loss(row.trials), _metric(row.trials, settings) + _change(row, settings), wall)


def _widths(rows: list[tuple], width: int = WIDTH) -> list[int]:
    """Column widths: each column's longest cell, then the wrapping column furthest above its target
    (:data:`WRAPPING`) narrowed one character at a time, never under its longest word, until the table
    fits ``width``."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(HEADER))]
    longest_word = {i: max(len(w) for r in rows for w in str(r[i]).split() or [""]) for i in WRAPPING}
    while sum(widths) + len(GAP) * (len(widths) - 1) > width:
        candidates = [i for i in WRAPPING if widths[i] > longest_word[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: (widths[i] - WRAPPING[i], widths[i]))
        widths[widest] -= 1
    return widths


def _table_lines(rows: list[tuple], width: int = WIDTH) -> list[str]:
    """``rows`` (the header first) as aligned text, each cell wrapped to its column, a rule under the header."""
    widths = _widths(rows, width)
    out = []
    for k, row in enumerate(rows):
        cells = [textwrap.wrap(str(c), w, break_on_hyphens=False) or [""] for c, w in zip(row, widths)]
        for j in range(max(map(len, cells))):
            out.append(GAP.join(f"{(c[j] if j < len(c) else ''):{w}}" for c, w in zip(cells, widths)).rstrip())
        if k == 0:
            out.append(GAP.join("-" * w for w in widths))
    return out


def _prose(text: str, width: int = WIDTH) -> list[str]:
    """A sentence wrapped to ``width``, continuation lines indented by two spaces."""
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False) or [""]


def render_text(report, width: int = WIDTH) -> str:
    """The table plus the verdict, the code snippet and the notes, as plain text: the heading, the table and its
    legend within ``width`` columns; the reasons, the verdict, the code and the notes one line each."""
    s = report.settings
    lines = _prose(f"{report.title}: {s['steps']} steps, batch {s['batch_size']}, seeds {s['seeds']}, "
                   f"metric {s['metric']} on {s['val_examples']} validation examples", width)
    base_flagged = ", ".join(report.flagged) or "none"
    rows = [HEADER, ("baseline", "as is", f"flagged: {base_flagged}", _loss(report.baseline),
                     _metric(report.baseline, s), f"{sum(t.wall_s for t in report.baseline):.1f}")]
    if not report.flagged:
        lines.append("nothing above info: no remedy tried, nothing changed")
    for row in report.rows:
        rows.append(_row_cells(row, s, "* " if report.chosen is row else ""))
    if report.combination is not None:
        rows.append(_row_cells(report.combination, s, "* " if report.chosen is report.combination else "+ "))
    lines += _table_lines(rows, width)
    lines += _prose(f"(verified fix: its finding gone on every seed, no new warning or error, {s['metric']} no worse "
                    f"than the baseline's by more than {s['tolerance']:.3g}, and at least {s['min_evidence_steps']} "
                    "steps trained; * = chosen, + = combination)", width)
    # one line each, unwrapped (a reason quotes a file:line or a message a reader may search for)
    lines += [f"not run: {row.label}: {row.verdict.errors[0]}" for row in report.rows if row.verdict.errors]
    if report.not_tried:
        lines.append(f"not tried (run budget): {', '.join(row_label(n.split(' + ')) for n in report.not_tried)}")
    if report.flagged:
        if report.chosen is None:
            lines.append("no verified fix: findings remain: " + ", ".join(report.remaining))
        else:
            root = root_cause(report.baseline[0].findings)
            why = (", the smallest change that clears the root cause " + root
                   if root in report.chosen.verdict.verified and len(report.chosen.verdict.remedies) == 1 else "")
            lines.append(f"chosen: {report.chosen.label} ({report.chosen.name} in the JSON){why}; still flagged "
                         f"after it: {', '.join(report.remaining) or 'none'}")
            others = [r.label for r in report.rows if r.verdict.verified and r is not report.chosen]
            if others:
                lines += _prose(f"also verified: {'; '.join(others)}", width)
        lines += ["", "change:", report.snippet(), ""]
    lines += [f"note: {n}" for n in report.notes]
    lines.append(f"total {report.wall_s:.1f} s")
    return "\n".join(lines)
