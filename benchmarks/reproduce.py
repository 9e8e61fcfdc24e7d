"""Time ``impediments reproduce``: every experiment in quick and in full mode, plus the cached rerun.

Usage::

    python benchmarks/reproduce.py [--modes quick full] [--only NAME ...] [--seed 0] [--json out.json]

Runs the real command path (:func:`impediments.experiments.runner.reproduce`)
into a fresh temporary folder per mode, so nothing is cached, then runs it
again to time the cached (resumed) run. Prints one row per experiment with
the seconds spent in ``run()`` and the claims passed, and the wall-clock
total per mode against the budgets (quick <= 3 min, full <= 15 min on a
2-core machine).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from impediments import experiments
from impediments.experiments import runner

BUDGET_S = {"quick": 180.0, "full": 900.0}


def time_mode(names: list[str], mode: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"repro-bench-{mode}-") as out:
        start = time.perf_counter()
        ok = runner.reproduce(names, quick=mode == "quick", out=out, seed=seed, stream=open(os.devnull, "w"))
        total = time.perf_counter() - start
        per = {}
        for name in names:
            with open(os.path.join(out, f"{name}.json")) as fh:
                record = json.load(fh)
            per[name] = {"run_s": record["elapsed_s"], "claims": len(record["claims"]),
                         "passed": sum(c["passed"] for c in record["claims"])}
        start = time.perf_counter()
        runner.reproduce(names, quick=mode == "quick", out=out, seed=seed, stream=open(os.devnull, "w"))
        cached = time.perf_counter() - start
    return {"mode": mode, "all_passed": ok, "total_s": total, "cached_rerun_s": cached, "experiments": per}


def print_table(results: list[dict]) -> None:
    names = list(results[0]["experiments"])
    head = f"{'experiment':24s}" + "".join(f"{r['mode'] + ' run (s)':>16s}{'claims':>9s}" for r in results)
    print(head)
    print("-" * len(head))
    for name in names:
        row = f"{name:24s}"
        for r in results:
            e = r["experiments"][name]
            row += f"{e['run_s']:16.1f}{e['passed']:>5d}/{e['claims']:<3d}"
        print(row)
    print("-" * len(head))
    for r in results:
        budget = BUDGET_S[r["mode"]]
        verdict = "within" if r["total_s"] <= budget else "OVER"
        print(f"{r['mode']:5s}: total {r['total_s']:.1f} s wall ({verdict} the {budget:.0f} s budget), "
              f"cached rerun {r['cached_rerun_s']:.2f} s, all claims passed: {r['all_passed']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["quick", "full"], choices=["quick", "full"])
    parser.add_argument("--only", nargs="*", default=None, help="experiment names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    names = args.only or experiments.names()
    results = [time_mode(names, mode, args.seed) for mode in args.modes]
    print_table(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if all(r["all_passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
