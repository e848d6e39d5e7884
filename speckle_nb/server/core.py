"""What every route of the sign-in service shares: settings, refusals, HTTP to Speckle.

``SignInService`` (``service.py``) is assembled from one class per group of routes
(``start_route.py``, ``callback_route.py``, ``kernel_routes.py``), each built on ``ServiceCore``
here: the configuration, the flow store, the servers a notebook may ask for, the one HTTP
transport to Speckle, and the background revocation of tokens nobody will receive.

Every refusal is a ``Refusal`` carrying a short reason word (for the notebook's
``BroadcastChannel``), a page text that names the cause and the next step, and the details
for the server log — never a code, token, secret or query string.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..credentials import Credentials, normalize_server_url
from ..oauth import AsyncAuthClient, Method
from .flows import MAX_FLOW_LIFETIME, FlowStore
from .pages import Page, render_page
from .redirect import HubEnv
from .registered import Registered
from .revoker import Revoker

__all__ = [
    "MIN_KERNEL_KEY",
    "BrowserRequest",
    "Refusal",
    "ServiceCore",
    "Settings",
    "not_configured_message",
]

#: The shortest kernel key accepted from the environment (a random one has 43 characters).
MIN_KERNEL_KEY = 32


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

    @property
    def page_origin(self) -> str:
        """The origin of the page that opened this request, as the browser saw it (its
        ``Referer``), else ``origin``. Behind a proxy whose headers are not trusted, the
        ``Host`` the server sees is the proxy's target; the notebook page's address is what
        the browser uses. Only for comparing with the registered redirect URL: a same-site
        check never relies on it."""
        if not self.referer:
            return self.origin
        try:
            parts = urlsplit(self.referer)
            _ = parts.port
        except ValueError:
            return self.origin
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return self.origin
        return f"{parts.scheme}://{parts.netloc.lower()}"


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
        outcome: str = "failed",
    ) -> None:
        super().__init__(message)
        #: What the request's kernel is told (``misconfigured``: trying again cannot help).
        self.outcome = outcome
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


class ServiceCore:
    """What the routes share; one per Jupyter server, used from its event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: logging.Logger | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Any = time.monotonic,
        kernel_key: str | None = None,
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
            on_discard=self.revoke_later,
        )
        self._probes: dict[str, tuple[Method, float]] = {}
        #: The app's registration per (server, app id), as ``start`` last read it.
        self._registered: dict[tuple[str, str], tuple[Registered, float]] = {}
        self._auth: AsyncAuthClient | None = None
        self._http: httpx.AsyncClient | None = None
        self.revoker = Revoker(self.http, log=self.log)
        self.allowed_servers = self._allowed(settings)
        #: What proves that a request to ``pickup`` or ``refresh`` comes from a kernel this
        #: server started: the extension puts it in its own environment, which kernels
        #: inherit (``speckle_nb.pickup.KERNEL_KEY_ENV``). Never logged, never on a page.
        #: A fresh random one unless given (``MIN_KERNEL_KEY`` characters at least).
        if kernel_key is not None and len(kernel_key) < MIN_KERNEL_KEY:
            raise ValueError(f"a kernel key needs at least {MIN_KERNEL_KEY} characters")
        self.kernel_key = kernel_key or secrets.token_urlsafe(32)

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

    def http(self) -> httpx.AsyncClient:
        """A plain client on the service's transport (for requests ``auth`` has no flow for)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.settings.http_timeout,
                transport=self.transport(),
                follow_redirects=False,
            )
        return self._http

    def revoke_later(self, credentials: Credentials) -> None:
        """Revoke a token nobody will receive, trying again until Speckle confirms."""
        self.revoker.revoke_later(credentials)

    async def close(self) -> None:
        await self.revoker.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._auth is not None:
            await self._auth.aclose()
            self._auth = None
        if self._shared is not None:
            shared, self._shared = self._shared, None
            await shared.aclose()
        if self._transport is not None:  # the configured one, closed once, as before
            await self._transport.aclose()

    def default_server(self) -> str:
        return self.allowed_servers[0] if self.allowed_servers else self.settings.server_url

    def method_hint(self, server_url: str) -> Method | None:
        cached = self._probes.get(server_url)
        return cached[0] if cached and cached[1] > self._clock() else None


class _LentTransport(httpx.AsyncBaseTransport):
    """The service's transport as a client sees it: the client's ``aclose()`` keeps it open
    (the service closes it once, in ``ServiceCore.close``)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def not_configured_message() -> str:
    return (
        "No Speckle app is configured. The administrator must register an app on the Speckle "
        "server and set SPECKLE_APP_ID and SPECKLE_APP_SECRET (or c.SpeckleNB.app_id and "
        "c.SpeckleNB.app_secret), and SPECKLE_SERVER_URL if it is not app.speckle.systems."
    )
