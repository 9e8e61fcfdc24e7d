"""Rich display in Jupyter: compact HTML for the doctor's report, the fix report, the monitor's statistics
and an experiment's claims, and a live view that redraws one output area while a model trains.

Layering: the domain objects (:class:`~impediments.doctor.Report`, :class:`~impediments.fix.report.FixReport`,
:class:`~impediments.monitor.schema.MonitorStats`, :class:`~impediments.experiments.claims.Claim`) sit below
this package and cannot import it, so they carry no ``_repr_html_``. Instead :func:`register` adds these
renderers to IPython's ``text/html`` display formatter *by type name* (``for_type_by_name``: no domain
module is imported to register); ``import impediments`` calls it when IPython is running, so a cell whose
value is a report shows the table below in JupyterLab and in a static render (nbconvert keeps the HTML in
the notebook's outputs). The HTML is self-contained: inline styles, no script, no external URL.

The live view (:class:`NotebookFeed`, ``watch(model, live="notebook")`` or ``mon.display()``) shows one
output area (``IPython.display.display(..., display_id=True)``) and updates it in place at the monitor's
sampled steps, with no server. When it updates, and the bound on its cost (at most ``1 / COST_FACTOR``, 5 %,
of the training time), are the shared live feed's (:mod:`impediments.report.feed`), which the browser's
live doctor uses too.
"""
from __future__ import annotations

import math
import sys

from impediments.activations.catalog import display_name, flat_region_name
from impediments.report.feed import Feed
from impediments.report.html import escape
from impediments.report.markup import inline

_SEVERITY_COLOR = {"error": "#b00020", "warning": "#b26a00", "info": "#1f5fa8"}
_VERDICT_COLOR = {"holds": "#1b7f3b", "fails": "#b00020", "inconclusive": "#b26a00"}
_CELL = "padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #ddd"
_BOX = "font-family:sans-serif;font-size:13px;line-height:1.35;max-width:1100px"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table of already-escaped cells."""
    head = "".join(f'<th style="{_CELL};font-weight:600">{h}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{c}</td>' for c in row) + "</tr>" for row in rows)
    return f'<table style="border-collapse:collapse;margin:4px 0">{"<tr>" + head + "</tr>"}{body}</table>'


def _tag(text: str, color: str) -> str:
    return f'<span style="color:{color};font-weight:600">{escape(text)}</span>'


def _number(x) -> str:
    """A number as a reader wants it: integers exact, others to 3 significant digits, NaN/inf in words."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return f"{x:.3g}"
    return escape(x)


def _where(names: list[str], most: int = 3) -> str:
    shown = ", ".join(escape(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


# ------------------------------------------------------------------------------------------------ the doctor
def report_html(report) -> str:
    """The doctor's :class:`~impediments.doctor.Report` as one table: severity, code, where, why, what to do."""
    worst = report.worst
    head = (f'<b>{escape(report.title)}</b>: '
            + (_tag(f"{len(report.findings)} finding(s), worst {worst}", _SEVERITY_COLOR[worst]) if worst
               else _tag("no impediments found", "#1b7f3b")))
    parts = [f"<div>{head}</div>"]
    if report.findings:
        rows = [[_tag(f.severity, _SEVERITY_COLOR[f.severity]), f"<code>{escape(f.code)}</code>"
                 + (f"<br><small>caused by <code>{escape(f.caused_by)}</code></small>" if f.caused_by else ""),
                 _where(f.where), escape(f.explanation), escape(f.action) + f"<br><small>{escape(f.link)}</small>"]
                for f in report.findings]
        parts.append(_table(["severity", "code", "where", "why", "what to do"], rows))
    if report.skipped:
        parts.append(f"<div><small>not checked: {len(report.skipped)} rule(s) "
                     f"({escape(', '.join(sorted(report.skipped)[:6]))}{', ...' if len(report.skipped) > 6 else ''})"
                     f"</small></div>")
    return f'<div style="{_BOX}">{"".join(parts)}</div>'


# ------------------------------------------------------------------------------------------------ the monitor
def stats_html(stats, *, most: int = 12) -> str:
    """A :class:`~impediments.monitor.schema.MonitorStats` summary: steps, loss, and per activation its kind,
    its flat fraction under the kind's name (saturated or inactive) and the dead fraction the doctor judges
    (:func:`impediments.doctor.fractions.layer_fractions`, the numbers every view shows)."""
    from impediments.doctor.fractions import layer_fractions

    lines = [f"<b>monitor</b>: {stats.steps} steps, {stats.sampled_steps} sampled"]
    if stats.loss is not None and stats.loss.count:
        lines.append(f"loss {_number(stats.loss.first)} → {_number(stats.loss.last)} "
                     f"(lowest {_number(stats.loss.min)}, {stats.loss.count} recorded)")
    parts = [f"<div>{'; '.join(lines)}</div>"]
    fractions = layer_fractions(stats)
    rows = []
    for name, a in sorted(stats.activations.items(), key=lambda kv: kv[1].depth)[:most]:
        dead, _ = fractions[name]
        flat = flat_region_name(a.kind)
        rows.append([escape(name), escape(display_name(a.kind)), str(a.units),
                     f"{_number(a.saturated_fraction)} {flat}", _number(a.linear_fraction),
                     _number(dead) if dead is not None else "–"])
    if rows:
        parts.append(_table(["activation", "kind", "units", "flat region (fraction of inputs)", "linear", "dead"],
                            rows))
        if len(stats.activations) > most:
            parts.append(f"<div><small>{len(stats.activations) - most} more activations</small></div>")
    return f'<div style="{_BOX}">{"".join(parts)}</div>'


# ------------------------------------------------------------------------------------------------ impediments fix
def fix_html(report) -> str:
    """``impediments fix``'s :class:`~impediments.fix.report.FixReport`: what was flagged, what each remedy did,
    the chosen change as code."""
    if not report.flagged:
        verdict = _tag("nothing flagged: nothing to fix", "#1b7f3b")
    elif report.chosen is not None:
        verdict = (_tag(f"verified fix: {report.chosen.label}", "#1b7f3b")
                   + (f"; still flagged: {escape(', '.join(report.remaining))}" if report.remaining else ""))
    else:
        verdict = _tag("no verified fix found", _SEVERITY_COLOR["error"])
    parts = [f"<div><b>{escape(report.title)}</b>: {verdict}</div>",
             f"<div>flagged: {escape(', '.join(report.flagged)) or '–'}</div>"]
    rows = [[escape(r.label), escape(", ".join(r.verdict.verified)) or "–",
             escape(", ".join(r.verdict.cleared)) or "–", escape(", ".join(r.verdict.new)) or "–",
             _number(r.verdict.delta), escape(r.verdict.short) or "–"] for r in report.rows]
    if rows:
        parts.append(_table(["remedy", "verified", "cleared", "new", "metric change", "evidence short"], rows))
    parts.append(f'<pre style="background:#f6f6f6;padding:6px">{escape(report.snippet())}</pre>')
    return f'<div style="{_BOX}">{"".join(parts)}</div>'


# ------------------------------------------------------------------------------------------------ claims
def _measured(measured: dict, labels: dict) -> str:
    return "<br>".join(f"{escape(labels.get(k, k))} = {_number(v)}" for k, v in measured.items())


def _claim_row(claim) -> list[str]:
    verdict = "holds" if claim.passed else "fails"
    return [inline(claim.text), escape(claim.source), _measured(claim.measured, claim.labels),
            escape(claim.paper) or "–", f"<code>{escape(claim.condition)}</code>",
            _tag(verdict, _VERDICT_COLOR[verdict])]


def claim_html(claim, *more) -> str:
    """:class:`~impediments.experiments.claims.Claim` objects at one seed, one row each: the statement typeset,
    ours beside the paper's."""
    return f'<div style="{_BOX}">' + _table(["claim", "source", "ours", "paper", "checked", "at this seed"],
                                             [_claim_row(c) for c in (claim, *more)]) + "</div>"


def _seed_claim_row(c) -> list[str]:
    ours = "<br>".join(
        f"{escape(c.labels.get(k, k))} = " + (_number(v[0]) + " (every seed)" if len(set(v)) == 1
                                              else f"{_number(min(v))} to {_number(max(v))}")
        for k, v in c.measured.items())
    return [inline(c.text), ours, escape(c.paper) or "–", f"<code>{escape(c.condition)}</code>",
            _tag(c.verdict, _VERDICT_COLOR.get(c.verdict, "#333")) + f"<br><small>{len(c.seeds)} seeds</small>"]


def outcome_html(outcome) -> str:
    """An experiment's :class:`~impediments.experiments.runner.Outcome`: its verdict and its claims over seeds,
    ours beside the paper's number (an exact fact shown once, not as a spread)."""
    head = (f"<b>{escape(outcome.name)}</b>: {_tag(outcome.verdict, _VERDICT_COLOR.get(outcome.verdict, '#333'))} "
            f"over {len(outcome.seeds)} seed(s)")
    rows = [_seed_claim_row(c) for c in outcome.claims]
    body = _table(["claim", "ours", "paper", "checked", "verdict"], rows) if rows else ""
    errors = "".join(f"<div>{_tag('error', _SEVERITY_COLOR['error'])}: {escape(e)}</div>" for e in outcome.errors)
    return f'<div style="{_BOX}"><div>{head}</div>{body}{errors}</div>'


def seed_claim_html(claim) -> str:
    """One claim checked over seeds (:class:`~impediments.experiments.verdict.SeedClaim`)."""
    return f'<div style="{_BOX}">' + _table(["claim", "ours", "paper", "checked", "verdict"],
                                             [_seed_claim_row(claim)]) + "</div>"


def show_claims(claims) -> None:
    """A notebook cell's check of :class:`~impediments.experiments.claims.Claim` objects at one seed: in IPython
    one table with each statement typeset (its ``:math:`` drawn, ours beside the paper's), then one plain line
    per claim, ``holds: CONDITION    (measured)``; outside IPython the plain lines carry the statement too."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        from IPython.display import HTML, display

        if claims:
            display(HTML(claim_html(*claims)))
    for c in claims:
        measured = ", ".join(f"{name} = {value:.4g}" for name, value in c.measured.items())
        statement = "" if shell is not None else f"{c.text}\n    "
        print(f"{'holds' if c.passed else 'FAILS'}: {statement}{c.condition}    ({measured})")


#: (module, class name) -> renderer; registered by name so that registering imports no domain module
RENDERERS = {
    ("impediments.doctor.finding", "Report"): report_html,
    ("impediments.fix.report", "FixReport"): fix_html,
    ("impediments.monitor.schema", "MonitorStats"): stats_html,
    ("impediments.experiments.claims", "Claim"): claim_html,
    ("impediments.experiments.verdict", "SeedClaim"): seed_claim_html,
    ("impediments.experiments.runner", "Outcome"): outcome_html,
}


def register(shell=None) -> bool:
    """Add the renderers to IPython's ``text/html`` formatter; False (and nothing done) outside IPython.

    Args:
        shell: an ``InteractiveShell``; default the running one (``IPython.get_ipython()``).
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    formatter = shell.display_formatter.formatters["text/html"]
    for (module, name), render in RENDERERS.items():
        formatter.for_type_by_name(module, name, render)
    return True


# ------------------------------------------------------------------------------------------------ the live view
def live_html(stats, report, *, training: bool, updates: int) -> str:
    """What the live view shows: the state, the monitor's summary and the doctor's findings."""
    state = _tag("training", "#1f5fa8") if training else _tag("done", "#1b7f3b")
    return (f'<div style="{_BOX}"><div><b>impediments live</b>: {state} · update {updates}</div>'
            f"{stats_html(stats)}{report_html(report)}</div>")


class NotebookFeed(Feed):
    """Redraws one notebook output area with the monitor's statistics and findings at sampled steps.

    When it updates and what that may cost is :class:`~impediments.report.feed.Feed`'s (shared with the
    browser's live feed); this class only draws: :func:`live_html` into the output area it created.
    """

    def __init__(self, monitor, model) -> None:
        from IPython.display import HTML, display

        super().__init__(monitor, model)
        self._html = HTML
        self.area = display(HTML('<div style="font-family:sans-serif">impediments live: waiting for the first '
                                 "sampled step</div>"), display_id=True)

    def show(self, stats, report) -> None:
        self.area.update(self._html(live_html(stats, report, training=self.training, updates=self.updates)))
