"""What the routes do, without tornado: start, the callback's named checks, pickup, refresh.

The handlers in ``handlers.py`` only turn requests into the plain values below and answers
back into HTTP. Every refusal is a ``Refusal`` carrying a short reason word (for the
notebook's ``BroadcastChannel``), a page text that names the cause and the next step, and the
details for the server log — never a code, token, secret or query string.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..credentials import Credentials, User, normalize_server_url
from ..errors import (
    ConfigurationError,
    SpeckleError,
    TokenExchangeError,
    TransportError,
)
from ..oauth import App, AsyncAuthClient, Method, TokenPair, authorize_url, new_challenge
from .flows import MAX_FLOW_LIFETIME, Flow, FlowStore, Outcome, PickupForbidden, StartRefused
from .pages import Page, render_page, signed_in_page
from .redirect import HubEnv, RedirectURL, derive_redirect_url, named_server_problem

__all__ = [
    "BrowserRequest",
    "Refusal",
    "Settings",
    "SignInService",
    "StartResult",
]

_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_PICKUP_HASH = re.compile(r"[0-9a-f]{64}")
_MAX_SECRET_CHARS = 256
#: How long a probe of ``/oauth/token`` is trusted.
PROBE_TTL = 300.0


@dataclass(frozen=True)
class Settings:
    """The extension's configuration, read once from the traits."""

    server_url: str
    app_id: str
    app_secret: str = field(repr=False)
    base_url: str = "/"
    redirect_url: str = ""
    allowed_servers: tuple[str, ...] = ()
    hub: HubEnv | None = None
    flow_lifetime: float = MAX_FLOW_LIFETIME
    result_lifetime: float = 120.0
    max_flows: int = 1000
    pickup_hold: float = 30.0
    trust_forwarded_headers: bool = False
    http_timeout: float = 15.0


@dataclass(frozen=True)
class BrowserRequest:
    """What the checks need to know about a browser's request."""

    origin: str  # scheme://host[:port] as the browser sees it (see redirect.request_origin)
    sec_fetch_site: str | None = None
    referer: str | None = None

    @property
    def https(self) -> bool:
        return self.origin.startswith("https://")


class Refusal(Exception):
    """A route refuses: ``message`` is for the page, ``log`` for the server log."""

    def __init__(
        self,
        reason: str,
        title: str,
        message: str,
        *,
        status: int = 400,
        log: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.title = title
        self.message = message
        self.status = status
        self.log = log or reason
        self.request_id = request_id

    def page(self) -> Page:
        return render_page(
            title=self.title,
            message=self.message,
            kind="failed",
            reason=self.reason,
            request_id=self.request_id,
            status=self.status,
        )


@dataclass(frozen=True)
class StartResult:
    flow: Flow
    authorize_url: str


_ALREADY_FINISHED = {
    "signed-in": "This sign-in already finished successfully. Go back to your notebook.",
    "denied": "This sign-in already ended: access was denied. Start it again from the notebook.",
    "superseded": (
        "This sign-in was replaced by a newer one started in this browser. Finish the newest "
        "sign-in window, or start again from the notebook."
    ),
    "replaced": (
        "This sign-in was replaced by a newer one for the same notebook request. Finish the "
        "newest sign-in window, or start again from the notebook."
    ),
    "cancelled": "This sign-in was cancelled from the notebook. Start it again when ready.",
    "failed": "This sign-in already failed. Start it again from the notebook.",
}


class SignInService:
    """The sign-in logic of one Jupyter server (one event loop)."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: logging.Logger | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        #: Sent with every JSON reply (``X-Speckle-NB-Instance``): a kernel that sees it change
        #: knows this process was replaced and its sign-ins were forgotten.
        self.instance_id = secrets.token_hex(8)
        self._transport = transport  # configured (tests: a MockTransport), or None: ours
        self._shared: httpx.AsyncHTTPTransport | None = None
        self._clock = clock
        self.store = FlowStore(
            flow_lifetime=settings.flow_lifetime,
            result_lifetime=settings.result_lifetime,
            max_flows=settings.max_flows,
            clock=clock,
            log=self.log,
            on_discard=self._revoke_later,
        )
        self._probes: dict[str, tuple[Method, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._auth: AsyncAuthClient | None = None
        self.allowed_servers = self._allowed(settings)

    def _allowed(self, settings: Settings) -> tuple[str, ...]:
        servers: list[str] = []
        for url in (settings.server_url, *settings.allowed_servers):
            try:
                normal = normalize_server_url(url)
            except ValueError:
                self.log.warning("speckle-nb: ignoring %r in allowed_servers: not a URL", url)
                continue
            if normal not in servers:
                servers.append(normal)
        return tuple(servers)

    def transport(self) -> httpx.AsyncBaseTransport:
        """The transport every client of this service uses, lent so that closing the client
        leaves it open. One for the service: building one loads the TLS certificate bundle,
        which blocks the server's event loop for tens of milliseconds."""
        inner = self._transport
        if inner is None:
            if self._shared is None:
                self._shared = httpx.AsyncHTTPTransport()
            inner = self._shared
        return _LentTransport(inner)

    @property
    def auth(self) -> AsyncAuthClient:
        if self._auth is None:
            self._auth = AsyncAuthClient(
                timeout=self.settings.http_timeout, transport=self.transport()
            )
        return self._auth

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._auth is not None:
            await self._auth.aclose()
            self._auth = None
        if self._shared is not None:
            shared, self._shared = self._shared, None
            await shared.aclose()
        if self._transport is not None:  # the configured one, closed once, as before
            await self._transport.aclose()

    # ------------------------------------------------------------------ status

    def redirect_url(self, browser: BrowserRequest) -> RedirectURL:
        s = self.settings
        return derive_redirect_url(
            configured=s.redirect_url, base_url=s.base_url, origin=browser.origin, hub=s.hub
        )

    def problems(self) -> list[str]:
        """What stops a sign-in from working, in words an admin can act on."""
        s = self.settings
        found: list[str] = []
        if not s.app_id:
            found.append(_not_configured_message())
        elif not s.app_secret and self.method_hint(self._default_server()) != "S256":
            found.append(
                "The Speckle app secret is not set: set SPECKLE_APP_SECRET (or "
                "c.SpeckleNB.app_secret). Released Speckle servers need it to exchange codes."
            )
        named = named_server_problem(configured=s.redirect_url, hub=s.hub)
        if named:
            found.append(named)
        return found

    def _default_server(self) -> str:
        return self.allowed_servers[0] if self.allowed_servers else self.settings.server_url

    def method_hint(self, server_url: str) -> Method | None:
        cached = self._probes.get(server_url)
        return cached[0] if cached and cached[1] > self._clock() else None

    def status(self, browser: BrowserRequest) -> dict[str, Any]:
        """What the panel shows. ``redirect_url`` is None where no URL would work (a named
        JupyterHub server without an explicit one); ``problems`` then says why."""
        redirect = self.redirect_url(browser)
        s = self.settings
        unusable = named_server_problem(configured=s.redirect_url, hub=s.hub) is not None
        return {
            "version": __version__,
            "server_url": self._default_server(),
            "allowed_servers": list(self.allowed_servers),
            "app_configured": bool(s.app_id),
            "app_id": s.app_id or None,
            "redirect_url": None if unusable else redirect.url,
            "redirect_url_source": None if unusable else redirect.kind,
            "method_hint": self.method_hint(self._default_server()),
            "problems": self.problems(),
        }

    # ------------------------------------------------------------------ start

    async def start(
        self, params: Mapping[str, str], browser: BrowserRequest, cookie_flow_id: str | None
    ) -> StartResult:
        """Begin a flow for the kernel's request, or raise ``Refusal``."""
        request_id, pickup = self.check_request(params)
        self.check_same_site(browser)
        try:
            app = self.check_configured(request_id)
            self.check_named_server(request_id)
            server = self.check_server(params.get("server"), request_id)
            method = await self.check_reachable(server, request_id)
            self.check_secret(method, server, request_id)
        except Refusal as refusal:
            # The kernel hears about it at once instead of waiting for its timeout.
            self.store.refuse(request_id, pickup, refusal.message)
            raise
        challenge = new_challenge(method)
        try:
            flow = self.store.start(
                request_id=request_id,
                pickup_hash=pickup,
                server_url=server,
                challenge=challenge,
                browser_flow_id=cookie_flow_id,
            )
        except StartRefused as exc:
            raise Refusal(
                exc.reason,
                "Sign-in not started",
                exc.message,
                status=409,
                request_id=request_id,
            ) from None
        self.log.info(
            "speckle-nb: flow %s started for %s (%s challenge)", flow.short_id, server, method
        )
        target = App(server, app.app_id)
        return StartResult(flow, authorize_url(target, challenge))

    def check_request(self, params: Mapping[str, str]) -> tuple[str, str]:
        request_id = params.get("request", "")
        pickup = params.get("pickup", "")
        if not _REQUEST_ID.fullmatch(request_id) or not _PICKUP_HASH.fullmatch(pickup):
            raise Refusal(
                "bad-request",
                "This sign-in link is incomplete",
                "The link lacks a valid request id or pickup hash, so it was not made by "
                "speckle-nb. Start the sign-in from your notebook with `speckle_nb.sign_in()`.",
                log="start with a malformed request id or pickup hash",
            )
        return request_id, pickup

    def check_same_site(self, browser: BrowserRequest) -> None:
        """Only a page of this Jupyter server (or the address bar) may start a sign-in.

        Without this, another site could send a signed-in Jupyter user here with a pickup
        hash of its own choosing and, once the user signs in, pick up their token.
        """
        site = (browser.sec_fetch_site or "").strip().lower()
        refused = site in ("cross-site", "same-site")
        if not site and browser.referer:
            referer_host = _netloc(browser.referer)
            refused = referer_host != "" and referer_host != _netloc(browser.origin)
        if refused:
            raise Refusal(
                "cross-site",
                "Sign-in not started",
                "This sign-in link was opened from another site, so it was not started: only "
                "your notebook may start a sign-in. Go back to your notebook and click "
                "'Sign in to Speckle'.",
                status=403,
                log=f"start refused: opened from another site (Sec-Fetch-Site={site or '-'})",
            )

    def check_configured(self, request_id: str) -> App:
        s = self.settings
        try:
            if not s.app_id:
                raise ConfigurationError(_not_configured_message())
            return App(s.server_url, s.app_id, s.app_secret or None)
        except ConfigurationError as exc:
            raise Refusal(
                "not-configured",
                "Speckle sign-in is not set up on this server",
                exc.message,
                status=503,
                log="start refused: app id or server URL not configured",
                request_id=request_id,
            ) from None

    def check_named_server(self, request_id: str) -> None:
        problem = named_server_problem(configured=self.settings.redirect_url, hub=self.settings.hub)
        if problem:
            raise Refusal(
                "named-server",
                "Sign-in is not available on this named server",
                problem,
                status=409,
                log="start refused: named JupyterHub server without an explicit redirect_url",
                request_id=request_id,
            )

    def check_server(self, server: str | None, request_id: str) -> str:
        if not server:
            return self._default_server()
        try:
            normal = normalize_server_url(server)
        except ValueError:
            normal = ""
        if normal not in self.allowed_servers:
            allowed = ", ".join(self.allowed_servers)
            raise Refusal(
                "server-not-allowed",
                "This Speckle server is not allowed here",
                f"This Jupyter server signs in only to {allowed}. Use one of those, or ask the "
                "administrator to add the server to c.SpeckleNB.allowed_servers "
                "(with an app registered on it).",
                status=400,
                log="start refused: server not in allowed_servers",
                request_id=request_id,
            )
        return normal

    async def check_reachable(self, server: str, request_id: str) -> Method:
        """S256 when the server has ``/oauth/token``, else plain. Cached per server."""
        cached = self.method_hint(server)
        if cached is not None:
            return cached
        try:
            s256 = await self.auth.supports_s256(server)
        except SpeckleError as exc:
            raise Refusal(
                "unreachable",
                "The Speckle server cannot be reached",
                f"{exc.message} (The Jupyter server must reach Speckle to finish the sign-in.)",
                status=502,
                log=f"probe of {server} failed: {type(exc).__name__}",
                request_id=request_id,
            ) from None
        method: Method = "S256" if s256 else "plain"
        self._probes[server] = (method, self._clock() + PROBE_TTL)
        return method

    def check_secret(self, method: Method, server: str, request_id: str) -> None:
        if method == "plain" and not self.settings.app_secret:
            raise Refusal(
                "not-configured",
                "Speckle sign-in is not set up on this server",
                f"{server} exchanges sign-in codes only with the app secret, which is not set. "
                "Ask the administrator to set SPECKLE_APP_SECRET (or c.SpeckleNB.app_secret).",
                status=503,
                log="start refused: app secret not configured",
                request_id=request_id,
            )

    # ------------------------------------------------------------------ callback

    async def callback(
        self, params: Mapping[str, str], *, cookie_present: bool, cookie_flow_id: str | None
    ) -> Page:
        """Run the named checks, then exchange the code. Always answers a page."""
        flow = self.store.get(cookie_flow_id) if cookie_flow_id else None
        try:
            self.check_denied(params, flow)
            code = self.check_code(params, flow)
            self.check_cookie(cookie_present, cookie_flow_id)
            live = self.check_flow(flow)
            credentials = await self.exchange(live, code)
        except Refusal as refusal:
            tag = flow.short_id if flow else "-"
            self.log.warning("speckle-nb: callback refused (flow %s): %s", tag, refusal.log)
            return refusal.page()
        user = credentials.user.name if credentials.user else "?"
        self.log.info(
            "speckle-nb: flow %s signed in to %s; result waits for pickup",
            live.short_id,
            credentials.server_url,
        )
        return signed_in_page(user, credentials.server_url, live.request_id)

    def _record(self, flow: Flow | None, reason: Literal["denied", "failed"], message: str) -> None:
        """A refusal ends the pending flow the cookie names, so its kernel hears at once."""
        if flow is not None and flow.status == "pending":
            self.store.fail(flow, reason, message)

    def check_denied(self, params: Mapping[str, str], flow: Flow | None) -> None:
        if params.get("denied", "").lower() != "true":
            return
        message = "You chose Deny on the Speckle page, so the notebook was not signed in."
        # The panel adds its own next step ("Try again"); the page names it here.
        self._record(flow, "denied", message)
        raise Refusal(
            "denied",
            "Access denied",
            message + " Start the sign-in again from the notebook and choose Authorize.",
            status=403,
            log="the user denied access",
            request_id=_request_of(flow),
        )

    def check_code(self, params: Mapping[str, str], flow: Flow | None) -> str:
        code = params.get("access_code", "").strip()
        if code and len(code) <= 256:
            return code
        message = (
            "Speckle came back without an access code, so the sign-in cannot finish. Check "
            "that the app's redirect URL is exactly this server's callback, then start again."
        )
        self._record(flow, "failed", message)
        raise Refusal(
            "missing-code",
            "No access code",
            message,
            log="no (or an oversized) access_code in the callback",
            request_id=_request_of(flow),
        )

    def check_cookie(self, cookie_present: bool, cookie_flow_id: str | None) -> None:
        if not cookie_present:
            raise Refusal(
                "no-cookie",
                "No sign-in in progress in this browser",
                "This browser has no sign-in in progress, so this answer from Speckle cannot "
                "be used. Start the sign-in from your notebook in this browser (cookies must "
                "be allowed), then finish it in the window that opens.",
                log="no flow cookie",
            )
        if cookie_flow_id is None:
            raise Refusal(
                "bad-cookie",
                "No valid sign-in in progress in this browser",
                "This browser's sign-in cookie is invalid or too old (the Jupyter server may "
                "have restarted). Start the sign-in again from your notebook.",
                log="flow cookie with a bad or expired signature",
            )

    def check_flow(self, flow: Flow | None) -> Flow:
        if flow is None:
            raise Refusal(
                "unknown-flow",
                "No sign-in in progress in this browser",
                "The sign-in this browser started is no longer known here (it finished, "
                "expired, or the Jupyter server restarted). Start it again from your notebook.",
                log="cookie names an unknown flow",
            )
        if flow.status == "exchanging":
            raise Refusal(
                "in-progress",
                "Sign-in in progress",
                "This sign-in is being finished in another window. Go back to your notebook.",
                status=409,
                log="second callback while exchanging",
                request_id=flow.request_id,
            )
        if flow.status == "ended":
            if flow.ended_reason == "expired":
                raise Refusal(
                    "expired",
                    "Sign-in expired",
                    "This sign-in took too long and expired. Click 'Sign in to Speckle' in "
                    "your notebook again.",
                    log="flow expired",
                    request_id=flow.request_id,
                )
            raise Refusal(
                "already-finished",
                "Sign-in already finished",
                _ALREADY_FINISHED.get(flow.ended_reason or "", _ALREADY_FINISHED["failed"]),
                status=409,
                log=f"flow already ended ({flow.ended_reason})",
                request_id=flow.request_id,
            )
        return flow

    async def exchange(self, flow: Flow, code: str) -> Credentials:
        """Code → tokens → ``activeUser``; the result is stored for the kernel."""
        s = self.settings
        app = App(flow.server_url, s.app_id, s.app_secret or None)
        self.store.begin_exchange(flow)
        pair: TokenPair | None = None
        try:
            pair = await self.auth.exchange(app, code, flow.challenge)
            user = await self._active_user(flow.server_url, pair.token)
        except SpeckleError as exc:
            if pair is not None:  # we hold a token nobody will get: revoke it
                self._revoke_later(
                    Credentials(flow.server_url, pair.token, refresh_token=pair.refresh_token)
                )
            message = _exchange_failure(exc)
            self.store.fail(flow, "failed", message)
            raise Refusal(
                "exchange-failed",
                "Speckle refused the sign-in"
                if isinstance(exc, TokenExchangeError)
                else "The sign-in could not be finished",
                message,
                status=502,
                log=f"exchange failed: {type(exc).__name__}: "
                f"{getattr(exc, 'server_message', None) or '-'}",
                request_id=flow.request_id,
            ) from None
        except BaseException:
            self.store.fail(
                flow, "failed", "The Jupyter server failed while finishing the sign-in."
            )
            raise
        credentials = Credentials(
            server_url=flow.server_url,
            token=pair.token,
            user=user,
            refresh_token=pair.refresh_token,
            scopes=(),
            source="sign-in",
            app_id=s.app_id,
        )
        if not self.store.complete(flow, credentials):
            raise Refusal(
                "cancelled",
                "Sign-in no longer wanted",
                "The notebook cancelled or replaced this sign-in while it was finishing. Start "
                "it again from the notebook if you still need it.",
                status=409,
                log="flow ended while exchanging",
                request_id=flow.request_id,
            )
        return credentials

    async def _active_user(self, server_url: str, token: str) -> User:
        from ..graphql import AsyncSpeckleClient

        client = AsyncSpeckleClient(
            server_url, token, timeout=self.settings.http_timeout, transport=self.transport()
        )
        try:
            return await client.active_user()
        finally:
            await client.aclose()

    # ------------------------------------------------------------------ pickup

    async def pickup(self, body: Any) -> tuple[int, dict[str, Any]]:
        """The kernel's long poll (``action: wait``) or its cancel. Returns (status, JSON)."""
        if isinstance(body, dict) and body.get("action") == "ping":
            # the kernel asks whether the extension is here (answered quietly: a 4xx would be
            # a WARNING line in the server log for every sign_in())
            # (app_configured: without an app, the kernel signs in with Speckle's built-in one)
            return 200, {
                "status": "ready",
                "version": __version__,
                "app_configured": bool(self.settings.app_id),
            }
        parsed = _parse_pickup(body, self.settings.pickup_hold)
        if isinstance(parsed, str):
            return 400, {"status": "error", "reason": "bad-request", "message": parsed}
        request_id, secret, hold, action = parsed
        try:
            if action == "cancel":
                self.store.cancel(request_id, secret)
                return 200, Outcome(
                    "cancelled", "The sign-in was cancelled from the notebook."
                ).to_json()
            outcome = await self.store.pickup(request_id, secret, hold)
        except PickupForbidden:
            self.log.warning("speckle-nb: pickup with a wrong secret refused")
            return 403, {
                "status": "error",
                "reason": "forbidden",
                "message": "This kernel may not pick up that sign-in (wrong pickup secret). "
                "Start a new sign-in with `speckle_nb.sign_in()`.",
            }
        if outcome is None:
            return 200, {"status": "pending"}
        self.log.info("speckle-nb: sign-in result (%s) handed to its kernel", outcome.reason)
        return 200, outcome.to_json()

    # ------------------------------------------------------------------ refresh

    async def refresh(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A new token pair for a refresh token, using the app secret held here."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) and body.get(k) for k in ("server_url", "refresh_token")
        ):
            return 400, {
                "status": "error",
                "reason": "bad-request",
                "message": 'Expected JSON {"server_url": "...", "refresh_token": "..."}.',
            }
        try:
            server = normalize_server_url(body["server_url"])
        except ValueError:
            server = ""
        if server not in self.allowed_servers:
            return 403, {
                "status": "error",
                "reason": "server-not-allowed",
                "message": "This Jupyter server refreshes tokens only for "
                f"{', '.join(self.allowed_servers)}.",
            }
        s = self.settings
        try:
            if not s.app_id:
                raise ConfigurationError(_not_configured_message())
            pair = await self.auth.refresh(
                App(server, s.app_id, s.app_secret or None), body["refresh_token"]
            )
        except SpeckleError as exc:
            self.log.warning("speckle-nb: token refresh failed: %s", type(exc).__name__)
            reply: dict[str, Any] = {
                "status": "error",
                "reason": _error_word(exc),
                "message": exc.message,
            }
            server_message = getattr(exc, "server_message", None)
            if server_message:
                reply["server_message"] = server_message
            return 200, reply
        return 200, {"status": "ok", "token": pair.token, "refresh_token": pair.refresh_token}

    # ------------------------------------------------------------------ revocation

    def _revoke_later(self, credentials: Credentials) -> None:
        """Revoke a token nobody will receive (best effort, in the background)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._revoke(credentials))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _revoke(self, credentials: Credentials) -> None:
        try:
            await self.auth.logout(
                credentials.server_url, credentials.token, credentials.refresh_token
            )
        except SpeckleError as exc:
            self.log.warning(
                "speckle-nb: could not revoke an unclaimed token at %s: %s",
                credentials.server_url,
                type(exc).__name__,
            )
        else:
            self.log.info("speckle-nb: revoked an unclaimed token at %s", credentials.server_url)


class _LentTransport(httpx.AsyncBaseTransport):
    """The service's transport as a client sees it: the client's ``aclose()`` keeps it open
    (the service closes it once, in ``SignInService.close``)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def _netloc(url: str) -> str:
    """``host[:port]`` of ``url``, lowercased; ``"?"`` for something that is not a URL."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:  # e.g. "http://[::1" from a hostile header
        return "?"


def _request_of(flow: Flow | None) -> str | None:
    return flow.request_id if flow is not None else None


def _not_configured_message() -> str:
    return (
        "No Speckle app is configured. The administrator must register an app on the Speckle "
        "server and set SPECKLE_APP_ID and SPECKLE_APP_SECRET (or c.SpeckleNB.app_id and "
        "c.SpeckleNB.app_secret), and SPECKLE_SERVER_URL if it is not app.speckle.systems."
    )


def _exchange_failure(exc: SpeckleError) -> str:
    """The page's and the kernel's message: the cause in the server's words, a next step."""
    if isinstance(exc, TokenExchangeError):
        return exc.message  # the oauth layer adds the step that fits the server's words
    return f"{exc.message} The sign-in could not be finished; start it again from the notebook."


def _error_word(exc: SpeckleError) -> str:
    if isinstance(exc, TransportError):
        return "unreachable"
    if isinstance(exc, ConfigurationError):
        return "not-configured"
    if isinstance(exc, TokenExchangeError):
        return "refused"
    return "failed"


def _parse_pickup(body: Any, max_hold: float) -> tuple[str, str, float, str] | str:
    """``(request, secret, hold, action)``, or the reason the body is malformed."""
    if not isinstance(body, dict):
        return 'Expected a JSON object {"request", "secret", "hold", "action"}.'
    request_id, secret = body.get("request"), body.get("secret")
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        return "'request' must be 16–64 URL-safe characters."
    if not isinstance(secret, str) or not 0 < len(secret) <= _MAX_SECRET_CHARS:
        return "'secret' must be a non-empty string."
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:  # JSON can carry a lone surrogate ("\ud800")
        return "'secret' must be text that UTF-8 can encode."
    hold = body.get("hold", max_hold)
    if isinstance(hold, bool) or not isinstance(hold, (int, float)) or hold < 0:
        return "'hold' must be a number of seconds ≥ 0."
    action = body.get("action", "wait")
    if action not in ("wait", "cancel"):
        return "'action' must be 'wait', 'cancel' or 'ping'."
    return request_id, secret, min(float(hold), max_hold), str(action)
