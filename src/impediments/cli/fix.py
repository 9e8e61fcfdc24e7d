"""``impediments fix SPEC.py``: try the doctor's remedies on copies of the spec, retrain, show what helped.

Exit codes: 0 everything found was fixed (or nothing was found), 1 findings remain,
2 usage error (missing or broken spec, bad option, report path in a missing folder).
"""
from __future__ import annotations

import os
import sys

from impediments.cli.doctor import DEFAULT_BATCH, DEFAULT_STEPS, _positive, _threshold, _thresholds

EXIT_USAGE = 2


def _nonnegative_float(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def register(subparsers) -> dict:
    p = subparsers.add_parser("fix", help="try each remedy for the doctor's findings on a copy, retrain, and show "
                                          "which ones verifiably fix them")
    p.add_argument("spec", help="SPEC.py defining model() and data() (optionally optimizer(params), loss_fn)")
    p.add_argument("--steps", type=_positive, default=None, help=f"training steps of every run (default: spec STEPS "
                                                                 f"or {DEFAULT_STEPS})")
    p.add_argument("--budget-runs", type=_positive, default=None, metavar="K",
                   help="at most K remedy runs, the combination included (default: every remedy)")
    p.add_argument("--seeds", type=_positive, default=1, help="seeds per run; a fix must help on every seed")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--jobs", type=_positive, default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: min(2, CPUs))")
    p.add_argument("--batch-size", type=_positive, default=None, help=f"default: spec BATCH_SIZE or {DEFAULT_BATCH}")
    p.add_argument("--tolerance", type=_nonnegative_float, default=None,
                   help="how far below the baseline the validation accuracy may land and count as no worse "
                        "(default: one binomial standard error of the baseline's)")
    p.add_argument("--threshold", action="append", type=_threshold, metavar="NAME=VALUE",
                   help="override one of the doctor's thresholds (repeatable)")
    p.add_argument("--html", help="write the before/after report (loss curves, findings diff) here")
    p.add_argument("--json", help="write the JSON report here")
    return {"fix": cmd_fix}


_CACHE: dict = {}


class SpecSource:
    """``() -> Pieces`` for a SPEC.py: picklable (a path and numbers); each process loads the spec once."""

    def __init__(self, path: str, steps: int | None, batch_size: int | None):
        self.path, self.steps, self.batch_size = str(path), steps, batch_size

    def __call__(self):
        key = (self.path, self.steps, self.batch_size)
        if key not in _CACHE:
            _CACHE[key] = self._load()
        return _CACHE[key]

    def _load(self):
        from impediments.cli.spec import SpecError, _call, build_data, load_spec, spec_setup
        from impediments.fix.pieces import pieces_of

        spec = load_spec(self.path)
        X, y = build_data(spec)                # validates data() with the doctor's messages
        try:
            steps = int(self.steps or spec.get("STEPS") or DEFAULT_STEPS)
            batch = int(self.batch_size or spec.get("BATCH_SIZE") or DEFAULT_BATCH)
            setup = spec_setup(spec, X, y, steps=steps, batch_size=batch)
            return pieces_of(setup, _call(spec, "data"))
        except ValueError as exc:
            if isinstance(exc, SpecError):
                raise
            raise SpecError(f"spec {self.path!r}: {exc}") from exc


def cmd_fix(args) -> int:
    from impediments.cli.spec import SpecError
    from impediments.doctor.atomic import check_writable_path
    from impediments.fix.runner import FixError, run_fix

    def usage(message: str) -> int:
        print(f"impediments fix: error: {message}", file=sys.stderr)
        return EXIT_USAGE

    try:
        thresholds = _thresholds(args)
        for path in (args.html, args.json):
            if path:
                check_writable_path(path)
        source = SpecSource(args.spec, args.steps, args.batch_size)
        pieces = source()
        floor = thresholds.plateau_min_steps
        if args.steps is None and pieces.steps < floor:     # the spec's STEPS is too short to show a finding
            print(f"note: STEPS {pieces.steps} raised to {floor}: the doctor's loss rules need {floor} steps to "
                  "speak, and nothing is claimed from a shorter run")
            source = SpecSource(args.spec, floor, args.batch_size)
            source()
    except (SpecError, FileNotFoundError, IsADirectoryError, ValueError) as exc:
        return usage(str(exc))

    from impediments.fix.remedies.labels import row_label

    def progress(trial):
        label = row_label(trial.remedies) or "baseline"
        state = trial.error or f"flagged: {', '.join(sorted(trial.flagged)) or 'none'}"
        print(f"  ran {label} (seed {trial.seed}, {trial.wall_s:.1f} s): {state}", flush=True)

    try:
        report = run_fix(source, seeds=args.seeds, seed=args.seed, jobs=args.jobs, budget_runs=args.budget_runs,
                         thresholds=thresholds, tolerance=args.tolerance, title=f"impediments fix {args.spec}",
                         progress=progress)
    except FixError as exc:
        return usage(str(exc))
    report.spec = args.spec                  # the change is printed as code to append to this file
    if args.json:
        report.to_json(args.json)
    if args.html:
        from impediments.report import render_fix_html

        render_fix_html(report, args.html)
    print(report)
    for path in (args.json, args.html):
        if path:
            print(f"wrote {path}")
    return report.exit_code
