"""The doctor: named impediments with evidence and remedies.

``diagnose(stats)`` turns a :class:`~impediments.monitor.schema.MonitorStats`
into a :class:`Report`; ``checkup(model, inputs, ...)`` does one forward (and
backward) pass under the monitor at the current weights. Thresholds live in
:class:`Thresholds` (each with its reason; ``Thresholds().describe()``); the
codes in :data:`CODES` (meaning, experiment, reference); the rules, one pure
function per code family declaring the ``MonitorStats`` fields it requires, in
:data:`RULES`.

Layout::

    codes.py        the catalogue of codes          thresholds.py  every threshold + reason
    finding.py      Finding, Report (JSON schema)   terminal.py    rich table rendering
    rules/          pure rules (stats, th) -> list[Finding]
    diagnose.py     run the rules                   checkup.py     one batch at init
    causes.py       cause before symptoms (caused_by)
    fractions.py    the one dead and saturated fraction (rules, HTML report, playground, loggers)

The SPEC.py loading and short training run for the CLI live in ``impediments.cli.spec``;
the zoo of broken and healthy setups in :mod:`impediments.train.zoo`.

JSON (``report.to_json``): ``{"schema": "impediments.doctor.report", "version": 1,
"title", "summary": {"worst", "counts", "codes"}, "findings": [{"code", "severity",
"where", "evidence", "explanation", "remedy", "see", "caused_by"}], "skipped": {rule: reason},
"thresholds": [{"name", "value", "reason"}], "stats": MonitorStats.to_dict()}``;
non-finite numbers are written as the strings ``"nan"``, ``"inf"``, ``"-inf"``.
"""
from __future__ import annotations

from impediments.doctor.checkup import checkup
from impediments.doctor.codes import CODES, SEVERITIES
from impediments.doctor.diagnose import diagnose
from impediments.doctor.finding import Finding, Report
from impediments.doctor.rules import RULES
from impediments.doctor.thresholds import Thresholds


__all__ = ["CODES", "RULES", "SEVERITIES", "Finding", "Report", "Thresholds", "checkup", "diagnose"]
