"""The ``speckle-nb`` JupyterHub service: the one place that holds the Speckle app secret.

    python -m speckle_nb.hub.service      (JupyterHub starts it: see ``speckle_nb.hub.configure``)

Routes, under the service prefix (``{hub base}services/speckle-nb/``):

``start``      browser, HubOAuth: binds the kernel's request to this hub user and this browser
               (a signed cookie naming the flow), then on to Speckle's authorize page.
``callback``   browser, HubOAuth: the app's one redirect URL. The cookie names the flow; the flow
               must belong to the same hub user. Exchanges the code, reads ``activeUser``.
``pickup``     kernel, ``Authorization: token $JUPYTERHUB_API_TOKEN``: the hub says whose token
               it is; only that user's own request, with its pickup secret, gets the result.
``refresh``    kernel, same token: a new token pair (the secret stays here).
``oauth_callback``  HubOAuth's own.

The same JSON as the single-user extension's ``speckle-nb/pickup`` and ``speckle-nb/refresh``, so
the kernel's ``PickupClient`` talks to either. Nothing is shared with user servers but HTTP, so
they may run on other machines (Kubernetes pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web

from .. import errors
from .._names import INSTANCE_HEADER
from ..credentials import normalize_server_url
from ..oauth import AsyncAuthClient, authorize_url, new_challenge
from ..server.pages import Page, continue_page, render_page, signed_in_page
from .flows import PickupRefused, Request
from .state import ServiceSettings, State

__all__ = ["main", "make_app"]

log = logging.getLogger("speckle_nb.hub.service")

FLOW_COOKIE = "speckle-nb-hub-flow"
MAX_HOLD = 30.0
#: How often a held pickup looks whether the browser has started its request.
START_LOOK = 0.25
#: The longest a pickup for a request no browser has started is held.
UNKNOWN_HOLD = 3.0
TRY_AGAIN = "Click Try again in the notebook (or run speckle_nb.sign_in() again)."


# ---------------------------------------------------------------------- browser routes


class _BrowserHandler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
    state: State

    def initialize(self, state: State) -> None:
        self.state = state

    async def prepare(self) -> None:
        # HubOAuth's own lookup blocks the event loop on the hub call: do it async here
        # (get_current_user reads this cache).
        model = await self.hub_auth.get_user(self, sync=False)
        self._hub_auth_user_cache = self.check_hub_user(model) if model else None

    def send_page(self, page: Page) -> None:
        self.set_status(page.status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", page.content_security_policy)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(page.html)

    def refuse(self, status: int, title: str, message: str, reason: str) -> None:
        self.send_page(
            render_page(
                title=title,
                message=message,
                kind="failed",
                reason=reason,
                request_id=None,
                status=status,
            )
        )

    def user_name(self) -> str:
        user = self.current_user
        assert isinstance(user, dict)
        return str(user["name"])


class StartHandler(_BrowserHandler):
    @web.authenticated
    async def get(self) -> None:
        request_id = self.get_argument("request", "")
        pickup = self.get_argument("pickup", "").lower()
        if not (8 <= len(request_id) <= 64) or len(pickup) != 64:
            self.refuse(
                400, "Sign-in not started", "This start link is incomplete. " + TRY_AGAIN, "failed"
            )
            return
        server = self.get_argument("server", "") or self.state.app.server_url
        try:
            server = normalize_server_url(server)
        except ValueError:
            server = ""
        if server != self.state.app.server_url:
            self.refuse(
                400,
                "Sign-in not available",
                f"This hub signs in to {self.state.app.server_url} only.",
                "server-not-allowed",
            )
            return
        old = self.get_signed_cookie(FLOW_COOKIE)
        if old:
            self.state.flows.end(
                old.decode("ascii", "replace"),
                "superseded",
                "A newer sign-in started in the same browser. Finish that one.",
            )
        challenge = new_challenge("plain")
        try:
            flow = self.state.flows.start(
                user=self.user_name(),
                request_id=request_id,
                pickup=pickup,
                server_url=server,
                challenge=challenge,
            )
        except PickupRefused:
            self.refuse(
                403, "Sign-in refused", "This sign-in belongs to someone else.", "forbidden"
            )
            return
        self.set_signed_cookie(
            FLOW_COOKIE,
            flow.id,
            expires_days=None,
            path=self.state.settings.prefix,
            httponly=True,
            samesite="Lax",
            secure=self.request.protocol == "https",
        )
        # A page rather than a 302: the challenge (the verifier, with Speckle's plain
        # method) stays out of every request log.
        self.send_page(continue_page(authorize_url(self.state.app, challenge)))


class CallbackHandler(_BrowserHandler):
    @web.authenticated
    async def get(self) -> None:
        raw = self.get_signed_cookie(FLOW_COOKIE)
        self.clear_cookie(FLOW_COOKIE, path=self.state.settings.prefix)
        flow = self.state.flows.take(raw.decode("ascii", "replace")) if raw else None
        if flow is None:
            # Nothing exchanged: a replay, another browser, or a service restarted meanwhile.
            self.refuse(
                400,
                "No sign-in in progress",
                "No sign-in in progress in this browser: it already finished, expired, or the "
                "speckle-nb service restarted. " + TRY_AGAIN,
                "no-flow",
            )
            return
        request = flow.request
        if request.user != self.user_name():
            request.finish(_error("failed", "The sign-in was completed by another hub user."))
            self.refuse(
                403, "Sign-in refused", "This sign-in belongs to someone else.", "forbidden"
            )
            return
        if self.get_argument("denied", "") == "true":
            message = "You did not allow access on the Speckle page. " + TRY_AGAIN
            request.finish(_error("denied", message))
            self.refuse(200, "Sign-in cancelled", message, "denied")
            return
        code = self.get_argument("access_code", "")
        if not code:
            request.finish(_error("failed", "Speckle sent no access code. " + TRY_AGAIN))
            self.refuse(
                400, "Sign-in failed", "Speckle sent no access code. " + TRY_AGAIN, "failed"
            )
            return
        try:
            result = await _exchange(self.state, code, flow.challenge)
        except errors.SpeckleError as exc:
            log.warning("speckle-nb: a sign-in for %s failed: %s", request.user, type(exc).__name__)
            request.finish(_error("failed", f"{exc} {TRY_AGAIN}"))
            self.refuse(502, "Sign-in failed", f"{exc} {TRY_AGAIN}", "failed")
            return
        request.finish({"status": "ok", "credentials": result})
        user = result.get("user") or {}
        log.info("speckle-nb: %s signed in to %s", request.user, self.state.app.server_url)
        self.send_page(
            signed_in_page(str(user.get("name") or "?"), self.state.app.server_url, request.id)
        )


async def _exchange(state: State, code: str, challenge: Any) -> dict[str, Any]:
    from ..graphql import AsyncSpeckleClient

    app = state.app
    async with AsyncAuthClient(transport=state.transport) as auth:
        pair = await auth.exchange(app, code, challenge)
    async with AsyncSpeckleClient(app.server_url, pair.token, transport=state.transport) as client:
        user = await client.active_user()
    return {
        "server_url": app.server_url,
        "token": pair.token,
        "refresh_token": pair.refresh_token,
        "user": user.to_dict(),
        "app_id": app.app_id,
        "scopes": [],
    }


def _error(reason: str, message: str) -> dict[str, Any]:
    return {"status": "error", "reason": reason, "message": message}


# ---------------------------------------------------------------------- kernel routes


class _KernelHandler(web.RequestHandler):
    """JSON routes for kernels, authenticated by their hub token (never a cookie)."""

    state: State

    def initialize(self, state: State, hub_auth: HubOAuth) -> None:
        self.state = state
        self.hub_auth = hub_auth
        # (after set_default_headers, which runs before initialize)
        self.set_header(INSTANCE_HEADER, state.instance)

    def check_xsrf_cookie(self) -> None:
        """A token in a header, never a cookie: cross-site forgery cannot send it."""

    def set_default_headers(self) -> None:
        self.set_header("X-Speckle-NB", "1")
        self.set_header("Cache-Control", "no-store")

    def reply(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "not a JSON object")
        return body

    async def hub_user(self) -> str | None:
        """Whose hub token this is (the hub answers ``GET /hub/api/user``), or None."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token.strip():
            return None
        model = await self.hub_auth.user_for_token(token.strip(), sync=False)
        if not model or model.get("kind", "user") != "user":
            return None
        return str(model["name"])

    def forbidden(self) -> None:
        self.reply(
            _error(
                "forbidden",
                "The speckle-nb service needs the hub token of the user who signs in "
                "(JUPYTERHUB_API_TOKEN), and that user's own sign-in.",
            ),
            403,
        )


class PickupHandler(_KernelHandler):
    async def post(self) -> None:
        body = self.body()
        action = body.get("action", "wait")
        if action == "ping":
            self.reply({"status": "ready"})
            return
        user = await self.hub_user()
        if user is None:
            self.forbidden()
            return
        request_id, secret = str(body.get("request", "")), str(body.get("secret", ""))
        try:
            request = self.state.flows.lookup(request_id, user, secret)
        except PickupRefused:
            log.warning("speckle-nb: %s asked for a sign-in that is not theirs", user)
            self.forbidden()
            return
        if action == "cancel":
            if request is not None:
                self.state.flows.cancel(request)
            self.reply(_error("cancelled", "The sign-in was cancelled."))
            return
        hold = min(MAX_HOLD, max(0.0, float(body.get("hold") or 0)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        if request is None:
            # The kernel asks before the click: look for the browser's start now and then
            # while holding, so a waiting kernel costs a request every few seconds.
            # At most UNKNOWN_HOLD: a kernel whose service restarted learns it from the
            # instance header of this answer, so the answer must not wait the full hold.
            soon = min(deadline, loop.time() + UNKNOWN_HOLD)
            request = await self._started(request_id, user, secret, soon)
            if request is None:
                self.reply({"status": "pending"})
                return
        remaining = deadline - loop.time()
        if request.result is None and remaining > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(request.ready.wait(), remaining)
        if request.result is None:
            self.reply({"status": "pending"})
            return
        self.reply(self.state.flows.collect(request))

    async def _started(
        self, request_id: str, user: str, secret: str, deadline: float
    ) -> Request | None:
        loop = asyncio.get_running_loop()
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(START_LOOK, left))
            try:
                request = self.state.flows.lookup(request_id, user, secret)
            except PickupRefused:
                return None
            if request is not None:
                return request
        return None


class RefreshHandler(_KernelHandler):
    async def post(self) -> None:
        if await self.hub_user() is None:
            self.forbidden()
            return
        body = self.body()
        app = self.state.app
        refresh_token = body.get("refresh_token")
        try:
            server = normalize_server_url(str(body.get("server_url") or ""))
        except ValueError:
            server = ""
        if server != app.server_url:
            self.reply(
                _error(
                    "server-not-allowed",
                    f"This hub's service refreshes tokens of {app.server_url} only.",
                ),
                400,
            )
            return
        if not isinstance(refresh_token, str) or not refresh_token:
            self.reply(_error("failed", "No refresh token was sent."), 400)
            return
        try:
            async with AsyncAuthClient(transport=self.state.transport) as auth:
                pair = await auth.refresh(app, refresh_token)
        except errors.TransportError as exc:
            self.reply(_error("unreachable", str(exc)), 502)
            return
        except errors.SpeckleError as exc:
            self.reply(
                {
                    **_error("refused", str(exc)),
                    "server_message": getattr(exc, "server_message", None),
                },
                401,
            )
            return
        self.reply({"status": "ok", "token": pair.token, "refresh_token": pair.refresh_token})


# ---------------------------------------------------------------------- the application


def _log_request(handler: web.RequestHandler) -> None:
    """Tornado's access log without query strings: a callback's carries the access code."""
    request = handler.request
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING
    if status < 400 and request.path.endswith("/pickup"):
        level = logging.DEBUG  # kernels' long polls: one line each would fill the log
    log.log(
        level,
        "%d %s %s %.1fms",
        status,
        request.method,
        request.path,
        1000.0 * request.request_time(),
    )


def make_app(settings: ServiceSettings) -> web.Application:
    state = State(settings)
    prefix = settings.prefix
    # One instance: the browser handlers (HubOAuthenticated) and HubOAuth's own callback
    # find it with .instance(), the kernel routes are handed it.
    hub_auth = HubOAuth.instance(api_token=settings.api_token, cache_max_age=60)
    # HubOAuth's cookie survives a restart of this process (derived from the service's
    # token); the flow cookie's meaning does not, since flows live in memory.
    cookie_secret = hashlib.sha256(
        b"speckle-nb hub service|" + settings.api_token.encode()
    ).digest()
    kernel = {"state": state, "hub_auth": hub_auth}
    return web.Application(
        [
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(prefix, "start"), StartHandler, {"state": state}),
            (url_path_join(prefix, "callback"), CallbackHandler, {"state": state}),
            (url_path_join(prefix, "pickup"), PickupHandler, kernel),
            (url_path_join(prefix, "refresh"), RefreshHandler, kernel),
        ],
        cookie_secret=cookie_secret,
        hub_auth=hub_auth,
        log_function=_log_request,
        xsrf_cookies=False,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s"
    )
    try:
        settings = ServiceSettings.from_env()
    except errors.ConfigurationError:
        raise SystemExit(2) from None
    app = make_app(settings)
    bind = urlsplit(settings.bind_url)
    app.listen(bind.port or 80, bind.hostname or "127.0.0.1", xheaders=True)
    log.info(
        "speckle-nb service for %s (app %s) at %s%s",
        settings.app.server_url,
        settings.app.app_id,
        settings.bind_url,
        settings.prefix,
    )
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
