"""``impediments playground [--port N] [--host H] [--no-browser]``: the module's experiments live in the browser.

The first stdout line starting with ``http://`` is the page's URL (``--port 0`` picks a free
port). Ctrl-C stops the server and the training thread and exits 0.
"""
from __future__ import annotations

import argparse
import sys
import threading

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
DEFAULT_PORT = 8765


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
    return value


def add_server_options(p: argparse.ArgumentParser, default_port: int) -> None:
    """``--port``, ``--host`` and ``--no-browser`` (shared with ``doctor --live``)."""
    p.add_argument("--port", type=_port, default=default_port,
                   help=f"port to serve on (default {default_port}; 0 picks a free one)")
    p.add_argument("--host", default=None,
                   help="address to bind instead of 127.0.0.1 (exposes the page to that network: a warning is "
                        "printed)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the URL")


def register(subparsers) -> dict:
    p = subparsers.add_parser("playground", help="open the interactive playground (real PyTorch, live doctor)")
    add_server_options(p, DEFAULT_PORT)
    return {"playground": cmd_playground}


def bind_host(args, command: str) -> str:
    """The address to bind; warns on stderr when ``--host`` leaves the loopback interface."""
    from impediments.playground.server import is_loopback

    host = args.host or "127.0.0.1"
    if not is_loopback(host):
        print(f"impediments {command}: warning: serving on {host}: anyone who can reach it can drive this "
              "page and use this machine's CPU", file=sys.stderr)
    return host


def announce(server, args) -> None:
    """Print the URL (first stdout line) and open a browser unless ``--no-browser``."""
    print(server.url, flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(server.url)


def wait_for_interrupt(stop: threading.Event | None = None) -> None:
    """Block until Ctrl-C (or ``stop`` is set)."""
    stop = stop or threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def cmd_playground(args) -> int:
    from impediments.playground import serve_playground

    host = bind_host(args, "playground")
    try:
        server = serve_playground(host=host, port=args.port, allow_public=args.host is not None)
    except OSError as exc:
        print(f"impediments playground: error: cannot serve on {host}:{args.port}: {exc.strerror or exc}; "
              "choose another --port (0 picks a free one)", file=sys.stderr)
        return EXIT_USAGE
    announce(server, args)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        wait_for_interrupt()
    finally:
        server.close()
    print("stopped", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------- impediments doctor --live
LIVE_DEFAULT_PORT = 8766


def add_live_options(p: argparse.ArgumentParser) -> None:
    """``--live`` and its server options, for ``impediments doctor``."""
    p.add_argument("--live", action="store_true",
                   help="show the monitor's statistics and the findings live in the browser while it trains "
                        "(waits for the page, then keeps serving until Ctrl-C)")
    add_server_options(p, LIVE_DEFAULT_PORT)


def start_live_dashboard(args, title: str):
    """Serve the live doctor page, print its URL, open it (unless ``--no-browser``) and wait until a page
    is connected, so the page sees the whole run. Returns the server, or ``None`` after printing a usage
    error (port in use, a refused bind).

    Raises:
        SystemExit: 130 on Ctrl-C while waiting (the server is closed first).
    """
    from impediments.playground.live import start_live_server
    from impediments.playground.server import PublicBindRefused

    host = bind_host(args, "doctor")
    try:
        server = start_live_server(host=host, port=args.port, allow_public=args.host is not None, title=title,
                                   announce=False)
    except (OSError, PublicBindRefused) as exc:
        print(f"impediments doctor: error: cannot serve on {host}:{args.port}: {getattr(exc, 'strerror', None) or exc}"
              "; choose another --port (0 picks a free one)", file=sys.stderr)
        return None
    announce(server, args)
    print("waiting for the page to open (Ctrl-C to stop)", file=sys.stderr, flush=True)

    def wait_for_page():
        while server.broadcaster.subscribers == 0:
            threading.Event().wait(0.1)

    stop_on_interrupt(server, wait_for_page)
    return server


def stop_on_interrupt(server, fn):
    """``fn()``; with a live ``server``, Ctrl-C closes it and exits 130 with one line instead of a traceback."""
    if server is None:
        return fn()
    try:
        return fn()
    except KeyboardInterrupt:
        server.close()
        print("impediments doctor: interrupted; the live page is closed", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


def serve_until_interrupt(server) -> None:
    """Keep the finished run on the page until Ctrl-C, then stop the server."""
    try:                     # (the line is printed inside: a Ctrl-C right after reading it is the expected stop)
        print("training done; the page stays up until Ctrl-C", file=sys.stderr, flush=True)
        wait_for_interrupt()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
