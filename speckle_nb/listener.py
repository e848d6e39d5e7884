"""The one-shot loopback listener: the kernel receives Speckle's redirect on 127.0.0.1:<port>.

``LoopbackReceiver`` serves the redirect URL of an app registered with
``http://localhost:<port>…`` (``fallback.py`` says when that applies) for exactly one sign-in,
answers it with a short page that holds no secret and takes the access code out of the
address bar, and hands the callback to ``wait()``. ``port_in_use`` tells beforehand whether
another program (a Speckle connector) already listens there.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import http.server
import os
import socket
import threading
import time
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .errors import (
    ConfigurationError,
    PortInUseError,
    SignInCancelledError,
    SignInError,
    SignInTimeoutError,
)
from .fallback import BUILTIN_REDIRECT_URLS, LOOPBACK_HOSTS, is_loopback_redirect
from .oauth import CallbackParams, parse_callback_url

__all__ = ["LoopbackReceiver", "port_in_use"]


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>{title}</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32em;margin:4em auto;"
        "padding:0 1em;color:#222}h1{font-size:1.4em}</style>"
        f"<h1>{title}</h1><p>{body}</p>"
        f"<script>{_SCRUB_SCRIPT}</script></html>"
    ).encode()


# Takes the access code out of the address bar and the history entry.
_SCRUB_SCRIPT = "history.replaceState(null,'',location.pathname)"
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRUB_SCRIPT.encode()).digest()).decode()

_SIGNED_IN_PAGE = _page(
    "Signed in — return to your notebook",
    "Speckle sent your sign-in to the notebook, which finishes it now. You can close this tab.",
)
_DENIED_PAGE = _page(
    "Sign-in cancelled — return to your notebook",
    "You chose not to allow access, so nobody was signed in. You can close this tab and "
    "start the sign-in again from the notebook.",
)
_WAITING_PAGE = _page(
    "Waiting for Speckle",
    "This address receives the Speckle sign-in for a notebook. It carries no sign-in yet: "
    "start the sign-in from the notebook.",
)
_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
        "frame-ancestors 'none'"
    ),
}


class _Server(http.server.ThreadingHTTPServer):
    # SO_REUSEADDR lets a second socket bind a busy port on Windows: never there; on POSIX
    # it only lets us rebind a port that a previous listener left in TIME_WAIT.
    allow_reuse_address = os.name != "nt"
    daemon_threads = True
    block_on_close = False  # an idle pre-connect must not hold up close()
    receiver: LoopbackReceiver

    def server_bind(self) -> None:
        if os.name == "nt":  # pragma: no cover - Windows only
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined]
        super().server_bind()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # seconds a connection may idle (browsers pre-connect and send nothing)
    server_version = "speckle-nb"
    sys_version = ""

    def do_GET(self) -> None:
        self.server.receiver._handle(self)

    def do_HEAD(self) -> None:
        self._reply(405, _WAITING_PAGE, head=True)

    def _reply(self, status: int, page: bytes, *, head: bool = False) -> None:
        self.close_connection = True
        self.send_response(status)
        for name, value in _HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default writes the request line, access code included, to stderr."""


class LoopbackReceiver:
    """Listens on ``127.0.0.1:<port>`` of ``redirect_url`` for **one** Speckle redirect.

    Binds at construction (a busy port raises ``SignInError`` at once) and serves from a
    background thread. Requests for other paths, from another Host, or carrying neither
    ``access_code`` nor ``denied`` are answered and ignored; the first matching one gets a
    short page (no secret in it), is kept for ``wait()``, and the listener closes.
    ``close()`` from another thread cancels a ``wait()``. Use it as a context manager.
    """

    _POLL: ClassVar[float] = 0.05

    def __init__(self, redirect_url: str, *, timeout: float = 300) -> None:
        if not is_loopback_redirect(redirect_url):
            raise ConfigurationError(
                f"{redirect_url} is not a loopback redirect URL (http://localhost:<port>/…); "
                "the kernel cannot receive it. Paste the address your browser lands on instead."
            )
        parts = urlsplit(redirect_url.strip())
        self.redirect_url = redirect_url.strip()
        self.port: int = parts.port or 80
        self.timeout = timeout
        self._path = parts.path.rstrip("/") or "/"
        self._hosts = {f"{host}:{self.port}" for host in LOOPBACK_HOSTS}
        if self.port == 80:
            self._hosts |= set(LOOPBACK_HOSTS)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: CallbackParams | None = None
        self._closed = False
        if port_in_use(self.port):
            raise self._bind_error(OSError(errno.EADDRINUSE, "in use"))
        try:
            self._server = _Server(("127.0.0.1", self.port), _Handler)
        except OSError as exc:
            raise self._bind_error(exc) from None
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self._POLL},
            name=f"speckle-nb loopback :{self.port}",
            daemon=True,
        )
        self._thread.start()

    def _bind_error(self, exc: OSError) -> SignInError:
        if exc.errno in (errno.EADDRINUSE, 10048) or (os.name == "nt" and exc.errno == 10013):
            who = (
                "is a Speckle connector running? Close it (or the other notebook signing in) "
                "and try again"
                if self.port in _BUILTIN_PORTS
                else "another program is listening there; stop it and try again"
            )
            return PortInUseError(
                f"port {self.port} is in use — {who}, or sign in by pasting the address your "
                "browser lands on instead."
            )
        if isinstance(exc, PermissionError):
            return SignInError(
                f"Listening on port {self.port} needs privileges this kernel lacks. Register "
                "a redirect URL with a port above 1024, or paste the address instead."
            )
        return SignInError(
            f"Cannot listen on 127.0.0.1:{self.port} ({exc.strerror or type(exc).__name__}). "
            "Sign in by pasting the address your browser lands on instead."
        )

    @property
    def url(self) -> str:
        """Where the listener is, for messages (not the redirect URL, which may differ)."""
        return f"http://127.0.0.1:{self.port}{self._path}"

    def wait(self, timeout: float | None = None) -> CallbackParams:
        """Block until the redirect arrives (then close), the timeout passes, or ``close()``.

        Raises ``SignInTimeoutError`` or ``SignInCancelledError``. Interruptible: it wakes
        every few hundredths of a second, so Ctrl-C / "interrupt kernel" work.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        try:
            while not self._done.wait(min(0.25, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    raise SignInTimeoutError(
                        f"No sign-in reached {self.redirect_url} within {_duration(limit)}. "
                        "Start the sign-in again; if your browser runs on another machine "
                        "than the kernel (JupyterHub, Colab, a remote kernel), paste the "
                        "address it lands on instead."
                    )
        finally:
            self.close()
        if self._result is None:
            raise SignInCancelledError("The sign-in was cancelled before Speckle answered.")
        return self._result

    def close(self) -> None:
        """Stop listening (idempotent). A pending ``wait()`` raises ``SignInCancelledError``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._done.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> LoopbackReceiver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listening"
        return f"LoopbackReceiver({self.url!r}, {state})"

    # Runs on a server thread, once per request.
    def _handle(self, request: _Handler) -> None:
        parts = urlsplit(request.path)
        host = (request.headers.get("Host") or "").lower()
        if (parts.path.rstrip("/") or "/") != self._path or host not in self._hosts:
            # Another path (favicon), or a page elsewhere aiming the browser here.
            request._reply(404, _WAITING_PAGE)
            return
        params = parse_callback_url(parts.query)
        if not params.denied and not params.access_code:
            request._reply(400, _WAITING_PAGE)
            return
        with self._lock:
            first = self._result is None and not self._closed
            if first:
                self._result = params
        if not first:
            request._reply(410, _WAITING_PAGE)
            return
        request._reply(200, _DENIED_PAGE if params.denied else _SIGNED_IN_PAGE)
        self._done.set()


def port_in_use(port: int) -> bool:
    """Whether a program already accepts connections on loopback ``port`` (IPv4 or IPv6).

    Binding alone does not tell: on macOS, SO_REUSEADDR lets 127.0.0.1:port bind beside a
    connector listening on *:port, and a browser may try ``localhost`` as ::1 first.
    """
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex((host, port)) == 0:
                    return True
        except OSError:  # no IPv6 on this machine
            continue
    return False


_BUILTIN_PORTS = frozenset(urlsplit(url).port for url in BUILTIN_REDIRECT_URLS.values())


def _duration(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"
