"""The doctor: named impediments with evidence and remedies.

``diagnose(stats)`` turns a :class:`~impediments.monitor.schema.MonitorStats`
into a :class:`Report`; ``checkup(model, inputs, ...)`` does one forward (and
backward) pass under the monitor at the current weights. Thresholds live in
:class:`Thresholds`; the codes in :data:`CODES`.
"""
from __future__ import annotations

from impediments.doctor.checkup import checkup
from impediments.doctor.codes import CODES, SEVERITIES
from impediments.doctor.diagnose import diagnose
from impediments.doctor.finding import Finding, Report
from impediments.doctor.rules import RULES
from impediments.doctor.thresholds import Thresholds


__all__ = ["CODES", "RULES", "SEVERITIES", "Finding", "Report", "Thresholds", "checkup", "diagnose"]
