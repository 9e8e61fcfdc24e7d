"""The text table of a :class:`~impediments.fix.report.FixReport` (baseline, one row per remedy, the choice)."""
from __future__ import annotations

import math

#: characters of a "not run" reason shown in the table (longer ones are printed in full below it)
ERROR_WIDTH = 70
HEADER = ("remedy", "status", "cleared", "new findings", "train loss", "metric (change)", "wall s")


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


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _loss(trials) -> str:
    vals = [t.train_loss for t in trials]
    return "nan" if not all(map(math.isfinite, vals)) else f"{sum(vals) / len(vals):.3g}"


def _row_cells(row, settings, mark: str = "") -> tuple:
    v = row.verdict
    if v.errors:
        return (mark + row.name, f"not run: {_clip(v.errors[0], ERROR_WIDTH)}", "-", "-", "-", "-",
                f"{sum(t.wall_s for t in row.trials):.1f}")
    cleared = ", ".join(v.cleared) or "none"
    return (mark + row.name, v.status + (f": {v.short}" if v.short else ""), cleared, ", ".join(v.new) or "none",
            _loss(row.trials), _metric(row.trials, settings) + _change(row, settings),
            f"{sum(t.wall_s for t in row.trials):.1f}")


def render_text(report) -> str:
    """The table plus the verdict, the code snippet and the notes, as plain text."""
    s = report.settings
    lines = [f"{report.title}: {s['steps']} steps, batch {s['batch_size']}, seeds {s['seeds']}, "
             f"metric {s['metric']} on {s['val_examples']} validation examples"]
    base_flagged = ", ".join(report.flagged) or "none"
    rows = [("baseline", "as is", f"flagged: {base_flagged}", "", _loss(report.baseline),
             _metric(report.baseline, s), f"{sum(t.wall_s for t in report.baseline):.1f}")]
    if not report.flagged:
        lines.append("nothing above info: no remedy tried, nothing changed")
    for row in report.rows:
        rows.append(_row_cells(row, s, "* " if report.chosen is row else ""))
    if report.combination is not None:
        rows.append(_row_cells(report.combination, s, "* " if report.chosen is report.combination else "+ "))
    widths = [max(len(str(r[i])) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    lines += [fmt.format(*HEADER), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    lines.append(f"(verified fix: its finding gone on every seed, no new warning or error, {s['metric']} no worse than "
                 f"the baseline's by more than {s['tolerance']:.3g}, and at least {s['min_evidence_steps']} steps "
                 "trained; * = chosen, + = combination)")
    lines += [f"{row.name}: {row.verdict.errors[0]}" for row in report.rows
              if row.verdict.errors and len(row.verdict.errors[0]) > ERROR_WIDTH]    # in full: the clipped reasons
    if report.not_tried:
        lines.append(f"not tried (run budget): {', '.join(report.not_tried)}")
    if report.flagged:
        if report.chosen is None:
            lines.append("no verified fix: findings remain: " + ", ".join(report.remaining))
        else:
            left = ", ".join(report.remaining) or "none"
            lines.append(f"chosen: {report.chosen.name}; still flagged after it: {left}")
        lines += ["", "change:", report.snippet()]
    lines += [f"note: {n}" for n in report.notes]
    lines.append(f"total {report.wall_s:.1f} s")
    return "\n".join(lines)
