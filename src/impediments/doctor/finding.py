"""``Finding`` (one named impediment with evidence and remedy) and ``Report`` (all of them).

A report renders three ways: ``print(report)`` (a rich table), ``report.to_json(path)``
(versioned schema ``impediments.doctor.report`` v1) and one self-contained HTML page,
``impediments.report.render_doctor_html(report, path)`` (the renderer pulls the report; the
report does not import its renderers).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from impediments._json import dumps, from_jsonable, to_jsonable
from impediments.doctor.atomic import write_text_atomic
from impediments.doctor.codes import CODES, SEVERITY_RANK, check_code, check_severity

REPORT_SCHEMA = "impediments.doctor.report"
REPORT_VERSION = 1


@dataclass(frozen=True)
class Finding:
    """One impediment: what (``code``), how bad, where, the numbers, why, and what to change.

    Attributes:
        code: one of :data:`impediments.doctor.codes.CODES`.
        severity: ``"info"``, ``"warning"`` or ``"error"``.
        where: layer or parameter names as in ``model.named_modules()`` / ``named_parameters()``.
        evidence: the measured numbers that triggered it, including the threshold used.
        explanation: one or two sentences on the mechanism (why it stops learning).
        remedy: a concrete change, naming impediments' functions where they help.
        caused_by: the code of another finding of the same report that explains this one (it is
            reported first, and its remedy comes first); None for a root cause.
    """

    code: str
    severity: str
    where: list[str]
    evidence: dict
    explanation: str
    remedy: str
    caused_by: str | None = None

    def __post_init__(self):
        check_code(self.code)
        check_severity(self.severity)
        if self.caused_by is not None:
            check_code(self.caused_by)
        object.__setattr__(self, "where", [str(w) for w in self.where])

    @property
    def experiment(self) -> str:
        """The module's experiment that demonstrates this mechanism."""
        return CODES[self.code].experiment

    @property
    def see(self) -> str:
        """The code's own experiment link; :attr:`link` is the one this finding names (fitted to the model,
        :func:`~impediments.doctor.causes.fit_to_model`)."""
        return CODES[self.code].see

    @property
    def action(self) -> str:
        """The remedy without its closing experiment link (``"...; see: impediments reproduce X"``), for a view
        that shows the link on a line of its own (the terminal, the live doctor), so it is said once."""
        head, sep, _ = self.remedy.rpartition("see: impediments ")
        action = head.rstrip().rstrip(";,").rstrip()
        return action if sep and action else self.remedy

    @property
    def link(self) -> str:
        """The remedy's closing experiment link (``"see: impediments reproduce X"``); the code's when it has none."""
        _, sep, tail = self.remedy.rpartition("see: impediments ")
        return f"see: impediments {tail}" if sep and self.action != self.remedy else self.see

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "where": list(self.where),
                "evidence": to_jsonable(self.evidence, default=str), "explanation": self.explanation, "remedy": self.remedy,
                "see": self.link, "caused_by": self.caused_by}

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        return cls(d["code"], d["severity"], list(d["where"]), dict(d["evidence"]), d["explanation"], d["remedy"],
                   d.get("caused_by"))


#: the order among findings of equal severity, cause before symptom (issue 24): a bug in the program
#: (the loop, the head and loss, the mode, the init: every code not listed) comes first, then a property
#: of the data the network may or may not train through (labels that look uninformative because the loss
#: settled at their entropy included: a loop bug that stops learning settles it there too), then the state
#: of the network it produces (dead,
#: saturated or exploding units and gradients), then the loss curve that shows the result
ROLE_RANK = {
    **dict.fromkeys(("uncentered_inputs", "unequal_input_scales", "uninformative_labels"), 1),
    **dict.fromkeys(("dead_units", "saturated_units", "linear_regime", "vanishing_activations",
                     "exploding_activations", "vanishing_gradients", "exploding_gradients", "non_finite"), 2),
    **dict.fromkeys(("loss_plateau", "diverging_loss"), 3),
}


def _sort_key(f: Finding):
    """Most severe first; among equal severities by :data:`ROLE_RANK` (cause first), then the catalogue."""
    return (-SEVERITY_RANK[f.severity], ROLE_RANK.get(f.code, 0), list(CODES).index(f.code), f.where)


def causes_first(findings: list[Finding]) -> list[Finding]:
    """Most severe first, except that each cause comes right before its consequences.

    A group (a root cause and the findings whose ``caused_by`` names it) is ranked by its most severe
    member, so a warning that explains an error is read first.
    """
    ordered = sorted(findings, key=_sort_key)
    present = {f.code for f in ordered}
    groups: dict[str, list[Finding]] = {}
    for f in ordered:
        root = f.caused_by if f.caused_by in present and f.caused_by != f.code else f.code
        groups.setdefault(root, []).append(f)
    out = []
    for root, members in sorted(groups.items(), key=lambda kv: min(_sort_key(f) for f in kv[1])):
        out.extend(sorted(members, key=lambda f: (f.code != root, _sort_key(f))))
    return out


@dataclass
class Report:
    """The doctor's verdict: findings (most severe first) plus what could not be checked.

    Attributes:
        findings: list of :class:`Finding`, most severe first.
        skipped: ``{rule name: reason}`` for rules whose statistics were missing.
        thresholds: the thresholds used (``Thresholds.describe()`` rows).
        stats: the :class:`~impediments.monitor.schema.MonitorStats` diagnosed, if any (for plots).
        title: a heading for the rendered report.
    """

    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    thresholds: list[dict] = field(default_factory=list)
    stats: object = None
    title: str = "impediments doctor"

    def __post_init__(self):
        self.findings = causes_first(self.findings)

    @property
    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    @property
    def worst(self) -> str | None:
        """The highest severity present, or None for an empty report."""
        return max((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__, default=None)

    @property
    def exit_code(self) -> int:
        """0 when nothing is above info, 1 when any warning or error was found."""
        return 1 if self.worst in ("warning", "error") else 0

    def by_code(self, code: str) -> list[Finding]:
        check_code(code)
        return [f for f in self.findings if f.code == code]

    def to_dict(self, *, include_stats: bool = True) -> dict:
        """The versioned JSON schema (``schema``, ``version``, ``findings``, ``skipped``, ``summary``, ...)."""
        counts = {s: sum(f.severity == s for f in self.findings) for s in SEVERITY_RANK}
        out = {"schema": REPORT_SCHEMA, "version": REPORT_VERSION, "title": self.title,
               "summary": {"worst": self.worst, "counts": counts, "codes": sorted(self.codes)},
               "findings": [f.to_dict() for f in self.findings], "skipped": dict(self.skipped),
               "thresholds": to_jsonable(self.thresholds)}
        if include_stats and self.stats is not None and hasattr(self.stats, "to_dict"):
            out["stats"] = to_jsonable(self.stats.to_dict(), default=str)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        if d.get("schema") != REPORT_SCHEMA or not isinstance(d.get("version"), int):
            raise ValueError(f"not an {REPORT_SCHEMA} document (schema={d.get('schema')!r})")
        if d["version"] > REPORT_VERSION:
            raise ValueError(f"report version {d['version']} is newer than supported ({REPORT_VERSION})")
        stats = None
        if d.get("stats") is not None:
            from impediments.monitor.schema import MonitorStats

            stats = MonitorStats.from_dict(from_jsonable(d["stats"]))
        return cls([Finding.from_dict(f) for f in d["findings"]], dict(d.get("skipped", {})),
                   list(d.get("thresholds", [])), stats, d.get("title", "impediments doctor"))

    def to_json(self, path=None, *, include_stats: bool = True) -> str:
        """The JSON text (non-finite numbers as ``"nan"``/``"inf"``/``"-inf"``, :mod:`impediments._json`);
        also written atomically to ``path`` when given."""
        text = dumps(self.to_dict(include_stats=include_stats), indent=2)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text

    def render(self, *, width: int = 120) -> str:
        from impediments.doctor.terminal import render_text

        return render_text(self, width=width)

    def __str__(self) -> str:
        return self.render()

    def __rich__(self):
        from impediments.doctor.terminal import rich_renderable

        return rich_renderable(self)
