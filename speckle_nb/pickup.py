"""The kernel's side of the server extension: a sign-in request and the pickup of its result.

    request = SignInRequest.new()                 # random id + a secret that never leaves here
    request.start_path()                          # what the panel opens (relative to base_url)
    with PickupClient(find_jupyter_server().url) as pickup:
        credentials = pickup.wait(request, timeout=600)

The browser's sign-in ends at the Jupyter server, which holds the result until the kernel that
made the request proves its pickup secret (the start URL carried only its SHA-256). The pickup
is a long poll over plain HTTP — no widget comm — so ``sign_in(wait=True)`` can block a running
cell. Only httpx here: no tornado, no Jupyter imports.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from . import errors
from ._names import INSTANCE_HEADER, KERNEL_KEY_ENV, KERNEL_KEY_HEADER, NOT_A_KERNEL, pickup_hash
from .credentials import Credentials, User, normalize_server_url
from .oauth import TokenPair

__all__ = ["KERNEL_KEY_ENV", "KERNEL_KEY_HEADER", "PickupClient", "SignInRequest"]

#: What a long poll asks the server to hold (the server caps it at ``c.SpeckleNB.pickup_hold``).
DEFAULT_HOLD = 30.0
#: Pauses between tries while the Jupyter server cannot be reached (it may be restarting).
RETRY_PAUSES = (0.5, 1.0, 2.0)
RESTARTED_MESSAGE = (
    "The Jupyter server restarted during the sign-in, so it expired. Click Try again "
    "(or run speckle_nb.sign_in() again)."
)


@dataclass(frozen=True)
class SignInRequest:
    """One sign-in, as the kernel knows it. ``pickup_secret`` never leaves the kernel."""

    request_id: str
    pickup_secret: str = field(repr=False)
    server_url: str | None = None

    @classmethod
    def new(cls, server_url: str | None = None) -> SignInRequest:
        """A fresh request (24-character id, 43-character secret) for ``server_url``
        (None: the extension's configured server)."""
        if server_url is not None:
            try:
                server_url = normalize_server_url(server_url)
            except ValueError as exc:
                raise errors.ConfigurationError(str(exc)) from None
        return cls(secrets.token_urlsafe(18), secrets.token_urlsafe(32), server_url)

    @property
    def pickup_hash(self) -> str:
        """SHA-256 of the pickup secret, lowercase hex: what the start URL carries."""
        return pickup_hash(self.pickup_secret)

    def start_path(self) -> str:
        """``speckle-nb/start?request=…&pickup=…[&server=…]``, relative to the base URL."""
        query = {"request": self.request_id, "pickup": self.pickup_hash}
        if self.server_url:
            query["server"] = self.server_url
        return "speckle-nb/start?" + urlencode(query)


class PickupClient:
    """Talks to the speckle-nb extension of the Jupyter server at ``jupyter_url``.

    ``jupyter_url`` includes the base URL (``http://127.0.0.1:8888/user/alice/``). Thread-safe:
    ``cancel`` may be called from another thread while ``wait`` blocks.
    """

    def __init__(
        self,
        jupyter_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_margin: float = 5.0,
        hold: float = DEFAULT_HOLD,
        kernel_key: str | None = None,
    ) -> None:
        """``kernel_key``: what proves this kernel was started by that server (default: the
        ``SPECKLE_NB_KERNEL_KEY`` this process inherited from it)."""
        key = os.environ.get(KERNEL_KEY_ENV, "") if kernel_key is None else kernel_key
        self.jupyter_url = jupyter_url if jupyter_url.endswith("/") else jupyter_url + "/"
        self.timeout_margin = timeout_margin
        self.hold = hold
        # The server process each request was first answered by: a sign-in lives in that
        # process's memory only, so another one answering means it is gone.
        self._instances: dict[str, str] = {}
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.jupyter_url,
            transport=transport,
            timeout=httpx.Timeout(10.0),
            follow_redirects=False,
            # The server is our parent on this machine (or the hub's internal network):
            # never route that through an HTTP proxy from the environment, and do not ask
            # a loopback https server for a certificate nobody could have issued.
            trust_env=False,
            verify=_verify(self.jupyter_url),
            headers={KERNEL_KEY_HEADER: key} if key else None,
        )

    def __repr__(self) -> str:
        return f"PickupClient({self.jupyter_url!r})"

    # ------------------------------------------------------------------ the routes

    def poll(self, request: SignInRequest, *, hold: float = DEFAULT_HOLD) -> Credentials | None:
        """One long poll: the credentials, or None while the sign-in is still pending.

        Raises the ``SignInError`` for the reason the server reports (denied, expired,
        superseded, cancelled, failed), exactly once: the server then forgets the result.
        A failure that only an administrator can fix (a wrong app secret, a redirect URL
        that does not match the app's) and a refusal of this kernel (it lacks the server's
        kernel key) raise ``ConfigurationError``: trying again would fail the same way.
        """
        hold = max(0.0, hold)
        reply = self._post(
            "pickup",
            {
                "request": request.request_id,
                "secret": request.pickup_secret,
                "hold": hold,
                "action": "wait",
            },
            timeout=hold + self.timeout_margin,
        )
        self._check_instance(request, reply)
        body = self._json(reply)
        status = body.get("status")
        if status == "pending":
            return None
        self._forget(request)
        if status == "ok" and isinstance(body.get("credentials"), dict):
            return _credentials(body["credentials"])
        raise self._error(body, request.server_url)

    def wait(
        self,
        request: SignInRequest,
        *,
        timeout: float,
        cancelled: threading.Event | None = None,
    ) -> Credentials:
        """Poll until the sign-in ends. ``SignInTimeoutError`` after ``timeout`` seconds;
        ``SignInCancelledError`` once ``cancelled`` is set (checked between polls: call
        ``cancel(request)`` too, so the server ends the flow and a held poll returns).
        An unreachable server is tried again (0.5–2 s apart) until the deadline, then its
        ``TransportError`` is raised; a server that restarted meanwhile (another instance id
        answers) ends the wait with ``SignInExpiredError``."""
        deadline = time.monotonic() + timeout
        unreachable: errors.TransportError | None = None
        failures = 0
        answered = False
        while True:
            if cancelled is not None and cancelled.is_set():
                self._cancel_quietly(request)
                raise errors.SignInCancelledError(
                    "The sign-in was cancelled. Run `speckle_nb.sign_in()` to start again.",
                    server_url=request.server_url,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel_quietly(request)
                if unreachable is not None:  # the server never came back: say so
                    raise unreachable
                raise errors.SignInTimeoutError(
                    f"Nobody finished signing in within {timeout:g} s. Run "
                    "`speckle_nb.sign_in()` again and finish in the window that opens.",
                    server_url=request.server_url,
                )
            # Until a reply names the server process that holds this request, ask for an
            # answer at once: a long poll cut by a restart would name none, and the restarted
            # server would then look like the one that holds it ("pending" until the timeout).
            known = answered or self._known(request)
            hold = min(self.hold, remaining) if known else 0.0
            began = time.monotonic()
            try:
                credentials = self.poll(request, hold=hold)
            except errors.TransportError as exc:
                # A restarting Jupyter server cannot be reached for a moment: try again until
                # the deadline; the instance id then says whether the sign-in survived.
                unreachable = exc
                pause = RETRY_PAUSES[min(failures, len(RETRY_PAUSES) - 1)]
                failures += 1
                self._pause(min(pause, max(0.0, deadline - time.monotonic())), cancelled)
                continue
            unreachable, failures, answered = None, 0, True
            if credentials is not None:
                return credentials
            if hold > 0 and time.monotonic() - began < 0.5:  # answered at once: do not spin
                self._pause(min(1.0, max(0.0, deadline - time.monotonic())), cancelled)

    def cancel(self, request: SignInRequest) -> None:
        """End the request's flow at the server (its browser window then says so)."""
        reply = self._post(
            "pickup",
            {"request": request.request_id, "secret": request.pickup_secret, "action": "cancel"},
            timeout=10.0,
        )
        body = self._json(reply)
        if body.get("status") == "error" and body.get("reason") == "cancelled":
            return
        raise self._error(body, request.server_url)

    def refresh(self, server_url: str, refresh_token: str) -> TokenPair:
        """A new token pair from the server extension, which holds the app secret."""
        reply = self._post(
            "refresh", {"server_url": server_url, "refresh_token": refresh_token}, timeout=30.0
        )
        body = self._json(reply)
        if body.get("status") == "ok" and isinstance(body.get("token"), str):
            refresh = body.get("refresh_token")
            return TokenPair(body["token"], refresh if isinstance(refresh, str) else None)
        message = str(body.get("message") or f"HTTP {reply.status_code}")
        reason = body.get("reason")
        if reason == "unreachable":
            raise errors.TransportError(message, server_url=server_url)
        if reason in ("not-configured", "server-not-allowed", "misconfigured", NOT_A_KERNEL):
            raise errors.ConfigurationError(message, server_url=server_url)
        raise errors.TokenExchangeError(
            message,
            server_url=server_url,
            status_code=reply.status_code,
            server_message=body.get("server_message"),
        )

    def ping(self) -> bool:
        """Does the speckle-nb extension answer at ``jupyter_url``? (``{"action": "ping"}``
        gets ``{"status": "ready"}`` from it; a server without it answers 404.)"""
        return self.ping_info() is not None

    def ping_info(self) -> dict[str, Any] | None:
        """The extension's answer to a ping (``status``, ``version``, ``app_configured``), or
        None when no speckle-nb extension answers, or one that does not take this kernel for
        one of its own."""
        try:
            reply = self._http.post("speckle-nb/pickup", json={"action": "ping"}, timeout=5.0)
        except httpx.HTTPError:
            return None
        if reply.status_code != 200 or "x-speckle-nb" not in reply.headers:
            return None
        try:
            body = reply.json()
        except ValueError:
            return None
        # "kernel": false means the server does not take this kernel for one of its own (it
        # lacks the server's kernel key), so its pickup would be refused: sign in otherwise.
        ready = (
            isinstance(body, dict)
            and body.get("status") == "ready"
            and body.get("kernel") is not False
        )
        return body if ready else None

    # ------------------------------------------------------------------ plumbing

    def _post(self, route: str, body: dict[str, Any], *, timeout: float) -> httpx.Response:
        try:
            return self._http.post(f"speckle-nb/{route}", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            kind = (
                "did not answer in time"
                if isinstance(exc, httpx.TimeoutException)
                else ("could not be reached")
            )
            raise errors.TransportError(
                f"The Jupyter server at {self.jupyter_url} {kind} ({type(exc).__name__}). Is it "
                "still running? Then run `speckle_nb.sign_in()` again."
            ) from None

    def _json(self, reply: httpx.Response) -> dict[str, Any]:
        if reply.status_code == 404:
            raise errors.ConfigurationError(
                f"The Jupyter server at {self.jupyter_url} has no speckle-nb extension. Enable "
                "it with `jupyter server extension enable speckle_nb` and restart Jupyter, or "
                "sign in with a personal access token (`%speckle_token`)."
            )
        try:
            body = reply.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or reply.status_code >= 500:
            raise errors.ServerError(
                f"The Jupyter server at {self.jupyter_url} answered HTTP {reply.status_code} "
                "instead of a sign-in result. Its log says why.",
                status_code=reply.status_code,
            )
        return body

    @staticmethod
    def _error(
        body: dict[str, Any], server_url: str | None
    ) -> errors.SignInError | errors.ConfigurationError:
        reason = str(body.get("reason") or "failed")
        message = str(
            body.get("message") or "The sign-in failed. Run `speckle_nb.sign_in()` again."
        )
        if reason in ("misconfigured", NOT_A_KERNEL):
            # Trying again fails the same way until a setting changes: the message says which.
            return errors.ConfigurationError(message, server_url=server_url)
        return errors.sign_in_error(reason, message, server_url=server_url)

    @staticmethod
    def _pause(seconds: float, cancelled: threading.Event | None) -> None:
        if cancelled is not None:
            cancelled.wait(seconds)
        else:
            time.sleep(seconds)

    def _known(self, request: SignInRequest) -> bool:
        with self._lock:
            return request.request_id in self._instances

    def _forget(self, request: SignInRequest) -> None:
        with self._lock:
            self._instances.pop(request.request_id, None)

    def _check_instance(self, request: SignInRequest, reply: httpx.Response) -> None:
        """Remember which server process first answered for ``request``; another one
        answering means the Jupyter server restarted and forgot it: ``SignInExpiredError``."""
        instance = reply.headers.get(INSTANCE_HEADER)
        if not instance:
            return
        with self._lock:
            first = self._instances.setdefault(request.request_id, instance)
            if first == instance:
                return
            del self._instances[request.request_id]
        raise errors.SignInExpiredError(RESTARTED_MESSAGE, server_url=request.server_url)

    def _cancel_quietly(self, request: SignInRequest) -> None:
        self._forget(request)
        with contextlib.suppress(errors.SpeckleError):  # over for this kernel either way
            self.cancel(request)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PickupClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _credentials(data: dict[str, Any]) -> Credentials:
    if not isinstance(data.get("server_url"), str) or not isinstance(data.get("token"), str):
        raise errors.ServerError(
            "The Jupyter server's sign-in result has no server URL or token. Run "
            "`speckle_nb.sign_in()` again.",
            status_code=200,
        )
    user = data.get("user")
    scopes = data.get("scopes") or []
    refresh = data.get("refresh_token")
    app_id = data.get("app_id")
    return Credentials(
        server_url=str(data["server_url"]),
        token=str(data["token"]),
        user=User.from_graphql(user) if isinstance(user, dict) else None,
        refresh_token=refresh if isinstance(refresh, str) else None,
        scopes=tuple(str(s) for s in scopes),
        source="sign-in",
        app_id=app_id if isinstance(app_id, str) else None,
    )


def _verify(url: str) -> bool:
    """Whether to verify the server's certificate. Plain ``http`` involves no TLS, and
    ``verify=False`` spares loading the certificate bundle (tens of milliseconds) for nothing;
    a loopback ``https`` server has no certificate anybody could have issued."""
    if urlsplit(url).scheme == "http":
        return False
    return not _is_loopback_https(url)


def _is_loopback_https(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "https":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
