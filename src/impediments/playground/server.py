"""The local web server of the playground and the live doctor: ``http.server`` threads, SSE, JSON POSTs.

Security (a local tool that runs code on the user's machine):

- binds 127.0.0.1 by default; any other address is refused unless explicitly allowed (the CLI's
  ``--host``, which also prints a warning);
- every request's ``Host`` must name this server's local address, and a present ``Origin`` must be
  this server's own origin (DNS rebinding, cross-site requests); POSTs need both, and a JSON body
  of at most :data:`MAX_BODY` bytes;
- the page can only pick offered settings (:func:`~impediments.playground.config.validate`) and
  known diagnosis codes; no path, code or free number reaches Python;
- streams are bounded per page (:mod:`~impediments.playground.stream`), stalled sockets time out;
- :meth:`DashboardServer.close` stops everything (the CLI calls it on Ctrl-C).
"""
from __future__ import annotations

import ipaddress
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from impediments.doctor.codes import CODES
from impediments.fix.remedies.registry import REMEDIES as FIX_REMEDIES
from impediments.playground.config import ConfigError, choices_document, validate
from impediments.playground.lessons import LESSONS, notebooks_folder
from impediments.playground.stream import Broadcaster

MAX_BODY = 16 * 1024
#: a page that cannot take a message for this long is dropped
WRITE_TIMEOUT_S = 20.0
KEEPALIVE_S = 5.0
REQUEST_TIMEOUT_S = 30.0
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                      "form-action 'none'; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class PublicBindRefused(ValueError):
    """Binding a non-loopback address without explicit permission."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return resources.files("impediments.playground").joinpath("static", name).read_bytes()


class DashboardServer(ThreadingHTTPServer):
    """Serves the page, ``/events`` (SSE) and, in playground mode, the control POSTs.

    Args:
        mode: ``"playground"`` (controls and a :class:`~impediments.playground.session.Session`)
            or ``"live"`` (the live doctor: read-only, fed by a monitor).
        host: the address to bind (default loopback).
        port: 0 picks a free port.
        allow_public: permit a non-loopback ``host``.
        title: shown by the page.

    Raises:
        PublicBindRefused: for a non-loopback ``host`` without ``allow_public``.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str, *, host: str = "127.0.0.1", port: int = 0, allow_public: bool = False,
                 title: str = "impediments", session=None, broadcaster: Broadcaster | None = None) -> None:
        if not is_loopback(host) and not allow_public:
            raise PublicBindRefused(f"refusing to bind {host!r}: only 127.0.0.1 is allowed unless --host is given")
        self.mode, self.title, self.session = mode, title, session
        self.broadcaster = broadcaster or (session.broadcaster if session is not None else Broadcaster())
        self.pages = {path: (_static(name), ctype) for path, (name, ctype) in STATIC.items()}
        self.stopping = threading.Event()
        super().__init__((host, port), Handler)
        self.port = self.server_address[1]
        names = LOOPBACK_NAMES + (() if is_loopback(host) else (host,))
        self.allowed_hosts = {f"{n}:{self.port}" for n in names}
        self.allowed_origins = {f"http://{h}" for h in self.allowed_hosts}
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://{host if not is_loopback(host) else '127.0.0.1'}:{self.port}/"

    def start(self) -> "DashboardServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="impediments-dashboard", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end every stream and the session's training thread (idempotent)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.broadcaster.close()
        if self._thread is not None:
            self.shutdown()
        self.server_close()
        if self.session is not None:
            self.session.close()


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "impediments"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S     # a connection that sends no request does not hold its thread forever

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: the terminal shows the URL only
        pass

    # ------------------------------------------------------------------ checks and replies
    def _allowed(self, post: bool) -> bool:
        host, origin = self.headers.get("Host"), self.headers.get("Origin")
        if host not in self.server.allowed_hosts:
            self._reply(HTTPStatus.FORBIDDEN, {"error": f"Host {host!r} is not this local server"})
            return False
        if (origin is not None or post) and origin not in self.server.allowed_origins:
            self._reply(HTTPStatus.FORBIDDEN, {"error": f"Origin {origin!r} is not this local server"})
            return False
        return True

    def _reply(self, status: HTTPStatus, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # ------------------------------------------------------------------ GET
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._allowed(post=False):
            return
        path = self.path.split("?", 1)[0]
        if path in self.server.pages:
            self._reply(HTTPStatus.OK, *self.server.pages[path])
        elif path == "/api/info":
            b = self.server.broadcaster
            info = {"mode": self.server.mode, "title": self.server.title,
                    "stream": {"subscribers": b.subscribers, "queued": b.queued(), "capacity": b.capacity}}
            if self.server.mode == "playground":
                info.update(choices_document(), lessons=[lesson.to_dict() for lesson in LESSONS])
            self._reply(HTTPStatus.OK, info)
        elif path.startswith("/notebooks/") and self.server.mode == "playground":
            self._notebook(path.removeprefix("/notebooks/"))
        elif path == "/events":
            self._stream()
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such page {path!r}"})

    def _notebook(self, name: str) -> None:
        """A lesson's notebook source (jupytext percent, plain text), from a source checkout's notebooks/; only
        the files the lessons name are served."""
        folder = notebooks_folder()
        if name not in {lesson.notebook for lesson in LESSONS}:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no lesson notebook {name!r}"})
        elif folder is None:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"notebooks/{name} is in the source repository (not installed)"
                                                        "; open it there with jupyter lab"})
        else:
            self._reply(HTTPStatus.OK, (folder / name).read_bytes(), "text/plain; charset=utf-8")

    def _stream(self) -> None:
        sub = self.server.broadcaster.subscribe()
        if sub is None:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too many open pages"})
            return
        try:
            self.connection.settimeout(WRITE_TIMEOUT_S)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            for k, v in HEADERS.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            while not self.server.stopping.is_set() and not sub.closed:
                message = sub.get(timeout=KEEPALIVE_S)
                self.wfile.write(message if message is not None else b": keepalive\n\n")
                self.wfile.flush()
        except OSError:
            pass                                # the page went away (closed, reloaded, or stalled)
        finally:
            self.server.broadcaster.unsubscribe(sub)
            self.close_connection = True

    # ------------------------------------------------------------------ POST
    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed(post=True):
            return
        session = self.server.session
        if session is None:
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "the live doctor page is read-only"})
            return
        try:
            body = self._body()
            command, args = self._command(self.path, body)
            session.submit(command, *args)
        except _BadRequest as exc:
            self._reply(exc.status, {"error": str(exc)})
            return
        except (ConfigError, ValueError) as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        except RuntimeError as exc:             # Busy
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        self._reply(HTTPStatus.ACCEPTED, {"ok": command})

    def _body(self) -> dict:
        if self.headers.get_content_type() != "application/json":
            raise _BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length required") from None
        if not 0 <= length <= MAX_BODY:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        if not isinstance(body, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return body

    @staticmethod
    def _command(path: str, body: dict) -> tuple[str, tuple]:
        if path in ("/api/train", "/api/step", "/api/reset"):
            return path.rsplit("/", 1)[1], (validate(body.get("config", {})),)
        if path == "/api/pause":
            return "pause", ()
        if path == "/api/remedy":
            code, remedy = body.get("code"), body.get("remedy")
            if not isinstance(code, str) or code not in CODES:
                raise ValueError(f"unknown diagnosis code {code!r}; valid: {', '.join(CODES)}")
            if remedy is not None and (not isinstance(remedy, str) or remedy not in FIX_REMEDIES):
                raise ValueError(f"unknown remedy {remedy!r}; valid: {', '.join(FIX_REMEDIES)}")
            return "remedy", (code, remedy)
        raise _BadRequest(HTTPStatus.NOT_FOUND, f"no such action {path!r}")


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
