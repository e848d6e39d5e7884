"""``start``: the checks a browser's request to begin a sign-in passes, then a new flow.

Each check raises ``Refusal``; from the configuration checks on, the refusal is also recorded
as the result of a request nobody has started yet, so the waiting kernel hears it at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..credentials import normalize_server_url
from ..errors import ConfigurationError, SpeckleError
from ..oauth import App, Method, authorize_url, new_challenge
from .core import BrowserRequest, Refusal, ServiceCore, not_configured_message
from .flows import Flow, StartRefused
from .redirect import RedirectURL, derive_redirect_url, named_server_problem
from .registered import Registered, fetch_registered, same_redirect

__all__ = ["PROBE_TTL", "REQUEST_ID", "StartResult", "StartRoute"]

REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_PICKUP_HASH = re.compile(r"[0-9a-f]{64}")
#: How long a probe of ``/oauth/token`` is trusted.
PROBE_TTL = 300.0


@dataclass(frozen=True)
class StartResult:
    flow: Flow
    authorize_url: str


class StartRoute(ServiceCore):
    """``GET start``: see ``docs/server-extension.md`` for the checks and their order."""

    def redirect_url(self, browser: BrowserRequest) -> RedirectURL:
        """The redirect URL this browser's request implies (see ``redirect.py``)."""
        s = self.settings
        return derive_redirect_url(
            configured=s.redirect_url, base_url=s.base_url, origin=browser.origin, hub=s.hub
        )

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
            await self.check_registered(server, browser, request_id)
        except Refusal as refusal:
            # The kernel hears about it at once instead of waiting for its timeout.
            self.store.refuse(request_id, pickup, refusal.message, refusal.outcome)
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
        if not REQUEST_ID.fullmatch(request_id) or not _PICKUP_HASH.fullmatch(pickup):
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
        hash of its own choosing and, once the user signs in, pick up their token. The
        browser must say where the request comes from: ``Sec-Fetch-Site`` (every current
        browser sends it with every navigation, and a page cannot suppress it), or, from an
        older browser, a ``Referer`` on this origin. A request that proves neither is
        refused: a foreign page can drop its ``Referer`` (``rel="noreferrer"``), so its
        absence proves nothing.
        """
        site = (browser.sec_fetch_site or "").strip().lower()
        if site in ("same-origin", "none"):
            return
        if site in ("cross-site", "same-site"):
            self._refuse_cross_site(f"Sec-Fetch-Site={site}")
        referer = _netloc(browser.referer) if browser.referer else ""
        if referer in ("", "?"):
            raise Refusal(
                "unproven-origin",
                "Sign-in not started",
                "Your browser did not say where this sign-in link was opened from (it sent "
                "neither Sec-Fetch-Site nor Referer), so it was not started: only your notebook "
                "may start a sign-in. Click 'Sign in to Speckle' in the notebook, in a current "
                "browser; if you did, a browser extension or setting strips these headers for "
                "this site: allow them here.",
                status=403,
                log="start refused: neither Sec-Fetch-Site nor a usable Referer",
            )
        if referer != _netloc(browser.origin):
            self._refuse_cross_site("a foreign Referer")

    @staticmethod
    def _refuse_cross_site(why: str) -> None:
        raise Refusal(
            "cross-site",
            "Sign-in not started",
            "This sign-in link was opened from another site, so it was not started: only "
            "your notebook may start a sign-in. Go back to your notebook and click "
            "'Sign in to Speckle'.",
            status=403,
            log=f"start refused: opened from another site ({why})",
        )

    def check_configured(self, request_id: str) -> App:
        s = self.settings
        try:
            if not s.app_id:
                raise ConfigurationError(not_configured_message())
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
            return self.default_server()
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

    async def registered(self, server: str) -> Registered:
        """The app's registration on ``server`` (cached for ``PROBE_TTL``, failures too: a
        server that does not answer this is asked again later, not on every start)."""
        key = (server, self.settings.app_id)
        cached = self._registered.get(key)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        found = await fetch_registered(self.http(), server, self.settings.app_id)
        if found.kind == "unknown":
            self.log.info("speckle-nb: could not read the app's redirect URL on %s", server)
        self._registered[key] = (found, self._clock() + PROBE_TTL)
        return found

    async def check_registered(self, server: str, browser: BrowserRequest, request_id: str) -> None:
        """The app exists on ``server`` and sends sign-ins back to where this browser is."""
        found = await self.registered(server)
        app_id = self.settings.app_id
        if found.kind == "no-app":
            raise Refusal(
                "unknown-app",
                "Speckle sign-in is not set up correctly",
                f"{server} has no app with the id {app_id!r}, so it cannot sign anybody in. "
                "The administrator must set SPECKLE_APP_ID (c.SpeckleNB.app_id) to the id of "
                f"an app registered on {server} (and its secret), then restart Jupyter.",
                status=503,
                log=f"start refused: {server} does not know the configured app id",
                request_id=request_id,
                outcome="misconfigured",
            )
        if found.kind != "found":
            return
        s = self.settings
        # where the notebook's page is, as the browser sees it (see BrowserRequest.page_origin)
        expected = derive_redirect_url(
            configured=s.redirect_url, base_url=s.base_url, origin=browser.page_origin, hub=s.hub
        )
        if same_redirect(found.redirect_url, expected.url):
            return
        if expected.kind == "configured":
            fix = (
                "The administrator must make them equal: register "
                f"{expected.url} on the app, or set c.SpeckleNB.redirect_url "
                f"(SPECKLE_REDIRECT_URL) to {found.redirect_url} if that address reaches this "
                "server's speckle-nb/callback."
            )
            where = "this Jupyter server's redirect_url setting is"
        else:
            fix = (
                f"Open Jupyter at the address the app is registered for "
                f"({_origin(found.redirect_url)}) and sign in from there; or the administrator "
                f"registers {expected.url} on the app (an app has one redirect URL), or sets "
                "c.SpeckleNB.redirect_url (SPECKLE_REDIRECT_URL) when a proxy changes the "
                "address."
            )
            where = "this browser opened Jupyter at an address whose callback is"
        raise Refusal(
            "redirect-mismatch",
            "This Jupyter address does not match the Speckle app",
            f"The Speckle app {app_id!r} on {server} sends sign-ins back to "
            f"{found.redirect_url}, but {where} {expected.url}. Speckle would send you to the "
            f"other address, where this sign-in cannot finish. {fix}",
            status=409,
            log="start refused: the app's registered redirect URL differs from this one",
            request_id=request_id,
            outcome="misconfigured",
        )


def _netloc(url: str) -> str:
    """``host[:port]`` of ``url``, lowercased; ``"?"`` for something that is not a URL."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:  # e.g. "http://[::1" from a hostile header
        return "?"


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return f"{parts.scheme}://{parts.netloc}"
