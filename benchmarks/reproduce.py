"""Time ``impediments reproduce``: every experiment in quick and in full mode at its default seeds, plus the cached rerun.

Usage::

    python benchmarks/reproduce.py [--modes quick full] [--only NAME ...] [--seed 0] [--jobs N] [--json out.json]

Runs the real command path (:func:`impediments.experiments.runner.reproduce`)
into a fresh temporary folder per mode, so nothing is cached, with the mode's
default seeds (quick 5, full 8) in ``--jobs`` worker processes (default: one
per core), then runs it again to time the cached (resumed) run. Prints one
row per experiment with the seconds spent in ``run()`` summed over seeds and
the claims that hold / are inconclusive / fail, then per mode the wall-clock
total against the budgets (quick <= 3 min, full <= 15 min on a 2-core
machine) and the CPU seconds of this process and its workers: on a shared
machine, CPU seconds / cores is what the run would take with the cores to
itself.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

from impediments import experiments
from impediments.experiments import runner

BUDGET_S = {"quick": 180.0, "full": 900.0}


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_mode(names: list[str], mode: str, seed: int, jobs: int) -> dict:
    quick = mode == "quick"
    seeds = runner.default_seeds(quick, seed)
    with tempfile.TemporaryDirectory(prefix=f"repro-bench-{mode}-") as out:
        start, cpu = time.perf_counter(), _cpu_seconds()
        ok = runner.reproduce(names, quick=quick, out=out, seeds=seeds, jobs=jobs, stream=open(os.devnull, "w"))
        total, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        per = {}
        for name in names:
            with open(os.path.join(out, f"{name}.json")) as fh:
                record = json.load(fh)
            verdicts = [c["verdict"] for c in record["claims"]]
            per[name] = {"run_s": record["elapsed_s"], "claims": len(verdicts),
                         **{v: verdicts.count(v) for v in ("holds", "inconclusive", "fails")}}
        start = time.perf_counter()
        runner.reproduce(names, quick=quick, out=out, seeds=seeds, jobs=jobs, stream=open(os.devnull, "w"))
        cached = time.perf_counter() - start
    return {"mode": mode, "seeds": seeds, "jobs": jobs, "no_claim_fails": ok, "total_s": total, "cpu_s": cpu,
            "cached_rerun_s": cached, "experiments": per}


def print_table(results: list[dict]) -> None:
    names = list(results[0]["experiments"])
    head = f"{'experiment':24s}" + "".join(f"{r['mode'] + ' run (s)':>16s}{'hold/inc/fail':>15s}" for r in results)
    print(head)
    print("-" * len(head))
    for name in names:
        row = f"{name:24s}"
        for r in results:
            e = r["experiments"][name]
            row += f"{e['run_s']:16.1f}{e['holds']:>9d}/{e['inconclusive']}/{e['fails']}  "
        print(row)
    print("-" * len(head))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for r in results:
        budget = BUDGET_S[r["mode"]]
        verdict = "within" if r["total_s"] <= budget else "OVER"
        print(f"{r['mode']:5s}: {len(r['seeds'])} seeds, {r['jobs']} jobs: total {r['total_s']:.1f} s wall ({verdict} the "
              f"{budget:.0f} s budget), {r['cpu_s']:.0f} CPU s ({r['cpu_s'] / cores:.0f} s on {cores} free cores), "
              f"cached rerun {r['cached_rerun_s']:.2f} s, no claim fails: {r['no_claim_fails']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["quick", "full"], choices=["quick", "full"])
    parser.add_argument("--only", nargs="*", default=None, help="experiment names (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="first of the mode's default seeds")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--json", default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    names = args.only or experiments.names()
    from impediments.cli import parse_jobs

    results = [time_mode(names, mode, args.seed, parse_jobs(args.jobs)) for mode in args.modes]
    print_table(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if all(r["no_claim_fails"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
