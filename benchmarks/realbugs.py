"""The doctor on real bugs (issue 24): detection, diagnosis and false alarms on the real-bug corpus.

Usage::

    python benchmarks/realbugs.py [--held-out | --part PART] [--entries NAME,NAME] [--seeds 0 1]
                                  [--gate [--dropped]] [--no-timeline] [--json out.json]

Each entry of ``benchmarks/realbugs/`` is a PyTorch port of a bug people filed (Stack Overflow, GitHub,
the PyTorch forum), in a buggy and a fixed version. For each entry and seed the scorer trains both versions
under ``impediments.watch(model, optimizer=opt)`` with ``mon.record_loss(loss)``, runs ``impediments.checkup``
on the first batch at initialization (given the program's optimizer, as ``watch`` is), and reports:

* **detection**: the buggy version gets a warning or an error (from ``watch`` or ``checkup``);
* **named**: one of the entry's expected codes is among those warnings/errors;
* **first line**: the first line of the ``watch`` report (its first finding; the checkup's when the
  ``watch`` report has none) is an expected code at warning or error;
* **false alarm**: the fixed version gets any warning or error;
* **first finding**: the earliest fraction of the run (5%, 10%, 25%, 50%, 100%) after which a ``watch``
  report of the buggy version already holds a warning or error (the run is repeated, truncated; seeded runs
  are prefixes of each other), and the step a finding's own evidence gives, where it gives one;
* **overhead**: wall time of the training loop under ``watch`` over the same loop without it, measured in
  the same process, interleaved (plain, watched, plain) on both versions; ``report()`` is timed apart.

``--part`` picks one part of the corpus alone: ``tuned`` (the default run), ``heldout`` (the first held-out
part, run once and now seen) or ``heldout2`` (the second held-out part, ``realbugs/HELDOUT2.md``: to be scored
once, at the end); ``--held-out`` adds the first held-out part to the tuned-on one.

``--gate`` runs the reproduction gate instead (the fixed version must beat the buggy one at each of 5 seeds
by the entry's own measure); ``--gate --held-out`` or ``--gate --part heldout2`` gates a held-out part without
running the doctor on it, ``--gate --dropped`` re-gates the dropped entries. The exit status is 0 unless the scorer itself crashes
(2 for a bad argument).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import impediments as imp  # noqa: E402
from impediments.doctor import CODES  # noqa: E402
import realbugs  # noqa: E402
from realbugs._common import batches, evaluate, gate, train  # noqa: E402

LOUD = ("warning", "error")
FRACTIONS = (0.05, 0.1, 0.25, 0.5)
#: evidence keys that hold the step at which a finding's condition was first seen
STEP_KEYS = ("first_step", "from_step", "first_nonfinite_step", "collapsed_at_step", "checked_at_step", "step")
#: the published record on DeepFD's 52 real Keras programs (references.md), and TrainCheck's 20 PyTorch errors
PUBLISHED = [
    ("DEFault (ICSE'25)", "48/52 (94%)", "33/52 (63.5%)", "not reported"),
    ("DeepFD (ICSE'22)", "47/52 (90%)", "27/52 (52%)", "not reported"),
    ("UMLAUT", "50/52 (96%)", "14/52 (27%)", "not reported"),
    ("DeepLocalize (ICSE'21)", "36/52 (69%)", "7/52 (13%)", "not reported"),
    ("AutoTrainer (ICSE'21)", "12/52 (23%)", "10/52 (19%)", "not reported"),
    ("TrainCheck (OSDI'25), 20 PyTorch silent errors", "18/20 (90%), within 1 iteration", "-",
     "1.5-3.9% of checks on clean programs"),
]
LABEL_GROUPS = {
    "output head / loss / targets": {"activation", "loss", "preprocessing_targets", "layers"},
    "learning rate / optimizer / epochs": {"learning_rate", "optimizer", "epochs"},
    "input preprocessing": {"preprocessing_inputs"},
    "loop / API / frozen": {"loop_api_misuse", "frozen_parameters"},
}


# ------------------------------------------------------------------------------------------------ one run
def _findings(report) -> list[dict]:
    return [{"code": f.code, "severity": f.severity, "steps": _evidence_steps(f.evidence)} for f in report.findings]


def _evidence_steps(evidence: dict) -> list[int]:
    return [int(evidence[k]) for k in STEP_KEYS if isinstance(evidence.get(k), (int, float))
            and not isinstance(evidence.get(k), bool) and math.isfinite(evidence[k])]


def _loud(findings: list[dict]) -> list[str]:
    return sorted({f["code"] for f in findings if f["severity"] in LOUD})


def _checkup(module, seed: int, fixed: bool) -> dict:
    prog = module.build(seed, fixed=fixed)
    xb, yb = next(batches(prog))
    try:
        report = imp.checkup(prog.model, xb, yb, loss_fn=prog.loss_fn, optimizer=prog.optimizer)
    except Exception as exc:                                  # the doctor crashing is a result, not a scorer crash
        return {"findings": [], "error": f"{type(exc).__name__}: {exc}"}
    return {"findings": _findings(report), "error": None}


def _watched(module, seed: int, fixed: bool, steps: int | None = None) -> dict:
    prog = module.build(seed, fixed=fixed)
    with imp.watch(prog.model, optimizer=prog.optimizer) as mon:
        run = train(prog, monitor=mon, steps=steps)
    start = time.perf_counter()
    report = mon.report()
    report_seconds = time.perf_counter() - start
    return {"findings": _findings(report), "loop_seconds": run["seconds"], "report_seconds": report_seconds,
            "steps_run": len(run["losses"]), "steps": prog.steps, "score": evaluate(prog),
            "final_loss": run["losses"][-1] if run["losses"] else None}


def _plain_seconds(module, seed: int, fixed: bool) -> float:
    prog = module.build(seed, fixed=fixed)
    return train(prog)["seconds"]


def _first_line(watch: dict, checkup: dict) -> dict | None:
    for findings in (watch["findings"], checkup["findings"]):
        if findings:
            return findings[0]
    return None


def _timeline(module, seed: int, steps: int, expected: set[str]) -> dict:
    """Earliest fraction of the run after which the buggy version's report is loud (any / an expected code)."""
    first_any = first_expected = None
    for fraction in FRACTIONS:
        n = max(1, math.ceil(fraction * steps))
        loud = set(_loud(_watched(module, seed, fixed=False, steps=n)["findings"]))
        if loud and first_any is None:
            first_any = fraction
        if loud & expected:
            first_expected = fraction
            break
    return {"first_any": first_any, "first_expected": first_expected}


def score_entry(name: str, seeds: list[int], timeline: bool) -> dict:
    """Score one entry at ``seeds``: the per-seed results and the codes it expects."""
    module = realbugs.load(name)
    expected = {e["code"] for e in module.META["expected"]}
    runs = []
    for seed in seeds:
        out = {"seed": seed}
        for version, fixed in (("buggy", False), ("fixed", True)):
            plain_before = _plain_seconds(module, seed, fixed)
            watch = _watched(module, seed, fixed)
            plain_after = _plain_seconds(module, seed, fixed)
            check = _checkup(module, seed, fixed)
            loud = sorted(set(_loud(watch["findings"])) | set(_loud(check["findings"])))
            first = _first_line(watch, check)
            out[version] = {"watch": watch, "checkup": check, "loud": loud, "first_line": first,
                            "overhead": watch["loop_seconds"] / max(1e-9, (plain_before + plain_after) / 2)}
        buggy = out["buggy"]
        out["detected"] = bool(buggy["loud"])
        out["named"] = bool(expected & set(buggy["loud"]))
        first = buggy["first_line"]
        out["first_line_named"] = bool(first and first["code"] in expected and first["severity"] in LOUD)
        out["false_alarm"] = bool(out["fixed"]["loud"])
        steps_in_evidence = [s for f in buggy["watch"]["findings"] if f["severity"] in LOUD for s in f["steps"]]
        out["evidence_first_step_fraction"] = (min(steps_in_evidence) / buggy["watch"]["steps"]
                                               if steps_in_evidence else None)
        if out["detected"] and timeline:
            out["timeline"] = _timeline(module, seed, buggy["watch"]["steps"], expected)
            if not buggy["watch"]["findings"] or not _loud(buggy["watch"]["findings"]):
                out["timeline"]["note"] = "loud only at checkup (step 0)"
                out["timeline"]["first_any"] = 0.0
        runs.append(out)
    return {"name": name, "labels": module.META["labels"], "expected": sorted(expected),
            "expected_new": sorted(e["code"] for e in module.META["expected"] if e["new"]), "runs": runs}


# ------------------------------------------------------------------------------------------------ printing
def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "0/0"


def _fraction_cell(run: dict) -> str:
    t = run.get("timeline")
    if t is None:
        return "-" if not run["detected"] else "not measured"
    cell = f"any <={t['first_any']:.0%}" if t["first_any"] is not None else "any >50%"
    if run["named"]:
        cell += f", cause <={t['first_expected']:.0%}" if t["first_expected"] is not None else ", cause >50%"
    if run["evidence_first_step_fraction"] is not None:
        cell += f" (evidence: {run['evidence_first_step_fraction']:.0%})"
    return cell


def print_header() -> None:
    print("| entry | labels | expected (new*) | buggy: warnings/errors | first line | named | first | "
          "fixed: warnings/errors | first finding | overhead b/f |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)


def print_entries(results: list[dict]) -> None:
    for r in results:
        exp = ", ".join(c + ("*" if c in r["expected_new"] else "") for c in r["expected"])
        for run in r["runs"]:
            first = run["buggy"]["first_line"]
            first_cell = f"{first['code']} ({first['severity']})" if first else "(nothing)"
            print(f"| {r['name']}" + (f" s{run['seed']}" if len(r["runs"]) > 1 else "")
                  + f" | {', '.join(r['labels'])} | {exp} | {', '.join(run['buggy']['loud']) or '-'} | {first_cell}"
                  f" | {'yes' if run['named'] else 'no'} | {'yes' if run['first_line_named'] else 'no'}"
                  f" | {', '.join(run['fixed']['loud']) or '-'} | {_fraction_cell(run)}"
                  f" | {run['buggy']['overhead']:.2f}/{run['fixed']['overhead']:.2f} |", flush=True)


def totals(results: list[dict]) -> dict:
    runs = [run for r in results for run in r["runs"]]
    n = len(runs)
    fractions = [run["timeline"]["first_any"] for run in runs if run.get("timeline")
                 and run["timeline"]["first_any"] is not None]
    undetected_by_half = sum(1 for run in runs if run.get("timeline") and run["timeline"]["first_any"] is None)
    overheads = [run[v]["overhead"] for run in runs for v in ("buggy", "fixed")]
    report_seconds = [run[v]["watch"]["report_seconds"] for run in runs for v in ("buggy", "fixed")]
    fixed_codes: dict[str, list[int]] = {}                 # code -> [runs, from watch, from checkup]
    for run in runs:
        for code in run["fixed"]["loud"]:
            row = fixed_codes.setdefault(code, [0, 0, 0])
            row[0] += 1
            row[1] += code in _loud(run["fixed"]["watch"]["findings"])
            row[2] += code in _loud(run["fixed"]["checkup"]["findings"])
    nameable = [r for r in results if set(r["expected"]) & set(CODES)]
    return {
        "runs": n, "detected": sum(r["detected"] for r in runs), "named": sum(r["named"] for r in runs),
        "first_line": sum(r["first_line_named"] for r in runs), "false_alarms": sum(r["false_alarm"] for r in runs),
        "median_first_fraction": statistics.median(fractions + [math.inf] * undetected_by_half)
        if fractions or undetected_by_half else None,
        "first_fraction_measured": len(fractions) + undetected_by_half,
        "evidence_step_given": sum(1 for r in runs if r["detected"] and r["evidence_first_step_fraction"] is not None),
        "overhead_median": statistics.median(overheads) if overheads else None,
        "overhead_max": max(overheads) if overheads else None,
        "report_seconds_median": statistics.median(report_seconds) if report_seconds else None,
        "fixed_codes": dict(sorted(fixed_codes.items(), key=lambda kv: -kv[1][0])),
        "entries_with_an_existing_expected_code": len(nameable), "entries": len(results),
    }


def print_totals(results: list[dict], t: dict) -> None:
    n = t["runs"]
    print(f"\n**Totals over {t['entries']} entries, {n} buggy/fixed pairs**")
    print(f"- detection (buggy version warned): {_pct(t['detected'], n)}")
    print(f"- root cause named (an expected code among warnings/errors): {_pct(t['named'], n)}")
    print(f"- root cause on the first line: {_pct(t['first_line'], n)}")
    print(f"- false alarms on the fixed versions: {_pct(t['false_alarms'], n)}")
    print(f"- entries with an expected code in this doctor's catalogue: "
          f"{t['entries_with_an_existing_expected_code']}/{t['entries']} (the rest need codes it does not have)")
    if t["median_first_fraction"] is not None:
        med = t["median_first_fraction"]
        print(f"- median first finding: {'later than 50% of the run' if med == math.inf else f'<= {med:.0%}'} "
              f"of the run ({t['first_fraction_measured']} detected runs, checked at 5/10/25/50%)")
    else:
        print("- first finding: not measured (--no-timeline, or nothing detected)")
    print(f"- a step in the report's own evidence: given for {t['evidence_step_given']} of {t['detected']} detected "
          f"runs, not available for the others (hence the truncated reruns above)")
    if t["overhead_median"] is not None:
        print(f"- overhead of watch() on the training loop: median {t['overhead_median']:.2f}x, worst "
              f"{t['overhead_max']:.2f}x; report() median {t['report_seconds_median'] * 1000:.0f} ms")
    if t["fixed_codes"]:
        print("\n| code raised on fixed versions | runs | by watch() | by checkup |\n|---|---|---|---|")
        for code, (k, by_watch, by_checkup) in t["fixed_codes"].items():
            print(f"| `{code}` | {k} | {by_watch} | {by_checkup} |")
    print("\n| root-cause group | entries | detected | named | first line | false alarms |\n|---|---|---|---|---|---|")
    for group, labels in LABEL_GROUPS.items():
        runs = [run for r in results if set(r["labels"]) & labels for run in r["runs"]]
        if runs:
            k = len(runs)
            print(f"| {group} | {len({r['name'] for r in results if set(r['labels']) & labels})} "
                  f"| {_pct(sum(x['detected'] for x in runs), k)} | {_pct(sum(x['named'] for x in runs), k)} "
                  f"| {_pct(sum(x['first_line_named'] for x in runs), k)} | {_pct(sum(x['false_alarm'] for x in runs), k)} |")
    print("\n| published, on their own benchmarks | detected | root cause named | false alarms on fixed |"
          "\n|---|---|---|---|")
    print(f"| **impediments (this run)** | {_pct(t['detected'], n)} | {_pct(t['named'], n)} "
          f"| {_pct(t['false_alarms'], n)} |")
    for row in PUBLISHED:
        print("| " + " | ".join(row) + " |")


# ------------------------------------------------------------------------------------------------ main
def _write_json(path: str, payload) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=1, default=lambda v: None if isinstance(v, float) and not math.isfinite(v)
                  else str(v))
    os.replace(tmp, target)


def _select(args) -> list[str]:
    if args.dropped:
        pool = sorted("dropped." + n for n in realbugs.entry_names(folder="dropped"))
    elif args.part is not None:
        if args.part not in realbugs.PARTS:
            print(f"realbugs: unknown part {args.part!r}; valid parts: {', '.join(realbugs.PARTS)}", file=sys.stderr)
            raise SystemExit(2)
        pool = realbugs.entry_names(part=args.part)
    else:
        pool = realbugs.entry_names() + (realbugs.entry_names(held_out=True) if args.held_out else [])
    if not args.entries:
        return pool
    wanted = [e.strip() for e in args.entries.split(",") if e.strip()]
    short = {n.split(".")[-1]: n for n in pool}
    bad = [e for e in wanted if e not in pool and e not in short]
    if bad:
        print(f"realbugs: unknown entry {bad[0]!r}; valid entries: {', '.join(sorted(short))}", file=sys.stderr)
        raise SystemExit(2)
    return [e if e in pool else short[e] for e in wanted]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--held-out", action="store_true", help="add the held-out part (run once, at the end)")
    parser.add_argument("--part", help=f"score one part of the corpus alone: {', '.join(realbugs.PARTS)} "
                        "(default: tuned; heldout2 is run once, at the end)")
    parser.add_argument("--entries", help="comma-separated entry names (default: all of the selected part)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default: 0 for the doctor, 0-4 for --gate)")
    parser.add_argument("--gate", action="store_true", help="run the reproduction gate only (no doctor)")
    parser.add_argument("--dropped", action="store_true", help="with --gate: the dropped entries")
    parser.add_argument("--no-timeline", action="store_true", help="skip the truncated runs (first finding)")
    parser.add_argument("--json", help="write the results here (atomically)")
    args = parser.parse_args(argv)
    if args.dropped and not args.gate:
        parser.error("--dropped needs --gate: dropped entries are never scored")
    if args.part is not None and (args.held_out or args.dropped):
        parser.error("--part picks one part alone: use it without --held-out and --dropped")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    names = _select(args)
    if args.gate:
        seeds = args.seeds or [0, 1, 2, 3, 4]
        rows = []
        print(f"| entry | gate | buggy at seeds {seeds} | fixed | passed |\n|---|---|---|---|---|")
        for name in names:
            r = gate(realbugs.load(name), seeds)
            rows.append({"name": name, **r})
            fmt = lambda vals: ", ".join(f"{v:.3g}" for v in vals)
            print(f"| {name} | {realbugs.load(name).META['gate']} | {fmt(r['buggy'])} | {fmt(r['fixed'])} "
                  f"| {'yes' if r['passed'] else '**no**'} |", flush=True)
        print(f"\n{sum(r['passed'] for r in rows)}/{len(rows)} pass the gate")
        if args.json:
            _write_json(args.json, {"gate": rows, "seeds": seeds})
        return 0
    seeds = args.seeds or [0]
    started = time.perf_counter()
    print_header()
    results = []
    for name in names:
        results.append(score_entry(name, seeds, timeline=not args.no_timeline))
        print_entries(results[-1:])
    t = totals(results)
    print_totals(results, t)
    print(f"\n({len(names)} entries, seeds {seeds}, {time.perf_counter() - started:.0f} s, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread)")
    if args.json:
        _write_json(args.json, {"results": results, "totals": t, "seeds": seeds,
                                "held_out_included": args.held_out, "part": args.part or "tuned"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
