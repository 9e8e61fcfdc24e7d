"""``impediments doctor SPEC.py`` and ``impediments checkup SPEC.py``.

Exit codes: 0 nothing above info, 1 any warning or error, 2 usage error (missing
or broken spec, unwatchable model, report path in a missing folder).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_STEPS, DEFAULT_BATCH = 100, 64


class UnwatchableModel(ValueError):
    """The model has nothing the monitor can watch."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _threshold(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER (e.g. dead_error=0.5), got {text!r}") from None


def _thresholds(args):
    """The ``--threshold`` overrides as a validated ``Thresholds`` (ValueError names the bad one)."""
    from impediments.doctor.thresholds import Thresholds

    overrides = dict(args.threshold or [])
    ints = {f.name for f in dataclasses.fields(Thresholds) if f.type in ("int", int)}
    return Thresholds.coerce({k: int(v) if k in ints and float(v).is_integer() else v for k, v in overrides.items()})


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="SPEC.py defining model() and data() (optionally optimizer(params), loss_fn)")
    p.add_argument("--threshold", action="append", type=_threshold, metavar="NAME=VALUE",
                   help="override one of the doctor's thresholds (repeatable; the names and reasons are in "
                        "impediments.doctor.Thresholds.describe())")
    p.add_argument("--html", help="write a self-contained HTML report here")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--batch-size", type=_positive, default=None, help=f"default: spec BATCH_SIZE or {DEFAULT_BATCH}")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def register(subparsers) -> dict:
    doc = subparsers.add_parser("doctor", help="train a SPEC.py model briefly under the monitor and diagnose it")
    _common(doc)
    doc.add_argument("--steps", type=_positive, default=None, help=f"training steps (default: spec STEPS or "
                                                                   f"{DEFAULT_STEPS})")
    doc.add_argument("--tensorboard", metavar="DIR", help="also write the monitor's statistics as TensorBoard "
                                                          "events to DIR (needs the tensorboard extra)")
    chk = subparsers.add_parser("checkup", help="diagnose a SPEC.py model at initialization (one batch)")
    _common(chk)
    return {"doctor": cmd_doctor, "checkup": cmd_checkup}


def _usage(command: str, message: str) -> int:
    print(f"impediments {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _prepare(args):
    """Load the spec and build everything; raises SpecError/FileNotFoundError for usage errors."""
    import torch

    from impediments.doctor.atomic import check_writable_path
    from impediments.cli.spec import build_data, build_model, load_spec

    for path in (args.html, args.json):
        if path:
            check_writable_path(path)
    spec = load_spec(args.spec)
    torch.manual_seed(args.seed)
    model = build_model(spec)
    X, y = build_data(spec)
    batch = args.batch_size or spec.get("BATCH_SIZE") or DEFAULT_BATCH
    return spec, model, X, y, min(int(batch), len(X))


def _finish(args, report) -> int:
    print(report)
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")
    if args.html:
        report.to_html(args.html)
        print(f"wrote {args.html}")
    return report.exit_code


def _run(command, args, body) -> int:
    from impediments.cli.spec import SpecError

    try:
        return body()
    except (SpecError, FileNotFoundError, IsADirectoryError, UnwatchableModel, ImportError) as exc:
        return _usage(command, str(exc))
    except ValueError as exc:
        if "threshold" in str(exc):
            return _usage(command, str(exc))
        raise


def _check_watchable(model) -> None:
    if not any(p.requires_grad for p in model.parameters()) and not list(model.children()):
        raise UnwatchableModel(f"model {type(model).__name__} has no layers the monitor can watch "
                               "(no parameters and no submodules)")


def _watch_errors(fn):
    """Map the monitor's 'nothing to watch' ValueError to a usage error."""
    try:
        return fn()
    except ValueError as exc:
        if "watch" in str(exc).lower():
            raise UnwatchableModel(str(exc)) from exc
        raise


def cmd_doctor(args) -> int:
    def body():
        from impediments.cli.spec import build_training, train_under_monitor

        thresholds = _thresholds(args)
        spec, model, X, y, batch = _prepare(args)
        _check_watchable(model)
        opt, loss_fn = build_training(spec, model)
        steps = args.steps or spec.get("STEPS") or DEFAULT_STEPS
        mon = _watch_errors(lambda: train_under_monitor(model, X, y, opt, loss_fn, steps=int(steps),
                                                        batch_size=batch, seed=args.seed))
        report = mon.report(thresholds)
        report.title = f"impediments doctor {args.spec} ({steps} steps)"
        if args.tensorboard:
            print(f"wrote {mon.to_tensorboard(args.tensorboard)} TensorBoard events to {args.tensorboard}")
        return _finish(args, report)

    return _run("doctor", args, body)


def cmd_checkup(args) -> int:
    def body():
        from impediments.doctor.checkup import checkup

        thresholds = _thresholds(args)
        spec, model, X, y, batch = _prepare(args)
        _check_watchable(model)
        loss_fn = spec.get("loss_fn")
        report = _watch_errors(lambda: checkup(model, X[:batch], y[:batch], loss_fn, thresholds=thresholds))
        report.title = f"impediments checkup {args.spec}"
        return _finish(args, report)

    return _run("checkup", args, body)
