"""Calibration of the doctor on the field's standard architectures: false alarms on healthy runs,
recall on injected faults.

Usage::

    python benchmarks/calibration.py [--steps 30] [--seed 0] [--workers 2] [--only ARCH ...]
                                     [--faults FAULT ...] [--healthy-only | --faults-only]
                                     [--held-out] [--json out.json]

Every architecture of ``benchmarks/calibration/`` (compact re-implementations with their standard
init and recipe, on a small learnable task) runs healthy: a checkup on the first batch, then
``--steps`` training steps under ``impediments.watch`` and ``diagnose``. A healthy run counts as a
false alarm if either report has any warning or error. Then each injected fault
(``calibration.INJECTIONS``) runs the same way and counts as found if every expected code appears at
any severity. Held-out architectures (and their faults) run only with ``--held-out``: look at them
last, after the rules are settled. Exit status 0 (this is a measurement, not a test).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration import ARCHITECTURES, DEFAULT_STEPS, FAULTS, INJECTIONS, run_case  # noqa: E402


def _job(args):
    arch, fault, expected, steps, seed = args
    try:
        return run_case(arch, fault, steps=steps, seed=seed, expected=expected)
    except Exception as exc:      # a crash is a result too: reported, never hidden
        return {"arch": arch, "family": ARCHITECTURES[arch].family, "fault": fault, "expected": list(expected),
                "checkup": [], "training": [], "codes": [], "flagged": [f"crash: {type(exc).__name__}: {exc}"],
                "missed": list(expected), "unsupported": [], "loss_first": float("nan"),
                "loss_last": float("nan"), "steps_run": 0, "seconds": 0.0}


def select(args) -> list[tuple]:
    archs = [a for a in ARCHITECTURES.values() if args.held_out or not a.held_out]
    if args.only:
        archs = [a for a in archs if a.name in args.only]
    names = {a.name for a in archs}
    jobs = []
    if not args.faults_only:
        jobs += [(a.name, None, (), args.steps, args.seed) for a in archs]
    if not args.healthy_only:
        jobs += [(i.arch, i.fault, i.expected, args.steps, args.seed) for i in INJECTIONS
                 if i.arch in names and (not args.faults or i.fault in args.faults)]
    return jobs


def summarize(rows: list[dict]) -> dict:
    healthy = [r for r in rows if r["fault"] is None]
    faulty = [r for r in rows if r["fault"] is not None]
    alarms = {r["arch"]: r["flagged"] for r in healthy if r["flagged"]}
    recall: dict[str, list[int]] = {}
    for r in faulty:
        for code in r["expected"]:
            hit = recall.setdefault(code, [0, 0, 0, 0])
            hit[0] += code in r["codes"]
            hit[1] += 1
            hit[2] += code in r["unsupported"]
            hit[3] += code in r["flagged"]
    found = sum(not r["missed"] for r in faulty)
    return {"healthy": len(healthy), "false_alarms": len(alarms), "false_alarm_rate":
            len(alarms) / len(healthy) if healthy else None, "false_alarm_codes": alarms,
            "injected": len(faulty), "found": found, "recall": found / len(faulty) if faulty else None,
            "recall_per_code": {c: {"found": h, "injected": n, "unsupported": u > 0, "warning_or_error": w}
                                for c, (h, n, u, w) in sorted(recall.items())}}


def _where(findings: list[dict], severe: bool = True) -> str:
    parts = [f"{f['code']}@{','.join(f['where'][:2]) or '-'}" for f in findings
             if not severe or f["severity"] in ("warning", "error")]
    return "; ".join(dict.fromkeys(parts)) or "-"


def table(rows: list[dict]) -> str:
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    lines = ["| architecture | loss first -> last | healthy: warnings/errors (checkup; training) "
             "| faults found / injected | missed |", "|---|---|---|---|---|"]
    for a in archs:
        h = next((r for r in rows if r["arch"] == a and r["fault"] is None), None)
        faults = [r for r in rows if r["arch"] == a and r["fault"] is not None]
        healthy = ("not run" if h is None else "none" if not h["flagged"] else
                   " / ".join(f"{part}: {_where(h[part])}" for part in ("checkup", "training")
                              if _where(h[part]) != "-") or f"{h['flagged']}")
        loss = "" if h is None else f"{h['loss_first']:.2f} -> {h['loss_last']:.2f}"
        missed = ", ".join(f"{r['fault']}: {'/'.join(r['missed'])}" for r in faults if r["missed"]) or "-"
        lines.append(f"| {a} | {loss} | {healthy} | {sum(not r['missed'] for r in faults)} / {len(faults)} "
                     f"| {missed} |")
    return "\n".join(lines)


def fault_table(rows: list[dict]) -> str:
    """One line per injected fault: what was expected, what was reported, and the loss against the
    healthy run's (evidence that the fault really impedes training, where it does)."""
    healthy = {r["arch"]: r["loss_last"] for r in rows if r["fault"] is None}
    lines = ["| architecture | fault | expected | reported (W/E = warning/error) | loss last (healthy) |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r["fault"] is None:
            continue
        codes = ", ".join(c + (" W/E" if c in r["flagged"] else "") for c in r["codes"]) or "-"
        if r["flagged"] and r["flagged"][0].startswith("crash"):
            codes = r["flagged"][0][:120]
        base = healthy.get(r["arch"])
        loss = f"{r['loss_last']:.3g}" + (f" ({base:.3g})" if base is not None else "")
        mark = "" if not r["missed"] else " **missed**"
        lines.append(f"| {r['arch']} | {r['fault']} | {', '.join(r['expected'])}{mark} | {codes} | {loss} |")
    return "\n".join(lines)


def report(rows: list[dict], summary: dict) -> str:
    out = [table(rows), ""]
    if summary["injected"]:
        out += [fault_table(rows), ""]
    if summary["healthy"]:
        out.append(f"healthy architectures with a warning or error: {summary['false_alarms']} of "
                   f"{summary['healthy']} ({summary['false_alarm_rate']:.0%})")
    if summary["injected"]:
        out += [f"faults found: {summary['found']} of {summary['injected']} ({summary['recall']:.0%})", "",
                "| code | found / injected | recall | of which warning or error |", "|---|---|---|---|"]
        for code, r in summary["recall_per_code"].items():
            note = " (code not in the doctor yet)" if r["unsupported"] else ""
            out.append(f"| `{code}` | {r['found']} / {r['injected']} | {r['found'] / r['injected']:.0%}{note} "
                       f"| {r['warning_or_error']} |")
    return "\n".join(out)


def listing() -> str:
    """The corpus: each architecture's family, task and recipe, then each fault's architectures and codes."""
    lines = ["| architecture | family | task | recipe | held out |", "|---|---|---|---|---|"]
    for a in ARCHITECTURES.values():
        r = a.recipe
        recipe = (f"{r.optimizer} lr {r.lr:g}, batch {r.batch_size}" + (f", wd {r.weight_decay:g}" if r.weight_decay
                  else "") + (f", warm-up {r.warmup}" if r.warmup else "") + (f", clip {r.clip:g}" if r.clip else ""))
        lines.append(f"| {a.name} | {a.family} | {a.task} | {recipe} | {'yes' if a.held_out else ''} |")
    lines += ["", "| fault | what | architectures: expected codes |", "|---|---|---|"]
    for f in FAULTS.values():
        groups: dict[tuple, list[str]] = {}
        for i in INJECTIONS:
            if i.fault == f.name:
                groups.setdefault(i.expected, []).append(i.arch + ("*" if ARCHITECTURES[i.arch].held_out else ""))
        on = "; ".join(f"{' '.join(archs)}: {', '.join(codes)}" for codes, archs in groups.items())
        lines.append(f"| {f.name} | {f.description} | {on} |")
    return "\n".join(lines) + "\n(* held out)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    parser.add_argument("--only", nargs="+", metavar="ARCH", help="these architectures only")
    parser.add_argument("--faults", nargs="+", metavar="FAULT", choices=sorted(FAULTS),
                        help="these faults only")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--healthy-only", action="store_true")
    group.add_argument("--faults-only", action="store_true")
    parser.add_argument("--held-out", action="store_true", help="include the held-out architectures")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--list", action="store_true", help="list the architectures and injected faults, run nothing")
    args = parser.parse_args(argv)
    if args.list:
        print(listing())
        return 0
    unknown = sorted(set(args.only or ()) - set(ARCHITECTURES))
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)}; valid: {', '.join(ARCHITECTURES)}")
    held = sorted(a for a in args.only or () if ARCHITECTURES[a].held_out and not args.held_out)
    if held:
        parser.error(f"architecture(s) {', '.join(held)} are held out; add --held-out to run them")
    jobs = select(args)
    start = time.perf_counter()
    rows = []
    pool = (ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) if args.workers > 1 else None)
    with pool or nullcontext():
        for row in (pool.map(_job, jobs) if pool else map(_job, jobs)):
            rows.append(row)
            status = "ok" if (not row["missed"] if row["fault"] else not row["flagged"]) else "MISS" \
                if row["fault"] else "ALARM"
            print(f"{status:5s} {row['arch']:16s} {row['fault'] or 'healthy':18s} "
                  f"codes={','.join(row['codes']) or '-'} ({row['seconds']:.1f}s)", flush=True)
    summary = summarize(rows)
    print()
    print(report(rows, summary))
    print(f"\n{len(rows)} runs in {time.perf_counter() - start:.0f} s, {args.workers} workers, "
          f"{args.steps} steps, seed {args.seed}")
    if args.json:
        from impediments._files import write_atomic

        write_atomic(args.json, json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
