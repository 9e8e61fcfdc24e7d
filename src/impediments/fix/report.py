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
from impediments.fix.remedies.labels import row_label
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
        """The registry's names joined by ``" + "`` (the identifier in JSON)."""
        return " + ".join(self.verdict.remedies)

    @property
    def label(self) -> str:
        """The same in words (``learning rate ×27``), as the table shows it."""
        return row_label(self.verdict.remedies)


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
        spec: the SPEC.py the setup came from (``impediments fix SPEC.py``), or None (``imp.fix(...)``):
            the change is printed as code to append to it.
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
    spec: str | None = None

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
        """The chosen change as code, placed: see :func:`placed_snippet`."""
        if not self.flagged:
            return "# nothing to change: no warning or error found"
        if self.chosen is None:
            return "# no verified fix found; see the table for what each remedy did"
        return placed_snippet(self.chosen.trials[0].changes, self.spec)

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
                "not_tried": self.not_tried, "notes": self.notes, "wall_s": self.wall_s, "spec": self.spec}

    def to_json(self, path=None) -> str:
        """The JSON text (non-finite numbers as "nan"/"inf"/"-inf", :mod:`impediments._json`); also written atomically to ``path``."""
        from impediments.doctor.atomic import write_text_atomic

        text = dumps(self.to_dict(), indent=2)
        if path is not None:
            write_text_atomic(path, text + "\n")
        return text


#: the remedy slots whose change is a function of the freshly built model (``net``)
MODEL_SLOTS = ("structure", "activation", "init")
_IMPORTS = "from collections import OrderedDict\n\nimport torch\nfrom torch import nn\nimport impediments as imp"


def _indent(code: str) -> str:
    return "\n".join("    " + line if line else line for line in code.splitlines())


def placed_snippet(changes: list[dict], spec: str | None = None) -> str:
    """The changes (``{"remedy", "code", "note"}``, as a trial applied them) as code that says where it goes.

    A change to the model (init, activation, structure) becomes a new ``model()`` that wraps the spec's
    own: it builds ``net = _spec_model()`` and applies the remedy's lines to it, which is exactly what
    the trial did (the remedy transforms each fresh model). ``X_train``, when a line needs it, is the
    spec's own data split as the trial split it (``imp.fix.pieces.split_data(data())``). A change of
    the learning rate becomes a new ``optimizer(params)`` that wraps the spec's (or the default SGD at
    lr 0.1) and scales every group's rate, as the trial did. Both are meant to be appended to the end of
    the spec, where they replace its ``model()`` / ``optimizer()``. Any other change (the data, the
    loop, the loss) is printed as the remedy wrote it, under a heading that says it goes into the
    spec's own code, since there is no function of the spec's pieces that stands for it.
    """
    from impediments.fix.remedies import REMEDIES

    target = spec or "your spec (a SPEC.py)"
    model_lines, factors, other = [], [], []
    for change in changes:
        remedy = REMEDIES.get(change["remedy"])
        factor = getattr(remedy.fn, "factor", None) if remedy else None
        if remedy is not None and remedy.slot in MODEL_SLOTS:
            model_lines.append(change)
        elif remedy is not None and remedy.slot == "optimizer" and factor is not None:
            factors.append((change, factor))
        else:
            other.append(change)
    parts = []
    if model_lines or factors:
        parts.append(f"# append to the end of {target}: it replaces model()/optimizer() with wrappers of the "
                     "spec's own\n" + _IMPORTS)
    if model_lines:
        body = []
        if any("X_train" in c["code"] or "y_train" in c["code"] for c in model_lines):
            body.append("X_train, y_train, X_val, y_val = imp.fix.pieces.split_data(data())   # the spec's data")
        for c in model_lines:
            body.append(f"# {row_label([c['remedy']])}")
            body.append(c["code"])
            if c["note"]:
                body.append(f"# note: {c['note']}")
        parts.append("_spec_model = model\n\n\ndef model():\n    net = _spec_model()\n"
                     + _indent("\n".join(body)) + "\n    return net")
    if factors:
        total = 1.0
        for _, f in factors:
            total *= f
        names = ", ".join(row_label([c["remedy"]]) for c, _ in factors)
        parts.append(f"# {names}\n"
                     "_spec_optimizer = globals().get(\"optimizer\", imp.train.default_optimizer)\n\n\n"
                     "def optimizer(params):\n    opt = _spec_optimizer(params)\n"
                     "    for group in opt.param_groups:\n"
                     f"        group[\"lr\"] *= {total:.6g}\n    return opt")
    for c in other:
        parts.append(f"# {row_label([c['remedy']])}: edit {target}'s own code (its data(), train_step or loop) "
                     f"like this\n{c['code']}" + (f"\n# note: {c['note']}" if c["note"] else ""))
    return "\n\n".join(parts)
