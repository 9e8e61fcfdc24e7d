"""Renderers of self-contained HTML pages (may import matplotlib): the doctor's report, the fix report,
the lab notebook.

Renderers pull: they take a domain object (a :class:`~impediments.doctor.Report`, a
:class:`~impediments.fix.report.FixReport`) and render it; no domain object imports them. Callers above
(the CLI, the framework callbacks) call :func:`render_doctor_html` and :func:`render_fix_html`.
"""
from __future__ import annotations


def render_doctor_html(report, path=None) -> str:
    """The doctor's :class:`~impediments.doctor.Report` as one self-contained HTML page.

    Args:
        report: the report to render (its ``stats``, when present, give the plots).
        path: also write the page there, atomically (its folder must exist).

    Returns:
        The page as a string (no external URLs: plots are base64 PNGs).
    """
    from impediments.report.doctor_html import render_report

    return _written(render_report(report), path)


def render_fix_html(report, path=None) -> str:
    """``impediments fix``'s :class:`~impediments.fix.report.FixReport` as one self-contained HTML page
    (verdict, findings diff, loss curves, the chosen change as code); also written to ``path`` when given."""
    from impediments.report.fix_html import render_fix

    return _written(render_fix(report), path)


def _written(text: str, path) -> str:
    if path is not None:
        from impediments.doctor.atomic import write_text_atomic

        write_text_atomic(path, text)
    return text


__all__ = ["render_doctor_html", "render_fix_html"]
