"""Terminal rendering of a report: a rich table of severity, code, where and key evidence, then remedies."""
from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
MAX_WHERE = 3
MAX_EVIDENCE = 4


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(format_value(v) for v in value[:4])
        return f"[{shown}{', ...' if len(value) > 4 else ''}]"
    return str(value)


def short_where(where: list[str]) -> str:
    shown = ", ".join(where[:MAX_WHERE])
    return shown + (f" (+{len(where) - MAX_WHERE} more)" if len(where) > MAX_WHERE else "")


def short_evidence(evidence: dict) -> str:
    items = [(k, v) for k, v in evidence.items() if not isinstance(v, dict)][:MAX_EVIDENCE]
    return "; ".join(f"{k}={format_value(v)}" for k, v in items)


def rich_renderable(report):
    """A rich ``Group``: title, findings table and numbered remedies (or an all-clear line)."""
    parts = [Text(report.title, style="bold")]
    if not report.findings:
        parts.append(Text("No impediments found.", style="green"))
    else:
        table = Table(show_lines=False, expand=False)
        for col in ("#", "severity", "code", "where", "evidence"):
            table.add_column(col, overflow="fold")
        for i, f in enumerate(report.findings, 1):
            table.add_row(str(i), Text(f.severity, style=STYLE[f.severity]), f.code, short_where(f.where),
                          short_evidence(f.evidence))
        parts.append(table)
        for i, f in enumerate(report.findings, 1):
            parts.append(Text.assemble((f"{i}. {f.code}: ", "bold"), f.explanation))
            parts.append(Text(f"   fix: {f.remedy}"))
    if report.skipped:
        parts.append(Text("not checked: " + "; ".join(f"{k} ({v})" for k, v in report.skipped.items()),
                          style="dim"))
    return Group(*parts)


def render_text(report, *, width: int = 120) -> str:
    """The report as plain text (no colour codes), as printed by ``print(report)``."""
    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True, color_system=None, force_terminal=False).print(
        rich_renderable(report))
    return buf.getvalue().rstrip() + "\n"
