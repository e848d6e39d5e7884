"""Signing in without the server extension (VS Code, Colab, plain IPython): the kernel does it all.

Two ways the access code reaches the kernel (``design.md``, "Without a server extension"):

- **loopback** — the app's redirect URL is ``http://localhost:<port>…`` (``sca``, ``sdas``,
  ``connectrV3`` or an app registered that way) and browser and kernel share a machine:
  ``LoopbackReceiver`` listens on ``127.0.0.1:<port>`` for the one redirect;
- **paste** — the user signs in, lands on a page that may not even load, and pastes the
  address from the browser's address bar (or its query, or the bare code).

Either way::

    challenge, url = prepare_fallback_sign_in(app)        # probes S256, checks the secret
    # ... the user opens ``url`` and signs in ...
    creds = complete_from_callback(app, challenge, params_or_pasted_text, source="paste")

``methods.ListenerMethod`` and ``methods.PasteMethod`` string these steps together the way
the panel uses them (listening starts at the click, after the URL exists). The app comes from the kernel's
environment (``kernel_app_from_env``): ``SPECKLE_SERVER_URL``, ``SPECKLE_APP_ID``,
``SPECKLE_APP_SECRET`` and ``SPECKLE_REDIRECT_URL``.

An access code is burned by its first exchange attempt, so it is exchanged exactly once,
with the challenge of the sign-in that asked for it. Pasted text and access codes never
appear in a message, a log line or the loopback page.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import http.server
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx

from ._names import (
    ENV_APP_ID,
    ENV_APP_SECRET,
    ENV_REDIRECT_URL,
    env_text,
    server_url_setting,
)
from .credentials import Credentials, User
from .errors import (
    ConfigurationError,
    MissingScopeError,
    PortInUseError,
    SignInCancelledError,
    SignInDeniedError,
    SignInError,
    SignInTimeoutError,
    SpeckleError,
)
from .oauth import (
    App,
    AuthClient,
    CallbackParams,
    Challenge,
    Method,
    authorize_url,
    new_challenge,
    parse_callback_url,
)

if TYPE_CHECKING:
    from .graphql import SpeckleClient

__all__ = [
    "BUILTIN_REDIRECT_URLS",
    "LoopbackReceiver",
    "complete_from_callback",
    "is_loopback_redirect",
    "kernel_app_from_env",
    "parse_pasted",
    "port_in_use",
    "prepare_fallback_sign_in",
    "redirect_url_from_env",
]

log = logging.getLogger(__name__)

#: Speckle's built-in connector apps with a localhost redirect (``speckle-protocol.md`` §4.3).
#: Their secret equals their id, and their redirect URL is fixed in the server's code.
BUILTIN_REDIRECT_URLS: Mapping[str, str] = {
    "sca": "http://localhost:29363",
    "sdas": "http://localhost:29364",
    "connectrV3": "http://localhost:29355",
}

_LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
_BARE_CODE = re.compile(r"[0-9a-fA-F]{42}")


# --------------------------------------------------------------------------- configuration


def kernel_app_from_env(environ: Mapping[str, str] | None = None) -> App | None:
    """The app the kernel signs in with, from ``SPECKLE_APP_ID`` & co; ``None`` without an id.

    ``SPECKLE_SERVER_URL`` defaults to app.speckle.systems. For Speckle's built-in
    localhost apps the secret defaults to the id (the server defines it so). Raises
    ``ConfigurationError`` for a malformed server URL or app id.
    """
    env = os.environ if environ is None else environ
    app_id = env_text(ENV_APP_ID, env)
    if not app_id:
        return None
    server_url = server_url_setting(env)
    secret = env_text(ENV_APP_SECRET, env) or None
    if secret is None and app_id in BUILTIN_REDIRECT_URLS:
        secret = app_id
    try:
        return App(server_url, app_id, secret)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (read from SPECKLE_SERVER_URL / SPECKLE_APP_ID)") from None


def redirect_url_from_env(
    app_id: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The app's registered redirect URL: ``SPECKLE_REDIRECT_URL``, else a built-in app's.

    ``app_id`` defaults to ``SPECKLE_APP_ID``. ``None`` when neither says.
    """
    env = os.environ if environ is None else environ
    explicit = env_text(ENV_REDIRECT_URL, env)
    if explicit:
        return explicit
    app_id = app_id if app_id is not None else env_text(ENV_APP_ID, env)
    return BUILTIN_REDIRECT_URLS.get(app_id or "")


def is_loopback_redirect(url: str) -> bool:
    """True for ``http://localhost[:port]…`` and ``http://127.0.0.1[:port]…``.

    Only plain http: a browser reaches our listener without TLS. ``[::1]`` is not
    accepted because the listener binds 127.0.0.1 only.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and (parts.hostname or "") in _LOOPBACK_HOSTS


# --------------------------------------------------------------------------- the sign-in


def prepare_fallback_sign_in(
    app: App,
    *,
    method: Method | None = None,
    transport: httpx.BaseTransport | None = None,
) -> tuple[Challenge, str]:
    """A fresh challenge and the authorize URL to open for it.

    Without ``method`` the server is probed (``GET /oauth/token``): S256 where it has the
    newer endpoint, the plain challenge otherwise. The plain exchange needs the app secret,
    so its absence is reported *now*, before the user signs in and burns a code.
    """
    if method is None:
        with AuthClient(transport=transport) as auth:
            method = "S256" if auth.supports_s256(app.server_url) else "plain"
    if method == "plain" and not app.app_secret:
        raise ConfigurationError(
            f"The app secret for {app.app_id!r} on {app.server_url} is not set, and this "
            "server needs it to finish a sign-in. Set SPECKLE_APP_SECRET, or use a personal "
            "access token (`%speckle_token set`).",
            server_url=app.server_url,
        )
    challenge = new_challenge(method)
    return challenge, authorize_url(app, challenge)


def parse_pasted(text: str, *, redirect_url: str | None = None) -> CallbackParams:
    """What the user pasted: the landing URL, its query string, or the bare 42-hex code.

    Raises ``SignInError`` when there is neither a code nor a denial in it. The message
    says what to paste and never repeats the pasted text (it may hold a secret).
    """
    cleaned = text.strip().strip("\"'<>").strip()
    if _BARE_CODE.fullmatch(cleaned):
        return CallbackParams(access_code=cleaned)
    params = parse_callback_url(cleaned.split("#", 1)[0])
    if params.denied or params.access_code:
        return params
    landing = f"{redirect_url}?access_code=…" if redirect_url else "…?access_code=…"
    raise SignInError(
        "The pasted text has no `access_code=` in it. After you allow access, your browser "
        f"goes to an address like {landing} (the page itself may fail to load — that is "
        "fine): copy that whole address from the address bar and paste it. If too much time "
        "has passed, start the sign-in again."
    )


def complete_from_callback(
    app: App,
    challenge: Challenge,
    params: CallbackParams | str,
    *,
    source: Literal["paste", "loopback"],
    transport: httpx.BaseTransport | None = None,
    redirect_url: str | None = None,
) -> Credentials:
    """Exchange the callback's access code (once) and fetch who signed in.

    ``params`` is a parsed callback or the text the user pasted (see ``parse_pasted``).
    Raises ``SignInDeniedError`` when the user pressed Deny, ``SignInError`` when there is
    no code, ``TokenExchangeError`` with the server's words when the exchange is refused
    (a code used before, expired, a challenge from another sign-in…).
    """
    if isinstance(params, str):
        params = parse_pasted(params, redirect_url=redirect_url)
    if params.denied:
        raise SignInDeniedError(
            f"Access was denied on {app.server_url} (the Deny button), so nobody is signed "
            "in. Start the sign-in again and choose Authorize.",
            server_url=app.server_url,
        )
    if not params.access_code:
        raise SignInError(
            f"{app.server_url} sent the browser back without an access code. Start the "
            "sign-in again.",
            server_url=app.server_url,
        )
    from .graphql import SpeckleClient  # lazy: not needed to import this module

    with AuthClient(transport=transport) as auth:
        pair = auth.exchange(app, params.access_code, challenge)
        user: User | None
        try:
            with SpeckleClient(app.server_url, pair.token, transport=transport) as client:
                try:
                    user = client.active_user()
                except MissingScopeError:
                    user = None  # an app without profile:read: signed in, but nameless
                scopes = _app_scopes(client, app.app_id)
        except BaseException:
            # Nobody will hold this token: revoke it rather than leave it valid for a century.
            with contextlib.suppress(SpeckleError):
                auth.logout(app.server_url, pair.token, pair.refresh_token)
            raise
    return Credentials(
        server_url=app.server_url,
        token=pair.token,
        user=user,
        refresh_token=pair.refresh_token,
        scopes=scopes,
        source=source,
        app_id=app.app_id,
    )


_APP_SCOPES_QUERY = "query AppScopes($id: String!) { app(id: $id) { scopes { name } } }"


def _app_scopes(client: SpeckleClient, app_id: str) -> tuple[str, ...]:
    """The scopes an app token carries: all of its app's (Speckle has no per-request scopes).

    Best effort: ``()`` when the server does not say.
    """
    try:
        data = client.execute(_APP_SCOPES_QUERY, {"id": app_id})
    except SpeckleError as exc:
        log.debug("Could not read the scopes of app %s: %s", app_id, type(exc).__name__)
        return ()
    app = data.get("app")
    scopes = app.get("scopes") if isinstance(app, Mapping) else None
    if not isinstance(scopes, list):
        return ()
    return tuple(
        str(s["name"]) for s in scopes if isinstance(s, Mapping) and isinstance(s.get("name"), str)
    )


# --------------------------------------------------------------------------- the listener


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
        self._hosts = {f"{host}:{self.port}" for host in _LOOPBACK_HOSTS}
        if self.port == 80:
            self._hosts |= set(_LOOPBACK_HOSTS)
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
