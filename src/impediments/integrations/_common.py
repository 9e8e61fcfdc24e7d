"""What every framework callback shares: scalar summaries, the end-of-training report, the stop rule.

The callbacks are thin adapters: they open :class:`~impediments.watching.Watch` on the
framework's model and optimizer, feed it the loss, and at the end merge the ranks
(:meth:`Monitor.sync`), diagnose (:func:`impediments.doctor.diagnose`) and write the same
``report.html`` / ``report.json`` as ``impediments doctor``. Nothing here re-implements a statistic
or a rule.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch.distributed as dist

#: valid values of the callbacks' ``stop_on``
STOP_ON = (None, "error")
SEVERITIES = ("info", "warning", "error")


def check_stop_on(stop_on) -> None:
    """Raises ValueError naming the valid choices."""
    if stop_on not in STOP_ON:
        raise ValueError(f"stop_on must be one of {list(STOP_ON)}; received: stop_on={stop_on!r}")


def init_callback(callback, every, out_dir, stop_on, thresholds, echo) -> None:
    """The state every framework callback starts with (``stop_on`` checked first: ValueError)."""
    check_stop_on(stop_on)
    callback.every, callback.out_dir, callback.stop_on = every, out_dir, stop_on
    callback.thresholds, callback.echo = thresholds, echo
    callback.monitor = callback.report = callback.stopped_by = None


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_rank_zero() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def summaries(stats, report, prefix: str = "impediments/") -> dict[str, float]:
    """Scalars for a logger: per activation the dead and saturated fractions the doctor's rules judged
    (:mod:`impediments.doctor.fractions`, at the report's thresholds), per parameter the
    gradient-to-weight and update-to-weight ratios, and the number of findings per severity.

    Values a rule does not judge (a ReLU's saturation, too few values) and non-finite ones (a ratio
    never measured) are left out, so loggers never receive NaN.
    """
    from impediments.doctor.fractions import layer_fractions, thresholds_of

    out: dict[str, float] = {}
    for name, (dead, saturated) in layer_fractions(stats, thresholds_of(report)).items():
        if dead is not None:
            out[f"{prefix}dead_fraction/{name}"] = dead
        if saturated is not None:
            out[f"{prefix}saturated_fraction/{name}"] = saturated
    for name, p in stats.params.items():
        out[f"{prefix}grad_to_weight/{name}"] = p.grad_to_weight
        out[f"{prefix}update_to_weight/{name}"] = p.update_to_weight
    for s in SEVERITIES:
        out[f"{prefix}findings/{s}"] = float(sum(f.severity == s for f in report.findings))
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def first_error(report):
    """The first error-severity finding of ``report`` (findings are sorted most severe first), or None."""
    return next((f for f in report.findings if f.severity == "error"), None)


def describe(finding) -> str:
    return f"{finding.code} at {', '.join(finding.where) or 'the model'}: {finding.explanation}"


def finish(mon, folder, *, title: str, echo=print, thresholds=None):
    """Close ``mon``, merge every rank's statistics (call on all ranks), then on rank 0 only diagnose,
    print and write ``report.html`` and ``report.json`` into ``folder``. Returns the Report (None elsewhere)."""
    from impediments.doctor import diagnose
    from impediments.report import render_doctor_html

    mon.close()
    if distributed():
        mon.sync()
    if not is_rank_zero():
        return None
    report = diagnose(mon.stats(), thresholds, title=title)
    if folder is not None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        render_doctor_html(report, folder / "report.html")
        report.to_json(folder / "report.json")
    if echo is not None:
        echo(str(report))
    return report


def lazy_doctor(module: str, build):
    """A module ``__getattr__`` that builds the ``Doctor`` class on first access, importing the framework only then."""
    built: dict = {}

    def __getattr__(name: str):
        if name != "Doctor":
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        if "Doctor" not in built:
            built["Doctor"] = build()
        return built["Doctor"]

    return __getattr__
