"""``FixReport``: the baseline, one row per remedy tried, the combination, the chosen fix, and how to render them.

Renders as a text table (``print(report)``), the change as code (``report.snippet()``),
JSON (``report.to_json(path)``, schema ``impediments.fix.report`` v1) and one
self-contained HTML page with the loss curves and the findings diff
(``impediments.report.render_fix_html(report, path)``: the renderer pulls the report). Files are
written atomically.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from impediments._json import dumps, to_jsonable
from impediments.fix.trial import Trial
from impediments.fix.verdict import Verdict

FIX_SCHEMA = "impediments.fix.report"
FIX_VERSION = 1


@dataclass
class Row:
    """A remedy (or combination) with its verdict and its trials (one per seed)."""

    verdict: Verdict
    trials: list[Trial]

    @property
    def name(self) -> str:
        return " + ".join(self.verdict.remedies)


@dataclass
class FixReport:
    """Everything ``impediments fix`` measured and decided.

    Attributes:
        title: a heading.
        settings: steps, batch size, seeds, jobs, tolerance, minimum evidence, metric, validation size.
        baseline: the setup as is, one trial per seed.
        flagged: codes the baseline flagged at warning or error.
        rows: one per remedy tried, best first.
        combination: the combination of verified fixes, when more than one was combined.
        chosen: the row chosen as the fix (a single remedy or the combination), or None.
        not_tried: remedies left out by the run budget.
        notes: anything the reader should know (fallbacks, codes without remedies).
        wall_s: total seconds.
    """

    title: str
    settings: dict
    baseline: list[Trial]
    flagged: list[str]
    rows: list[Row] = field(default_factory=list)
    combination: Row | None = None
    chosen: Row | None = None
    not_tried: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def remaining(self) -> list[str]:
        """Codes still flagged after the chosen fix (on any seed); the baseline's when nothing was chosen."""
        trials = self.chosen.trials if self.chosen else self.baseline
        return sorted(set().union(*(t.flagged for t in trials)))

    @property
    def exit_code(self) -> int:
        """0 when nothing was flagged or the chosen fix left nothing flagged; 1 when findings remain."""
        if not self.flagged:
            return 0
        return 0 if self.chosen is not None and not self.remaining else 1

    def snippet(self) -> str:
        """The chosen change as code against the spec (``net`` is the model, ``opt`` the optimizer)."""
        if not self.flagged:
            return "# nothing to change: no warning or error found"
        if self.chosen is None:
            return "# no verified fix found; see the table for what each remedy did"
        parts = []
        for change in self.chosen.trials[0].changes:
            parts.append(f"# {change['remedy']}\n{change['code']}")
            if change["note"]:
                parts.append(f"# note: {change['note']}")
        return "\n".join(parts)

    def render(self) -> str:
        from impediments.fix.table import render_text

        return render_text(self)

    def __str__(self) -> str:
        return self.render()

    def to_dict(self) -> dict:
        def trial(t: Trial) -> dict:
            return to_jsonable(asdict(t))

        def row(r: Row | None) -> dict | None:
            if r is None:
                return None
            return {"name": r.name, "status": r.verdict.status, "verdict": to_jsonable(asdict(r.verdict)),
                    "trials": [trial(t) for t in r.trials]}

        return {"schema": FIX_SCHEMA, "version": FIX_VERSION, "title": self.title, "settings": self.settings,
                "flagged": self.flagged, "remaining": self.remaining, "exit_code": self.exit_code,
                "baseline": [trial(t) for t in self.baseline], "rows": [row(r) for r in self.rows],
                "combination": row(self.combination), "chosen": row(self.chosen), "snippet": self.snippet(),
                "not_tried": self.not_tried, "notes": self.notes, "wall_s": self.wall_s}

    def to_json(self, path=None) -> str:
        """The JSON text (non-finite numbers as "nan"/"inf"/"-inf", :mod:`impediments._json`); also written atomically to ``path``."""
        from impediments.doctor.atomic import write_text_atomic

        text = dumps(self.to_dict(), indent=2)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text
