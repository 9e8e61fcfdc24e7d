"""The ``impediments`` command line.

Exit codes: 0 success, 1 a failed check (claims, findings), 2 usage error.
"""
from __future__ import annotations

import argparse
import sys

from impediments import __version__
from impediments import experiments

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="impediments", description="Show, explain and fix why a network won't learn.")
    parser.add_argument("--version", action="version", version=f"impediments {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="list the module's experiments")
    rep = sub.add_parser("reproduce", help="run experiments and write figures, claims and a lab notebook")
    rep.add_argument("names", nargs="*", help="experiments to run (default: all)")
    rep.add_argument("--quick", action="store_true", help="small budgets (minutes, not tens of minutes)")
    rep.add_argument("--out", default="reproduce-out", help="output folder (default: reproduce-out)")
    rep.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    names = experiments.names()
    if not names:
        print("no experiments registered yet")
    for name in names:
        print(f"{name:24s} {experiments.get(name).DESCRIPTION}")
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
    from impediments.experiments.runner import OutputFolderError, reproduce

    try:
        passed = reproduce(names, quick=args.quick, out=args.out, seed=args.seed)
    except OutputFolderError as exc:
        print(f"impediments reproduce: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if passed else EXIT_FAIL


COMMANDS = {"list": cmd_list, "reproduce": cmd_reproduce}
# Subcommand modules: each defines ``register(subparsers) -> dict[name, handler]``.
PLUGINS = ("impediments.cli.doctor",)


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
    return handlers[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
