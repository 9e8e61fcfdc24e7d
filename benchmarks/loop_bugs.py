"""Training-loop bugs (issue 18): when each is found, injected into real loops on several architectures; the look-alikes.

Usage::

    python benchmarks/loop_bugs.py [--steps 5 10 20 40] [--look-alike-steps 60] [--only CODE ...] [--json out.json]

Every code of ``doctor/rules/loop.py`` is injected, the way people write it, into the training loop of
three architectures on standardized digits (a ReLU MLP, a two-layer CNN, a BatchNorm ResNet; He init,
SGD), trained under :func:`impediments.monitor.watch` with the default schedule and diagnosed with
default thresholds. A bug counts as found at the fewest of ``--steps`` training steps after which its
code is reported as a warning or error. The legitimate look-alikes (gradient accumulation, a frozen
first layer, cosine schedules stepped per epoch or sized to the run in batches, a class-balanced
sampler, clipping at max_norm 1) train ``--look-alike-steps`` steps and must raise no loop code above
info. The injections live in :mod:`impediments.train.zoo.loop_bugs`, which also hands them to the doctor's zoo.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from impediments.cli.spec import train_under_monitor
from impediments.train import Setup
from impediments.train.zoo.loop_bugs import ARCHITECTURES, LOOK_ALIKES, LOOP_CODES, bug_setup, look_alike_setup


def diagnose_run(setup: Setup, steps: int, seed: int = 0) -> dict:
    """Train ``setup`` for ``steps`` steps under the monitor; the codes flagged and those at info."""
    start = time.perf_counter()
    report = train_under_monitor(replace(setup, steps=steps), seed=seed).report()
    return {"flagged": sorted({f.code for f in report.findings if f.severity in ("warning", "error")}),
            "info": sorted({f.code for f in report.findings if f.severity == "info"}),
            "seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--look-alike-steps", type=int, default=60)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    codes = [c for c in LOOP_CODES if not args.only or c in args.only]
    archs = list(ARCHITECTURES)
    rows, ok = [], True
    print(f"| code | {' | '.join(archs)} | other codes raised (at {max(args.steps)} steps) |\n|---|"
          + "---|" * len(archs) + "---|")
    for code in codes:
        cells, others = [], set()
        for arch in archs:
            found = None
            for n in sorted(args.steps):
                r = diagnose_run(bug_setup(code, arch), n)
                if code in r["flagged"]:
                    found = n
                    others |= set(r["flagged"]) - {code} if n == max(args.steps) else set()
                    break
            if found is not None and found != max(args.steps):
                others |= set(diagnose_run(bug_setup(code, arch), max(args.steps))["flagged"]) - {code}
            rows.append({"code": code, "arch": arch, "found_at_steps": found})
            cells.append(f"found by step {found}" if found is not None else "**missed**")
            ok &= found is not None
        print(f"| `{code}` | {' | '.join(cells)} | {', '.join(sorted(others)) or '-'} |", flush=True)
    print(f"\n| look-alike ({args.look_alike_steps} steps) | {' | '.join(archs)} |\n|---|" + "---|" * len(archs))
    for name in LOOK_ALIKES if not args.only else ():
        cells = []
        for arch in archs:
            r = diagnose_run(look_alike_setup(name, arch, args.look_alike_steps), args.look_alike_steps)
            loud = sorted(set(r["flagged"]) & set(LOOP_CODES))
            rows.append({"look_alike": name, "arch": arch, "loop_codes_flagged": loud, "flagged": r["flagged"],
                         "info": r["info"]})
            info = sorted(set(r["info"]) & set(LOOP_CODES))
            cells.append(("**" + ", ".join(loud) + "**") if loud else "quiet" + (f" (info: {', '.join(info)})"
                                                                                 if info else ""))
            ok &= not loud
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
