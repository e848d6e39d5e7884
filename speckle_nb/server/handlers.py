"""HTTP handlers: parse the request, call ``SignInService``, write the answer. Routes at the end.

Everything here is under ``{base_url}speckle-nb/`` (``ExtensionApp`` joins the base URL).
``start``, ``callback`` and ``status`` need a Jupyter login; ``pickup`` and ``refresh`` are
called by kernels, which hold no Jupyter credentials under JupyterHub, so they are
``@allow_unauthenticated`` and answer only requests carrying this server's kernel key (which
only the kernels it started inherit); a pickup also proves its pickup secret.

No log line written here holds a query string: the callback's carries ``access_code``. The
server's access log (jupyter_server's ``log_request``) masks any parameter whose name contains
"code" or "token"; tornado's own exception logging is routed through a summary without the query.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web

from .. import __version__
from .._names import INSTANCE_HEADER, KERNEL_KEY_HEADER
from ..oauth import parse_callback_url
from .pages import Page, continue_page
from .redirect import request_origin
from .service import BrowserRequest, Refusal, SignInService

__all__ = ["COOKIE_NAME", "INSTANCE_HEADER", "ROUTES", "SERVICE_SETTING"]

SERVICE_SETTING = "speckle_nb_service"
COOKIE_NAME = "speckle-nb-flow"
AUTH_RESOURCE = "speckle_nb"


class _SpeckleMixin:
    """What every speckle-nb handler shares (mixed into a ``JupyterHandler``)."""

    auth_resource = AUTH_RESOURCE
    settings: dict[str, Any]
    request: Any

    @property
    def service(self) -> SignInService:
        service: SignInService = self.settings[SERVICE_SETTING]
        return service

    def browser(self) -> BrowserRequest:
        request = self.request
        origin = request_origin(
            request.protocol,
            request.host,
            request.headers,
            trust_forwarded=self.service.settings.trust_forwarded_headers,
        )
        return BrowserRequest(
            origin=origin,
            sec_fetch_site=request.headers.get("Sec-Fetch-Site"),
            referer=request.headers.get("Referer"),
        )

    def _request_summary(self) -> str:
        # tornado's default includes the query string (the callback's access_code)
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # tornado logs repr(request), which holds the full URI; log the path only
        if isinstance(value, web.HTTPError):
            return super().log_exception(typ, value, tb)  # type: ignore[misc,no-any-return]
        self.log.error(  # type: ignore[attr-defined]
            "speckle-nb: uncaught exception in %s",
            self._request_summary(),
            exc_info=(typ, value, tb),
        )
        return None


class _PageHandler(_SpeckleMixin, JupyterHandler):
    """Handlers that answer the browser with a page (or a redirect)."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Speckle-NB", __version__)

    @property
    def cookie_path(self) -> str:
        from jupyter_server.utils import url_path_join

        return str(url_path_join(self.base_url, "speckle-nb/"))

    def flow_cookie(self) -> tuple[bool, str | None]:
        """``(present, flow id)``; the id is None when the signature is bad or too old."""
        if self.get_cookie(COOKIE_NAME) is None:
            return False, None
        # The cookie is read as long as the server keeps the flow's record (its tombstone
        # outlives the flow by result_lifetime), so a late callback is told "expired".
        s = self.service.settings
        max_age = s.flow_lifetime + s.result_lifetime + 60
        value = self.get_signed_cookie(COOKIE_NAME, max_age_days=max_age / 86400)
        return True, value.decode("utf-8", "replace") if value else None

    def write_page(self, page: Page) -> None:
        self.set_status(page.status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", page.content_security_policy)
        self.finish(page.html)


class StartHandler(_PageHandler):
    """``GET start?request=…&pickup=…[&server=…]``: begin a flow and go to Speckle."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        params = {k: self.get_query_argument(k, "") for k in ("request", "pickup", "server")}
        _, cookie_flow_id = self.flow_cookie()
        try:
            result = await self.service.start(params, self.browser(), cookie_flow_id)
        except Refusal as refusal:
            self.log.warning("speckle-nb: start refused: %s", refusal.log)
            self.write_page(refusal.page())
            return
        settings = self.service.settings
        self.set_signed_cookie(
            COOKIE_NAME,
            result.flow.flow_id,
            expires_days=None,
            path=self.cookie_path,
            # Outlives the flow by result_lifetime, as its record does at the server, so a
            # callback arriving after the flow expired is told "expired", not "no cookie".
            # The same 60 s slack as flow_cookie() reads it with: clients count Max-Age in
            # whole seconds (http.cookiejar truncates the start), which lost up to a second.
            max_age=int(settings.flow_lifetime + settings.result_lifetime + 60),
            httponly=True,
            samesite="Lax",
            secure=self.browser().https,
        )
        self.write_page(continue_page(result.authorize_url))


class CallbackHandler(_PageHandler):
    """``GET callback?access_code=…`` (or ``?denied=true``): where Speckle sends the browser."""

    def get_login_url(self) -> str:
        # A browser without a Jupyter session is sent to log in; keep the code out of the
        # ``next`` parameter (and so out of every log that prints the login URL).
        login: str = super().get_login_url()
        if "?" in login:  # not Jupyter's own login page (e.g. JupyterHub's OAuth): leave it
            return login
        return login + "?" + urlencode({"next": self.request.path})

    @web.authenticated
    @authorized
    async def get(self) -> None:
        received = parse_callback_url(self.request.query)
        params = {"denied": "true"} if received.denied else {}
        if received.access_code:
            params["access_code"] = received.access_code
        present, flow_id = self.flow_cookie()
        page = await self.service.callback(params, cookie_present=present, cookie_flow_id=flow_id)
        if present:
            self.clear_cookie(COOKIE_NAME, path=self.cookie_path)
        self.write_page(page)


class _JSONHandler(_SpeckleMixin, APIHandler):
    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Speckle-NB", __version__)
        # Which server process answered: a kernel that sees it change during a sign-in knows
        # the Jupyter server restarted and forgot the sign-in (see pickup.PickupClient).
        service = self.settings.get(SERVICE_SETTING)
        if service is not None:
            self.set_header(INSTANCE_HEADER, service.instance_id)

    def write_json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def json_body(self) -> Any:
        try:
            return json.loads(self.request.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None


class StatusHandler(_JSONHandler):
    """``GET status``: what the panel shows (never the app secret)."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.write_json(200, self.service.status(self.browser()))


class _KernelHandler(_JSONHandler):
    """Called by kernels without Jupyter credentials: each request carries the server's kernel
    key (only kernels this server started inherit it), checked by ``KernelRoutes``."""

    _track_activity = False  # a kernel's long poll is not user activity (idle culling)
    _task: asyncio.Task[tuple[int, dict[str, Any]]] | None = None

    def check_xsrf_cookie(self) -> None:
        # No cookie is involved: the caller proves itself with the kernel key in a header
        # (and the pickup secret in the body), which a cross-site form can neither know nor
        # send.
        return

    def kernel_key(self) -> str | None:
        value: str | None = self.request.headers.get(KERNEL_KEY_HEADER)
        return value

    def on_connection_close(self) -> None:
        # The kernel gave up (timeout, interrupt): stop waiting so no result is consumed
        # for a connection that can no longer receive it.
        if self._task is not None:
            self._task.cancel()

    async def run(self, call: Any) -> None:
        self._task = asyncio.ensure_future(call)
        try:
            status, body = await self._task
        except asyncio.CancelledError:
            return
        self.write_json(status, body)


class PickupHandler(_KernelHandler):
    """``POST pickup`` ``{"request", "secret", "hold", "action"}``: the kernel's long poll."""

    @allow_unauthenticated
    async def post(self) -> None:
        await self.run(self.service.pickup(self.json_body(), self.kernel_key()))


class RefreshHandler(_KernelHandler):
    """``POST refresh`` ``{"server_url", "refresh_token"}``: a new token pair."""

    @allow_unauthenticated
    async def post(self) -> None:
        await self.run(self.service.refresh(self.json_body(), self.kernel_key()))


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    ("speckle-nb/start", StartHandler),
    ("speckle-nb/callback", CallbackHandler),
    ("speckle-nb/status", StatusHandler),
    ("speckle-nb/pickup", PickupHandler),
    ("speckle-nb/refresh", RefreshHandler),
]
