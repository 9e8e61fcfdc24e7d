"""The doctor's zoo: broken and healthy setups, per-code detection recall and healthy false-positive rate.

Usage::

    python benchmarks/doctor_zoo.py [--steps 60] [--only NAME ...] [--json out.json]

Every case of :func:`impediments.train.zoo.zoo` trains briefly under
:func:`impediments.monitor.watch` (digits or MNIST-1D, standardized unless the
setup breaks that on purpose) and is diagnosed with default thresholds. A
broken setup lists the codes it must produce; a code counts as detected at any
severity. A healthy setup (standardized inputs, He/Glorot init matched to its
activation, a sensible learning rate) counts as a false positive if it produces
any warning or error.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from impediments.cli.spec import train_under_monitor
from impediments.doctor import CODES
from impediments.train.zoo import Case, zoo


# ------------------------------------------------------------------------------------------------ running
def run_case(case: Case, steps: int, seed: int = 0) -> dict:
    start = time.perf_counter()
    mon = train_under_monitor(case.setup(steps), seed=seed)
    report = mon.report()
    flagged = {f.code for f in report.findings if f.severity in ("warning", "error")}
    return {"name": case.name, "family": case.family, "expected": sorted(case.expected),
            "found": sorted(report.codes), "flagged": sorted(flagged),
            "missed": sorted(case.expected - report.codes), "seconds": time.perf_counter() - start}


def summarize(rows: list[dict]) -> dict:
    recall, flagged = {}, {}
    for code in CODES:
        hits = [code in r["found"] for r in rows if code in r["expected"]]
        recall[code] = (sum(hits), len(hits))
        flagged[code] = sum(code in r["flagged"] for r in rows if code in r["expected"])
    healthy = [r for r in rows if not r["expected"]]
    fp = [r for r in healthy if r["flagged"]]
    return {"recall": recall, "flagged": flagged, "healthy": len(healthy), "false_positives": len(fp),
            "false_positive_setups": {r["name"]: r["flagged"] for r in fp}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cases = [c for c in zoo() if not args.only or c.name in args.only]
    rows = []
    for c in cases:
        row = run_case(c, args.steps, args.seed)
        rows.append(row)
        status = "ok" if not row["missed"] and (row["expected"] or not row["flagged"]) else "MISS"
        print(f"{status:4s} {c.name:34s} {c.family:8s} expected={','.join(row['expected']) or '-'} "
              f"found={','.join(row['found']) or '-'} ({row['seconds']:.1f}s)", flush=True)
    summary = summarize(rows)
    print("\n| code | detected / setups | recall | of which warning or error |\n|---|---|---|---|")
    for code, (hit, total) in summary["recall"].items():
        print(f"| `{code}` | {hit} / {total} | {hit / total:.0%} | {summary['flagged'][code]} |" if total
              else f"| `{code}` | 0 / 0 | n/a | |")
    print(f"\nhealthy setups: {summary['healthy']}, false positives (any warning/error): "
          f"{summary['false_positives']} ({summary['false_positives'] / max(summary['healthy'], 1):.0%})"
          + (f" {summary['false_positive_setups']}" if summary["false_positives"] else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "summary": summary}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
