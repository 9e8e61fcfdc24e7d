"""``impediments doctor SPEC.py`` and ``impediments checkup SPEC.py``.

Exit codes: 0 nothing above info, 1 any warning or error, 2 usage error (missing
or broken spec, a model that fails in its own code, unwatchable model, a report path
that cannot be written: checked before training).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

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
    from impediments.cli.playground import add_live_options

    add_live_options(doc)     # --live [--port N] [--host H] [--no-browser]
    chk = subparsers.add_parser("checkup", help="diagnose a SPEC.py model at initialization (one batch)")
    _common(chk)
    return {"doctor": cmd_doctor, "checkup": cmd_checkup}


def _usage(command: str, message: str) -> int:
    print(f"impediments {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


class UnwritableOutput(OSError):
    """A report or event path that cannot be written (checked before any training)."""


def _probe_folder(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``: the one test that holds for permissions, read-only
    file systems and ACLs alike."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UnwritableOutput(f"cannot write {what}: folder {str(folder)!r} is not writable") from exc


def _check_outputs(args) -> None:
    """Every ``--html``/``--json`` file and ``--tensorboard`` folder can be written: before training."""
    from impediments.doctor.atomic import check_writable_path

    for flag, path in (("--html", args.html), ("--json", args.json)):
        if path:
            path = check_writable_path(path)
            _probe_folder(path.parent if str(path.parent) else Path("."), f"{flag} report {str(path)!r}")
    folder = getattr(args, "tensorboard", None)
    if folder:
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise UnwritableOutput(f"cannot write --tensorboard events to {str(folder)!r}: it is a file")
        existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise UnwritableOutput(f"cannot create --tensorboard folder {str(folder)!r}: {str(existing)!r} is a file")
        _probe_folder(existing, f"--tensorboard events to {str(folder)!r}")
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise ImportError("--tensorboard needs the tensorboard package: pip install 'impediments[tensorboard]'") \
                from None


def _blamed(spec, fn):
    """Run ``fn``; an exception from the spec's own model or loss becomes a one-line SpecError
    (file:line of the spec); one from impediments itself propagates with its traceback."""
    from impediments.cli.spec import SpecError, blame_spec

    try:
        return fn()
    except (SpecError, UnwatchableModel, KeyboardInterrupt):
        raise
    except Exception as exc:
        error = blame_spec(spec, exc)
        if error is None:
            raise
        raise error from exc


def _prepare(args):
    """Check the outputs, load the spec and build everything; raises SpecError, FileNotFoundError,
    UnwritableOutput or ImportError for usage errors."""
    import torch

    from impediments.cli.spec import build_data, build_model, load_spec

    _check_outputs(args)
    spec = load_spec(args.spec)
    torch.manual_seed(args.seed)
    model = build_model(spec)
    X, y = build_data(spec)
    batch = args.batch_size or spec.get("BATCH_SIZE") or DEFAULT_BATCH
    return spec, model, X, y, min(int(batch), len(X))


def _finish(args, report) -> int:
    from impediments.report import render_doctor_html

    written = []
    if args.json:                 # files first: a closed stdout (``| head``) must not lose them
        report.to_json(args.json)
        written.append(args.json)
    if args.html:
        render_doctor_html(report, args.html)
        written.append(args.html)
    try:
        print(report)
        for path in written:
            print(f"wrote {path}")
    except BrokenPipeError:       # the reader left (``| head``): the verdict still sets the exit status
        from impediments.cli import _quiet_closed_stdout

        _quiet_closed_stdout()
    return report.exit_code


def _run(command, args, body) -> int:
    from impediments.cli.spec import SpecError

    try:
        return body()
    except (SpecError, FileNotFoundError, IsADirectoryError, UnwatchableModel, UnwritableOutput, ImportError) as exc:
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
        from impediments.cli.spec import spec_setup, train_under_monitor

        thresholds = _thresholds(args)
        spec, model, X, y, batch = _prepare(args)
        _check_watchable(model)
        steps = args.steps or spec.get("STEPS") or DEFAULT_STEPS
        setup = spec_setup(spec, X, y, steps=int(steps), batch_size=batch)
        optimizer = setup.opt_fn(model.parameters())
        from impediments.cli.playground import start_live_dashboard, stop_on_interrupt

        live = None
        if args.live:                     # the URL is the first stdout line; waits for the page to open
            live = start_live_dashboard(args, f"impediments doctor {args.spec} (live)")
            if live is None:
                return EXIT_USAGE
        mon = stop_on_interrupt(live, lambda: _blamed(spec, lambda: _watch_errors(lambda: train_under_monitor(
            setup, seed=args.seed, model=model, optimizer=optimizer, live=live or False))))
        report = mon.report(thresholds)
        report.title = f"impediments doctor {args.spec} ({steps} steps)"
        if args.tensorboard:
            print(f"wrote {mon.to_tensorboard(args.tensorboard)} TensorBoard events to {args.tensorboard}")
        code = _finish(args, report)
        if live is not None:
            from impediments.cli.playground import serve_until_interrupt

            serve_until_interrupt(live)
        return code

    return _run("doctor", args, body)


def cmd_checkup(args) -> int:
    def body():
        from impediments.doctor.checkup import checkup

        thresholds = _thresholds(args)
        spec, model, X, y, batch = _prepare(args)
        _check_watchable(model)
        loss_fn = spec.get("loss_fn")
        report = _blamed(spec, lambda: _watch_errors(
            lambda: checkup(model, X[:batch], y[:batch], loss_fn, thresholds=thresholds)))
        report.title = f"impediments checkup {args.spec}"
        return _finish(args, report)

    return _run("checkup", args, body)
