"""The ``impediments`` command line.

Exit codes: 0 success, 1 a failed check (claims, findings), 2 usage error, 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import shlex
import sys

from impediments import __version__
from impediments import experiments

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="impediments", description="Show, explain and fix why a network won't learn.")
    parser.add_argument("--version", action="version", version=f"impediments {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="list the module's experiments")
    rep = sub.add_parser("reproduce", help="run experiments and write figures, claims and a lab notebook")
    rep.add_argument("names", nargs="*", help="experiments to run (default: all)")
    rep.add_argument("--quick", action="store_true", help="small budgets (minutes, not tens of minutes)")
    rep.add_argument("--out", default="reproduce-out", help="output folder (default: reproduce-out)")
    rep.add_argument("--seed", type=int, default=0,
                     help="first seed of the default seeds (default: 0; quick runs 3 seeds, full 8)")
    rep.add_argument("--seeds", default=None, help="seeds to run instead, e.g. 0-9 or 3,4,7")
    rep.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    names = experiments.names()
    if not names:
        print("no experiments registered yet")
    for name in names:
        print(f"{name:24s} {experiments.description(name)}")
    return EXIT_OK


def cmd_reproduce(args: argparse.Namespace) -> int:
    unknown = [n for n in args.names if n not in experiments.REGISTRY]
    if unknown:
        print(f"impediments reproduce: unknown experiment(s) {', '.join(unknown)}; valid: "
              f"{', '.join(experiments.names()) or '(none registered yet)'}", file=sys.stderr)
        return EXIT_USAGE
    names = args.names or experiments.names()
    if not names:
        print("no experiments registered yet; nothing to reproduce")
        return EXIT_OK
    from impediments.experiments.runner import OutputFolderError, parse_seeds, reproduce

    try:
        seeds = parse_seeds(args.seeds, quick=args.quick, start=args.seed)
        jobs = parse_jobs(args.jobs)
    except ValueError as exc:
        print(f"impediments reproduce: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        from impediments.playground.links import experiment_links

        passed = reproduce(names, quick=args.quick, out=args.out, seeds=seeds, jobs=jobs, links=experiment_links)
    except OutputFolderError as exc:
        print(f"impediments reproduce: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if passed else EXIT_FAIL


def parse_jobs(jobs: int | None) -> int:
    """``--jobs``: default one worker per core; must be >= 1."""
    import os

    if jobs is None:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    return jobs


COMMANDS = {"list": cmd_list, "reproduce": cmd_reproduce}
# Subcommand modules: each defines ``register(subparsers) -> dict[name, handler]``.
PLUGINS = ("impediments.cli.doctor", "impediments.cli.fix", "impediments.cli.playground")


def _register_plugins(parser: argparse.ArgumentParser) -> dict:
    import importlib

    sub = next(a for a in parser._subparsers._group_actions if isinstance(a, argparse._SubParsersAction))
    handlers = dict(COMMANDS)
    for path in PLUGINS:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name != path:
                raise
            continue
        handlers.update(module.register(sub))
    return handlers


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    handlers = _register_plugins(parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        _quiet_closed_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        print(interrupted_line(args.command, sys.argv[1:] if argv is None else argv), file=sys.stderr)
        return EXIT_INTERRUPTED


def interrupted_line(command: str, argv: list[str]) -> str:
    """The one line printed on Ctrl-C: what stopped and the command that picks up from there.

    ``reproduce`` resumes (every finished (experiment, seed) pair is cached); other commands start again.
    """
    again = "resume with" if command == "reproduce" else "run it again with"
    return f"impediments {command}: interrupted; {again}: impediments {shlex.join(argv)}"


def _quiet_closed_stdout() -> None:
    """The reader of our stdout left (``impediments list | head``): not an error. Point stdout at
    devnull so that the interpreter's final flush does not raise again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to flush
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
