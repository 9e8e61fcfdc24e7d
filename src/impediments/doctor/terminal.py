"""Terminal rendering of a report: a rich table of severity, code, where and key evidence, then remedies."""
from __future__ import annotations

import io

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from impediments.activations.catalog import display_name

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


def module_types(stats) -> dict[str, str]:
    """``{module name: type name}`` of the layers, activations and BatchNorm layers in ``stats``.

    Activations are recorded by catalog kind (``"relu"``); a module-named one (no ``/``) shows the
    ``nn`` class of that kind (``"ReLU"``), a functional call keeps its name (``"block/relu#0"``).
    """
    if stats is None:
        return {}
    out = {name: display_name(a.kind) for name, a in stats.activations.items() if "/" not in name}
    out.update({name: layer.kind for name, layer in stats.layers.items()})
    out.update({name: bn.kind for name, bn in stats.batchnorm.items()})
    return out


def readable(name: str, types: dict[str, str]) -> str:
    """``"8 (ReLU)"`` for a module (or ``"8.weight (Linear)"`` for its parameter) whose name ends in an
    index, as the children of ``nn.Sequential`` are named; other names are readable as they are."""
    module = name if name in types else name.rsplit(".", 1)[0]
    last = module.rsplit(".", 1)[-1]
    if (last.isdigit() or module == "") and types.get(module):
        return f"{name} ({types[module]})"
    return name


def short_where(where: list[str], types: dict[str, str] | None = None) -> str:
    where = [readable(w, types or {}) for w in where]
    shown = ", ".join(where[:MAX_WHERE])
    return shown + (f" (+{len(where) - MAX_WHERE} more)" if len(where) > MAX_WHERE else "")


def short_evidence(evidence: dict) -> str:
    items = [(k, v) for k, v in evidence.items() if not isinstance(v, dict)][:MAX_EVIDENCE]
    return "; ".join(f"{k}={format_value(v)}" for k, v in items)


def detail_lines(evidence: dict, types: dict[str, str]) -> list[str]:
    """What the table row leaves out: the per-layer numbers (``evidence["layers"]``, at most
    ``MAX_WHERE`` layers, each with the window its numbers come from when it has one) and how much
    the verdict saw (``evidence["seen"]``)."""
    lines = []
    layers = evidence.get("layers")
    if isinstance(layers, dict):
        for name, numbers in list(layers.items())[:MAX_WHERE]:
            if isinstance(numbers, dict):
                shown = "; ".join(f"{k}={format_value(v)}" for k, v in numbers.items() if not isinstance(v, dict))
                lines.append(f"{readable(name, types)}: {shown}")
        if len(layers) > MAX_WHERE:
            rest = list(layers)[MAX_WHERE:]
            named = ", ".join(readable(n, types) for n in rest[:MAX_WHERE]) + (", ..." if len(rest) > MAX_WHERE else "")
            lines.append(f"(+{len(rest)} more layers, numbers not shown here: {named}; --json or --html lists every "
                         "layer)")
    seen = evidence.get("seen")
    if isinstance(seen, dict) and seen:
        lines.append("seen: " + ", ".join(f"{k}={format_value(v)}" for k, v in seen.items()))
    return lines


def skipped_by_reason(skipped: dict[str, str]) -> dict[str, list[str]]:
    """``{reason: [what, ...]}``: one reason shared by several rules is said once."""
    out: dict[str, list[str]] = {}
    for what, reason in skipped.items():
        out.setdefault(reason, []).append(what)
    return out


def rich_renderable(report):
    """A rich ``Group``: title, findings table and numbered remedies (or an all-clear line)."""
    parts = [Text(report.title, style="bold")]
    types = module_types(report.stats)
    if not report.findings:
        parts.append(Text("No impediments found.", style="green"))
    else:
        table = Table(show_lines=False, expand=False)
        for col in ("#", "severity", "code", "where", "evidence"):
            table.add_column(col, overflow="fold")
        for i, f in enumerate(report.findings, 1):
            table.add_row(str(i), Text(f.severity, style=STYLE[f.severity]), f.code, short_where(f.where, types),
                          short_evidence(f.evidence))
        parts.append(table)
        for i, f in enumerate(report.findings, 1):
            parts.append(Text.assemble((f"{i}. {f.code}: ", "bold"), f.explanation))
            for line in detail_lines(f.evidence, types):
                parts.append(Text(f"   {line}", style="dim"))
            parts.append(Text(f"   fix: {f.action}"))
            parts.append(Text(f"   {f.link}", style="dim"))
    if report.skipped:
        parts.append(Text("not checked: " + "; ".join(f"{', '.join(names)} ({reason})"
                                                      for reason, names in skipped_by_reason(report.skipped).items()),
                          style="dim"))
    return Group(*parts)


def render_text(report, *, width: int = 120) -> str:
    """The report as plain text (no colour codes), as printed by ``print(report)``."""
    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True, color_system=None, force_terminal=False).print(
        rich_renderable(report))
    return buf.getvalue().rstrip() + "\n"
