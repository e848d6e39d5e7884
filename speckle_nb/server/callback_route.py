"""``callback``: Speckle's redirect back, its named checks, then the code exchange.

Speckle sends no ``state``; the flow cookie is what binds the callback to the sign-in this
browser started. Each check raises ``Refusal`` and, where the cookie names a pending flow,
records the failure on it so the kernel's pickup reports it at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from ..credentials import Credentials, User
from ..errors import SpeckleError, TokenExchangeError
from ..oauth import App, TokenPair
from .core import Refusal, ServiceCore
from .flows import Flow
from .pages import Page, signed_in_page

__all__ = ["CallbackRoute"]

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


class CallbackRoute(ServiceCore):
    """``GET callback``: see ``docs/server-extension.md`` for the checks and their order."""

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
                self.revoke_later(
                    Credentials(flow.server_url, pair.token, refresh_token=pair.refresh_token)
                )
            admin = _admin_must_fix(exc, app)
            message = admin or _exchange_failure(exc)
            self.store.fail(flow, "misconfigured" if admin else "failed", message)
            raise Refusal(
                "misconfigured" if admin else "exchange-failed",
                "Speckle sign-in is not set up correctly"
                if admin
                else "Speckle refused the sign-in"
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


def _request_of(flow: Flow | None) -> str | None:
    return flow.request_id if flow is not None else None


def _exchange_failure(exc: SpeckleError) -> str:
    """The page's and the kernel's message: the cause in the server's words, a next step."""
    if isinstance(exc, TokenExchangeError):
        return exc.message  # the oauth layer adds the step that fits the server's words
    return f"{exc.message} The sign-in could not be finished; start it again from the notebook."


def _admin_must_fix(exc: SpeckleError, app: App) -> str | None:
    """For a refusal that only the administrator can fix, what they must change (trying
    again fails the same way: the panel must not suggest it)."""
    words = (getattr(exc, "server_message", None) or "").lower()
    if not isinstance(exc, TokenExchangeError) or not words:
        return None
    where = f"on {app.server_url} (its Developer settings → Applications)"
    if "secret" in words:
        return (
            f"The app secret this Jupyter server uses is wrong: {app.server_url} refused it "
            f"({exc.server_message}). Signing in again fails the same way until the "
            "administrator sets SPECKLE_APP_SECRET (or c.SpeckleNB.app_secret) to the secret "
            f"of the app {app.app_id!r} {where} and restarts Jupyter."
        )
    if "application id" in words or words.strip(". ") == "invalid app":
        return (
            f"{app.server_url} does not accept the app id {app.app_id!r} for this sign-in "
            f"({exc.server_message}). Signing in again fails the same way until the "
            "administrator sets SPECKLE_APP_ID and SPECKLE_APP_SECRET (or c.SpeckleNB.app_id "
            f"and app_secret) to an app registered {where} and restarts Jupyter."
        )
    return None
