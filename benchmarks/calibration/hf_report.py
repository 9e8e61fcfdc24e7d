"""The transformers sweep's report: totals, the per-row table, the healthy rows' alarms with the numbers
their rule quoted (and the mechanism of ``hf_sweep.md``'s "Mechanisms" they show), and what init std
1.0 changes at the first forward. Pure functions of the rows ``hf_sweep.run_row`` returns.
"""
from __future__ import annotations

import json
import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import hf_models
from .hf_heldout import HELD_OUT

FAULTS = ("std1", "high_lr")
MECHANISMS = "## Mechanisms"


TRAINS_DROP = 0.05   # a masked LM sees ~15% of its tokens as labels: ~8% down in 40 steps on this task


def trains(row: dict) -> bool:
    """The healthy loss fell by at least ``TRAINS_DROP`` (relative) from the first step to the mean of the
    last five."""
    h = row["runs"].get("healthy")
    return bool(h) and math.isfinite(h["loss_last"]) and h["loss_last"] < (1 - TRAINS_DROP) * h["loss_first"]


def new_alarms(row: dict, fault: str, where: str | None = None) -> list[str]:
    """The fault run's warning/error codes that the healthy run of the same row did not raise (at
    ``where``, "checkup" or "watch", or at either): what counts as naming the fault."""
    parts = (where,) if where else ("checkup", "watch")
    healthy = {c for p in ("checkup", "watch") for c in row["runs"]["healthy"][p]}
    return sorted({c for p in parts for c in row["runs"][fault][p]} - healthy)


def init_first(rows: list[dict]) -> tuple[int, int, list[str], list[str]]:
    """Of the rows whose std-1.0 run is named (:func:`new_alarms`), how many put ``init_scale_too_large``
    first (the checkup's first alarm, else watch's): ``(first, named, not named, named but not first)``."""
    first = named = 0
    missed, later = [], []
    for r in rows:
        s = r["runs"].get("std1")
        if s is None:
            continue
        if not new_alarms(r, "std1"):
            missed.append(r["type"])
            continue
        named += 1
        alarms = s["checkup_alarms"] or s["watch_alarms"]
        if alarms and alarms[0]["code"] == "init_scale_too_large":
            first += 1
        else:
            later.append(r["type"])
    return first, named, missed, later


def summarize(rows: list[dict]) -> dict:
    built = [r for r in rows if "healthy" in r["runs"]]
    training = [r for r in built if trains(r)]
    alarmed = [r for r in training if r["runs"]["healthy"]["checkup"] or r["runs"]["healthy"]["watch"]]
    false_alarms = {f"{r['type']}/{r['head']}": sorted(set(r["runs"]["healthy"]["checkup"])
                                                       | set(r["runs"]["healthy"]["watch"])) for r in alarmed}
    checkup_only = [r for r in alarmed if not r["runs"]["healthy"]["watch"]]
    named = {}
    for fault in FAULTS:
        ran = [r for r in built if fault in r["runs"]]
        named[fault] = {"ran": len(ran), "named": sum(bool(new_alarms(r, fault)) for r in ran),
                        "at_checkup": sum(bool(new_alarms(r, fault, "checkup")) for r in ran),
                        "any_alarm": sum(bool(r["runs"][fault]["checkup"] or r["runs"][fault]["watch"])
                                         for r in ran)}
    codes: dict[str, int] = {}
    for v in false_alarms.values():
        for c in v:
            codes[c] = codes.get(c, 0) + 1
    return {"rows": len(rows), "types": len({r["type"] for r in rows}), "built": len(built),
            "skipped": len(rows) - len(built), "trains": len(training), "false_alarms": len(false_alarms),
            "false_alarm_rows": false_alarms, "false_alarms_checkup_only": len(checkup_only),
            "false_alarm_codes": dict(sorted(codes.items(), key=lambda kv: -kv[1])), "faults": named,
            "init_first": dict(zip(("first", "named", "not_named", "not_first"), init_first(built)))}


def _codes(run: dict | None) -> str:
    if run is None:
        return "-"
    return ", ".join(run) if run else "quiet"


def _pair(run: dict | None) -> str:
    if run is None:
        return "-"
    c, w = run["checkup"], run["watch"]
    return f"{', '.join(c) or 'quiet'} / {', '.join(w) or 'quiet'}"


def table(rows: list[dict]) -> list[str]:
    lines = ["| type | head | built | loss first -> last | checkup | watch | std 1.0 (checkup / watch) "
             "| lr 1.0 (checkup / watch) |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["type"], r["head"])):
        h = r["runs"].get("healthy")
        built = "built" if r["status"] == "built" else f"{r['status']}: {r['reason'].replace('|', '/')}"
        loss = f"{h['loss_first']:.2f} -> {h['loss_last']:.2f}" if h else "-"
        if h and not trains(r):
            loss += " (not falling)"
        lines.append(f"| {r['type']} | {r['head']} | {built} | {loss} | {_codes(h and h['checkup'])} "
                     f"| {_codes(h and h['watch'])} | {_pair(r['runs'].get('std1'))} "
                     f"| {_pair(r['runs'].get('high_lr'))} |")
    return lines


def markdown(rows: list[dict], summary: dict, args, seconds: float) -> str:
    import transformers

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    f = summary["faults"]
    head = [
        "# The transformers sweep (issue 25, item 1)", "",
        f"Generated by `python benchmarks/hf_sweep.py --jobs {args.jobs} --steps {args.steps} "
        f"--fault-steps {args.fault_steps}"
        f"{' --all-heads' if args.all_heads else ''}{' --held-out' if args.held_out else ''}` on {when}: "
        f"{platform.machine()} VM, {_cores()} cores, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, 1 thread per process, {seconds:.0f} s wall"
        f"{'; impediments ' + args.doctor if args.doctor else ''}. "
        "Everything above \"Mechanisms\" is rewritten by the sweep.", "",
        "Each row: the model from a tiny config (width 64, 2 layers, 4 heads, vocab 64, 32 px images) with its "
        "own init, trained with AdamW lr 1e-3 (weight decay 0.01, no clipping, batch 16) for "
        f"{args.steps} steps; the checkup on the first batch, then `watch()` + `mon.report()`. A verdict is the "
        "warning/error codes (`quiet` = none). Faults: init std 1.0 (`initializer_range`/`init_std` = 1.0 in "
        "the config where it has one, else `nn.init.normal_(w, 0, 1)` on every Linear/Embedding weight) and lr "
        f"1.0, each trained {args.fault_steps} steps. The held-out fifth ({len(HELD_OUT)} types, `hf_heldout.py`) is "
        f"{'included' if args.held_out else 'not run'}.", "",
        "## Totals", "",
        f"- rows (type x head): {summary['rows']}, model types: {summary['types']}; built and run: "
        f"{summary['built']}, skipped: {summary['skipped']}; healthy loss falling (>= {TRAINS_DROP:.0%}): "
        f"{summary['trains']}",
        f"- **false alarms on healthy rows that train: {summary['false_alarms']} / {summary['trains']}** "
        f"({summary['false_alarms_checkup_only']} of them at checkup only); by code: "
        + (", ".join(f"`{c}` {n}" for c, n in summary["false_alarm_codes"].items()) or "none"),
        f"- std 1.0 named (a warning/error at checkup or under watch that the healthy run of the row did not "
        f"raise): **{f['std1']['named']} / {f['std1']['ran']}** ({f['std1']['at_checkup']} at checkup; any "
        f"warning/error at all: {f['std1']['any_alarm']}); the init cause (`init_scale_too_large`) first on "
        f"**{summary['init_first']['first']} / {summary['init_first']['named']}** named; not named: "
        f"{', '.join(summary['init_first']['not_named']) or 'none'}; named but not init-first: "
        f"{', '.join(summary['init_first']['not_first']) or 'none'}",
        f"- lr 1.0 named (the same count): **{f['high_lr']['named']} / {f['high_lr']['ran']}** (any warning/error "
        f"at all: {f['high_lr']['any_alarm']})", "",
        "## Table", "", *table(rows), "",
        "## Alarms on healthy rows that train", "",
        "Each warning/error of a healthy run whose loss falls, with the ratio its rule quoted, the chain's first and "
        "last layer, and the mechanism it shows (see \"Mechanisms\").", "", *alarm_lines(rows), "",
        "## Init std 1.0 at the first forward", "",
        "Per built row, at init in eval mode (`hf_sweep.init_probe`): the loss against the uninformed one "
        "(ln 64 = 4.16 for token heads, ln 3 = 1.10 for classifiers), healthy in brackets; the median over the "
        "model's Linears of Var(out) / E[in^2] (the gain; fan_in = 64 for most) and of that gain over "
        "fan_in Var(W) (1 in closed form); the RMS of each hidden state the model returns (embeddings, one per "
        "block, the last often after the final norm); the codes it raised that the healthy run did not.", "",
        *std1_lines(rows), ""]
    return "\n".join(head)


def _num(x, fmt: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def alarm_lines(rows: list[dict]) -> list[str]:
    lines = ["| row | at | code | rule | ratio | first -> last layer | mechanism |", "|---|---|---|---|---|---|---|"]
    for a in sorted(alarm_evidence(rows), key=lambda a: (classify(a), a["row"])):
        layers = f"{a['first']} -> {a['last']}" if a["first"] else ", ".join(a["where"][:2])
        lines.append(f"| {a['row']} | {a['at']} | {a['code']} | {a['rule']} | {_num(a['ratio'])} | {layers} "
                     f"| {classify(a)} |")
    return lines


def std1_lines(rows: list[dict]) -> list[str]:
    lines = ["| row | injected | loss (healthy) / uninformed | gain | gain / (fan_in var W) | hidden RMS | new codes |",
             "|---|---|---|---|---|---|---|"]
    by_row = {f"{r['type']}/{r['head']}": r for r in rows}
    for t in sorted(std1_table(rows), key=lambda t: t["row"]):
        rms = ", ".join(_num(v) for v in t["rms_std1"]) or "-"
        new = ", ".join(new_alarms(by_row[t["row"]], "std1")) or "none"
        lines.append(f"| {t['row']} | {t['injected']} | {_num(t['loss_std1'], '.2f')} ({_num(t['loss_healthy'], '.2f')})"
                     f" / {t['uninformed']:.2f} | {_num(t['gain_std1'])} | {_num(t['gain_over_fan_in_std1'], '.2f')} "
                     f"| {rms} | {new} |")
    return lines


def _cores() -> int:
    return os.cpu_count() or 1


def write_markdown(text: str, path: Path) -> None:
    """Write ``text``, keeping the hand-written part of ``path`` from its ``## Mechanisms`` heading on."""
    kept = ""
    if path.exists():
        old = path.read_text()
        if MECHANISMS in old:
            kept = old[old.index(MECHANISMS):]
    path.write_text(text + ("\n" + kept if kept else ""))


def load_rows(path: str) -> list[dict]:
    """The rows of a ``hf_sweep.py --rows`` JSON-lines file."""
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def alarm_evidence(rows: list[dict]) -> list[dict]:
    """Every warning/error of a healthy run that trains, with the numbers the rule quoted."""
    out = []
    for r in rows:
        if not trains(r):
            continue
        for where in ("checkup", "watch"):
            for a in r["runs"]["healthy"][f"{where}_alarms"]:
                ev = a["evidence"]
                out.append({"row": f"{r['type']}/{r['head']}", "at": where, "code": a["code"],
                            "ratio": ev.get("output_over_input_grad_energy", ev.get("output_over_input_grad_mean_square")),
                            "rule": "residual stream" if "blocks" in ev else ("depth" if "first_layer" in ev else "other"),
                            "first": ev.get("first_layer"), "last": ev.get("last_hidden_layer"),
                            "blocks": list(ev.get("grad_mean_square_by_block", {})), "where": a["where"],
                            "chain": list(ev.get("grad_variance_by_layer", {})),
                            "evidence": {k: v for k, v in ev.items() if not isinstance(v, dict)}})
    return out


def std1_table(rows: list[dict]) -> list[dict]:
    """Per built row: the std-1.0 and healthy initial loss against the uninformed loss, the median
    per-Linear gain over ``fan_in * var(W)``, and the hidden-state RMS per block."""
    out = []
    for r in rows:
        if "std1" not in r["runs"] or "healthy" not in r["runs"]:
            continue
        s, h = r["runs"]["std1"]["probe"], r["runs"]["healthy"]["probe"]
        rms = next(iter(s["hidden_rms"].values()), [])
        out.append({"row": f"{r['type']}/{r['head']}", "injected": r["runs"]["std1"]["injected"],
                    "uninformed": hf_models.uninformed_loss(r["head"]), "loss_std1": s["loss"], "loss_healthy": h["loss"],
                    "gain_std1": s["linear_gain_median"], "gain_over_fan_in_std1": s["gain_over_fan_in_median"],
                    "gain_healthy": h["linear_gain_median"], "rms_std1": rms,
                    "rms_healthy": next(iter(h["hidden_rms"].values()), [])})
    return out


def classify(alarm: dict) -> str:
    """Which mechanism of ``hf_sweep.md`` ("Mechanisms") an alarm of :func:`alarm_evidence` shows, from the
    layer names its rule quoted: a depth chain through attention query/key projections, a residual chain
    that joins an encoder and a decoder, a depth chain from a convolutional feature extractor into a
    transformer, or something else (named by its code and where it was raised)."""
    if alarm["rule"] == "residual stream":
        blocks = " ".join(alarm["blocks"])
        if "encoder" in blocks and "decoder" in blocks:
            return "encoder and decoder read as one residual stream"
        return f"{alarm['code']}: residual stream"
    if alarm["rule"] == "depth":
        if "feature_extractor" in (alarm["first"] or ""):
            return f"{alarm['code']}: depth chain from a conv feature extractor into a transformer"
        if any(hf_models.QUERY_KEY.search(n) for n in alarm["chain"]):
            return f"{alarm['code']}: depth chain through attention query/key projections"
        return f"{alarm['code']}: depth chain from {(alarm['first'] or '?').split('.')[-1]}"
    return f"{alarm['code']} under {alarm['at']}"
