"""``impediments fix``'s report as one self-contained HTML page.

Sections: the verdict, the table (baseline, one row per remedy, the combination),
the findings diff (per row: cleared, still flagged, new), the training-loss curves
of the baseline against every remedy with the chosen one highlighted (inline PNG),
and the chosen change as code.
"""
from __future__ import annotations

import math

from impediments.fix.remedies.labels import row_label
from impediments.report.doctor_html import CSS
from impediments.report.html import escape, fig_to_data_uri


def _codes(codes, cls: str) -> str:
    return " ".join(f'<code class="{cls}">{escape(c)}</code>' for c in codes) or "none"


def _metric(trials, metric: str) -> str:
    values = [t.val_acc if metric == "val_acc" else t.val_loss for t in trials]
    if any(v is None or not math.isfinite(v) for v in values):
        return "n/a"
    mean = sum(values) / len(values)
    return f"{mean:.1%}" if metric == "val_acc" else f"{mean:.4g}"


def diff_table(report) -> str:
    """Per row: the verdict, cleared / still flagged / new codes, metric and its change."""
    metric = report.settings["metric"]
    head = ("<tr><th>run</th><th>status</th><th>cleared</th><th>still flagged</th><th>new</th>"
            f"<th>{escape(metric)}</th><th>change</th><th>note</th></tr>")
    rows = [f"<tr><td>baseline</td><td>as is</td><td></td><td>{_codes(report.flagged, 'warning')}</td><td></td>"
            f"<td>{_metric(report.baseline, metric)}</td><td></td><td></td></tr>"]
    extra = [report.combination] if report.combination is not None else []
    for row in [*report.rows, *extra]:
        v = row.verdict
        still = sorted(set().union(*(t.flagged for t in row.trials)) - set(v.new)) if not v.errors else []
        change = "" if not math.isfinite(v.delta) else (f"{v.delta * 100:+.1f} pts" if metric == "val_acc"
                                                          else f"{-v.delta:+.3g}")
        cls = "ok" if v.verified else ("error" if v.new or v.errors else "warning")
        name = (("&#9733; " if row is report.chosen else "")
                + f'<span title="{escape(row.name)} in the JSON">{escape(row.label)}</span>')
        note = escape("; ".join(v.errors) or v.short or "; ".join(c["note"] for c in row.trials[0].changes
                                                                  if c["note"]))
        rows.append(f'<tr><td>{name}</td><td class="{cls}">{escape(v.status)}</td><td>{_codes(v.cleared, "ok")}'
                    f"</td><td>{'' if v.errors else _codes(still, 'warning')}</td><td>{_codes(v.new, 'error')}</td>"
                    f"<td>{'' if v.errors else _metric(row.trials, metric)}</td><td>{change}</td>"
                    f"<td class=small>{note}</td></tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def _finite(curve) -> list[float]:
    return [v for v in curve if math.isfinite(v)]


def loss_curves(report) -> str | None:
    """Training loss per step (seed of the first run): left, the baseline against the chosen fix; right, every
    remedy tried, on the baseline's scale (curves that leave it, e.g. diverging ones, are cut at the top)."""
    if not report.rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    before, after = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    base = report.baseline[0].curve
    for ax in (before, after):
        ax.plot(range(len(base)), base, lw=2.2, color="black", label="baseline")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
    if report.chosen is not None:
        curve = report.chosen.trials[0].curve
        before.plot(range(len(curve)), curve, lw=2.2, color="#1b7f2a", label=f"chosen: {report.chosen.label}")
    before.set_title("before and after the chosen fix")
    for row in report.rows:
        curve = row.trials[0].curve if row.trials else []          # a remedy that did not apply has no run
        if curve:
            after.plot(range(len(curve)), curve, lw=1.6 if row is report.chosen else 0.8, alpha=0.7, label=row.label)
    scale = _finite(base) + (_finite(report.chosen.trials[0].curve) if report.chosen is not None else [])
    if scale:
        low, high = min(scale), max(scale)
        after.set_ylim(min(0.0, low), high * 1.5 if high > 0 else 1.0)
    after.set_title("every remedy tried (cut at 1.5x the baseline's top)")
    before.legend(fontsize=8)
    after.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    return f'<img alt="training loss curves" src="{fig_to_data_uri(fig)}">'


def render_fix(report) -> str:
    """The whole page as a string (no external URLs)."""
    s = report.settings
    if not report.flagged:
        verdict = '<p class="ok">Nothing above info was found: no remedy tried, nothing changed.</p>'
    elif report.chosen is None:
        verdict = f'<p class="error">No verified fix; still flagged: {_codes(report.remaining, "warning")}</p>'
    else:
        verdict = (f'<p class="{"ok" if not report.remaining else "warning"}">Chosen: <b>{escape(report.chosen.label)}'
                   f"</b> (<code>{escape(report.chosen.name)}</code> in the JSON); still flagged after it: {_codes(report.remaining, 'warning')}</p>")
    others = [r.label for r in report.rows if r.verdict.verified and r is not report.chosen]
    if report.chosen is not None and others:
        verdict += f"<p>Also verified: {escape('; '.join(others))}</p>"
    rule = (f"<p class=small>A verified fix clears a finding it targets on every seed ({escape(s['seeds'])}), "
            f"adds no warning or error, keeps {escape(s['metric'])} no worse than the baseline's by more than "
            f"{s['tolerance']:.3g} ({s['val_examples']} validation examples), and trains all {s['steps']} steps "
            f"(at least {s['min_evidence_steps']}). Failing remedies are shown, not hidden.</p>")
    curves = loss_curves(report)
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    not_tried = escape(", ".join(row_label(n.split(" + ")) for n in report.not_tried))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(report.title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{escape(report.title)}</h1>{verdict}{rule}"
            f"<h2>Findings before and after</h2>{diff_table(report)}"
            + (f"<p class=small>not tried (run budget): {not_tried}</p>" if report.not_tried else "")
            + (f"<h2>Loss curves</h2>{curves}" if curves else "")
            + f"<h2>The change</h2><pre><code>{escape(report.snippet())}</code></pre>"
            + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
            + f"<p class=small>total {report.wall_s:.1f} s</p></body></html>\n")
