"""``diagnose(stats) -> Report``: run every rule on a MonitorStats."""
from __future__ import annotations

import dataclasses

from impediments.doctor.codes import SEVERITY_RANK
from impediments.doctor.finding import Report
from impediments.doctor.causes import link
from impediments.doctor.rules import RULES, missing
from impediments.doctor.rules.base import NotChecked
from impediments.doctor.thresholds import Thresholds

_HINTS = {"loss": "record losses with mon.record_loss(loss)", "layers": "no Linear/Conv layer outputs recorded",
          "params": "no parameter gradients recorded (run a backward pass)", "inputs": "no input statistics",
          "batchnorm": "no BatchNorm layers", "symmetry": "no Linear/Conv layers checked",
          "activations": "no activations recorded", "mode": "no optimizer step or backward pass seen"}


def _skip_reason(stats, absent: list[str]) -> str:
    """Why a rule lacked data. With no training-mode forward at all, every per-layer field is empty
    because nothing was recorded (not because the model lacks BatchNorm or Linear layers): say that."""
    if stats.model_training_steps == 0 and any(a not in ("loss", "inputs") for a in absent):
        if "forward" in stats.not_checked:       # the monitor saw training without any forward of the model
            return "no layer was recorded: the model's forward hooks never ran (see forward below)"
        if stats.mode is not None and stats.mode.eval_forwards:
            return "no forward ran in training mode, so no layer was recorded: model left in eval()?"
        return "no forward of the model ran in training mode, so no layer was recorded"
    return "; ".join(_hint(stats, a) for a in absent)


def _hint(stats, absent: str) -> str:
    """Why ``absent`` is missing, checked against what was recorded: never "run a backward pass" when the
    loop saw backward passes (the optimizer stepped before them, or they reached no parameter)."""
    loop = stats.loop
    if absent == "params" and loop is not None and loop.backwards:
        if loop.steps_before_backward:
            return (f"no gradient was present at an optimizer step, although backward ran ({loop.backwards} sampled "
                    f"passes): the optimizer stepped before the backward on {loop.steps_before_backward} of "
                    f"{loop.step_checks} sampled steps")
        return (f"no parameter gradient recorded, although backward ran ({loop.backwards} sampled passes): they "
                "reached no watched parameter, or the gradients were cleared before the optimizer step")
    return _HINTS.get(absent, f"no {absent}")


def _with_seen(f, stats):
    """Every finding says how much it saw: a rule that did not say gets the run's steps and sampled steps."""
    if "seen" in f.evidence:
        return f
    evidence = {**f.evidence, "seen": {"steps": stats.steps, "sampled_steps": stats.sampled_steps}}
    evidence.setdefault("confidence", f"from {stats.sampled_steps} sampled steps of {stats.steps}")
    return dataclasses.replace(f, evidence=evidence)


def _place(name: str, stats) -> str:
    """Where a finding's ``where`` entry is, as a module: a parameter's module (``hidden1.linear.weight`` is
    in ``hidden1.linear``), else the name itself (a layer, an activation, ``loss``)."""
    p = stats.params.get(name)
    return p.module if p is not None else name


def one_per_place(findings: list, stats) -> list:
    """One finding per code and place: two findings of one code whose places overlap (the parameter rule's
    ``hidden1.linear.weight`` and the layer rule's ``hidden1.linear``) are merged into the first (the more
    severe, as the rules emit them): its ``where`` gains the other's places, its evidence the other's numbers
    under ``also`` (with that finding's severity and confidence)."""
    out: list = []
    for f in findings:
        places = {_place(w, stats) for w in f.where}
        same = next((i for i, g in enumerate(out) if g.code == f.code and places
                     & {_place(w, stats) for w in g.where}), None)
        if same is None:
            out.append(f)
            continue
        keep, other = (out[same], f) if SEVERITY_RANK[out[same].severity] >= SEVERITY_RANK[f.severity] else (f, out[same])
        where = list(dict.fromkeys([*keep.where, *other.where]))
        also = {k: v for k, v in other.evidence.items() if k != "seen"}
        out[same] = dataclasses.replace(keep, where=where, evidence={**keep.evidence, "also": {
            "severity": other.severity, "where": list(other.where), **also}})
    return out


def diagnose(stats, thresholds: Thresholds | dict | None = None, *, title: str = "impediments doctor") -> Report:
    """Name the impediments visible in ``stats``.

    Args:
        stats: a :class:`~impediments.monitor.schema.MonitorStats` (from ``mon.stats()``).
        thresholds: a :class:`Thresholds`, a dict overriding some of them, or None for the defaults.

    Returns:
        A :class:`Report` with findings sorted most severe first, causes before the findings they
        explain (:mod:`~impediments.doctor.causes`), and ``skipped`` listing each rule whose required
        statistics were absent and each code a rule could not judge yet ("not enough data yet").

    Raises:
        ValueError: for unknown threshold names.
    """
    th = Thresholds.coerce(thresholds)
    findings, skipped = [], {}
    for r in RULES:
        absent = missing(stats, r.requires)
        if absent:
            skipped[r.name] = _skip_reason(stats, absent)
            continue
        for item in r(stats, th):
            if isinstance(item, NotChecked):         # "not enough data yet": said, not guessed
                where = f" ({', '.join(item.where)})" if item.where else ""
                skipped[item.code] = "; ".join(filter(None, [skipped.get(item.code), f"{item.reason}{where}"]))
            else:
                findings.append(item)
    findings = link(one_per_place([_with_seen(f, stats) for f in findings], stats), stats, th)
    skipped.update(stats.not_checked)        # what the monitor itself could not see (torch.compile, ...)
    return Report(findings, skipped, th.describe(), stats, title)
