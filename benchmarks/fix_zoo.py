"""``impediments fix`` over the doctor's zoo and the broken examples: is a verified fix found for each?

Usage::

    python benchmarks/fix_zoo.py [--steps 60] [--jobs 2] [--only NAME ...] [--json out.json] [--markdown]

For every broken case of :func:`impediments.train.zoo.zoo` (and every ``examples/*.py`` doctor spec,
whose own ``STEPS`` is raised to the doctor's minimum evidence when shorter) it
runs :func:`impediments.fix.run_fix` and prints one row: the setup, the codes the
baseline flagged, the chosen fix, the validation accuracy before and after, and
whether every flagged code was cleared by a verified fix. Healthy setups must
come back unchanged (nothing flagged, nothing tried). ``--markdown`` prints the
README table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from impediments.doctor.thresholds import Thresholds
from impediments.fix import run_fix
from impediments.fix.pieces import pieces_of
from impediments.train.zoo import zoo

ROOT = Path(__file__).resolve().parent.parent


#: a setup's own shorter step count is raised to the doctor's minimum evidence, as ``impediments fix`` does
MIN_EVIDENCE = Thresholds().plateau_min_steps


class ZooSource:
    """``() -> Pieces`` for the zoo case ``name`` (picklable: a name and a budget)."""

    def __init__(self, name: str, steps: int):
        self.name, self.steps = name, steps

    def __call__(self):
        setup = next(c for c in zoo() if c.name == self.name).setup(self.steps)
        return pieces_of(replace(setup, steps=max(setup.steps, MIN_EVIDENCE)))


def sources(steps: int, only) -> list[tuple[str, str, object]]:
    """``(name, kind, source)`` for every zoo setup and every example spec."""
    from impediments.cli.fix import SpecSource
    from impediments.cli.spec import SpecError

    out = [(s.name, "zoo", ZooSource(s.name, steps)) for s in zoo()]
    floor = MIN_EVIDENCE
    for path in sorted((ROOT / "examples").glob("*.py")):
        try:
            spec_steps = SpecSource(str(path), None, None)().steps
        except SpecError:
            continue                      # not a SPEC.py (e.g. a framework integration example)
        out.append((f"examples/{path.name}", "example",
                    SpecSource(str(path), max(spec_steps, floor) if spec_steps < floor else None, None)))
    return [o for o in out if not only or o[0] in only]


def row(name: str, kind: str, report) -> dict:
    chosen = report.chosen.name if report.chosen else None
    after = report.chosen.trials if report.chosen else report.baseline
    acc = lambda trials: sum(t.val_acc for t in trials) / len(trials) if trials[0].val_acc is not None else None  # noqa
    loss = lambda trials: sum(t.val_loss for t in trials) / len(trials)  # noqa: E731
    return {"setup": name, "kind": kind, "flagged": report.flagged, "chosen": chosen,
            "remaining": report.remaining, "before": acc(report.baseline), "after": acc(after),
            "before_loss": loss(report.baseline), "after_loss": loss(after),
            "fixed": report.exit_code == 0, "remedies_tried": len(report.rows) + (report.combination is not None),
            "seconds": report.wall_s}


def fmt_acc(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def fmt_metric(r: dict, when: str) -> str:
    """Validation accuracy, or for a regression target ``loss <validation loss>``."""
    return fmt_acc(r[when]) if r[when] is not None else f"loss {r[when + '_loss']:.3g}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows, start = [], time.perf_counter()
    if args.only:
        unknown = set(args.only) - {name for name, _, _ in sources(args.steps, None)}
        if unknown:
            parser.error(f"unknown setup(s): {', '.join(sorted(unknown))}")
    for name, kind, source in sources(args.steps, args.only):
        report = run_fix(source, jobs=args.jobs, title=name)
        rows.append(row(name, kind, report))
        r = rows[-1]
        status = "ok" if r["fixed"] else "LEFT"
        print(f"{status:4s} {name:44s} flagged={','.join(r['flagged']) or '-'} fix={r['chosen'] or '-'} "
              f"acc {fmt_metric(r, 'before')} -> {fmt_metric(r, 'after')} remaining={','.join(r['remaining']) or '-'} "
              f"({r['remedies_tried']} remedies, {r['seconds']:.0f}s)", flush=True)
    broken = [r for r in rows if r["flagged"]]
    fixed = [r for r in broken if r["fixed"]]
    worse = [r for r in fixed if r["before"] is not None and r["after"] < r["before"]]
    print(f"\nflagged setups: {len(broken)}, fixed by a verified fix: {len(fixed)}; unflagged setups left unchanged: "
          f"{len(rows) - len(broken)}; fixed with lower accuracy (within tolerance): {len(worse)}; "
          f"total {time.perf_counter() - start:.0f} s")
    if args.markdown:
        print("\n| setup | finding(s) | chosen fix | val. accuracy before → after |\n|---|---|---|---|")
        for r in broken:
            print(f"| `{r['setup']}` | {', '.join(r['flagged'])} | {r['chosen'] or '**none**'} | "
                  f"{fmt_metric(r, 'before')} → {fmt_metric(r, 'after')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if len(fixed) == len(broken) else 1


if __name__ == "__main__":
    sys.exit(main())
