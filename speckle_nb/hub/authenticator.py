"""``SpeckleOAuthenticator``: Speckle as the hub's login (oauthenticator's ``OAuthenticator``).

Speckle's flow differs from plain OAuth 2 in four places, each replaced here and nothing else:

* authorize: ``{server}/authn/verify/{appId}/{challenge}`` (no ``redirect_uri``, no ``state``);
  the challenge is kept in oauthenticator's signed state cookie, as its PKCE verifier is;
* callback: ``?access_code=…`` or ``?denied=true`` and no ``state``. The cookie's challenge binds
  the callback to the login this browser started (a code minted for another challenge is refused
  by Speckle), so ``check_state``/``check_code``/``check_error`` check that rather than being
  switched off;
* token: ``POST /auth/token`` with JSON ``{appId, appSecret, accessCode, challenge}`` or
  ``{appId, appSecret, refreshToken}``, answered with ``{token, refreshToken}``;
* user info: GraphQL ``activeUser``.

``auth_state`` then holds ``access_token``, ``refresh_token``, the server and the user, and the
generic ``refresh_user`` renews a token Speckle refuses. A refresh Speckle refuses sends the person
to the hub's login page, which says why.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import quote

from jupyterhub.handlers.login import LoginHandler
from oauthenticator.oauth2 import (
    OAuthCallbackHandler,
    OAuthenticator,
    OAuthLoginHandler,
    _deserialize_state,
    _serialize_state,
)
from tornado import escape, web
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from traitlets import Unicode, default

from .._names import ENV_APP_ID, ENV_APP_SECRET, env_text, server_url_setting
from ..credentials import normalize_server_url
from ..server.pages import continue_page

__all__ = ["SpeckleOAuthenticator"]

#: Set on the browser when its Speckle login ended because Speckle refused to renew it.
REASON_COOKIE = "speckle-nb-login-reason"
REASONS = {
    "refresh-refused": (
        "Your Speckle sign-in expired and Speckle refused to renew it (the app's access was "
        "revoked, or the refresh token expired). Sign in with Speckle again to continue."
    ),
}
_ACTIVE_USER = "query { activeUser { id name email avatar company } }"


class SpeckleLoginHandler(OAuthLoginHandler):  # type: ignore[misc]
    def get(self) -> None:
        auth = self.authenticator
        challenge = secrets.token_urlsafe(32)
        state = {
            "state_id": secrets.token_hex(16),
            "next_url": self._get_next_url(),
            "challenge": challenge,
        }
        self.set_state_cookie(_serialize_state(state))
        url = f"{auth.speckle_server_url}/authn/verify/{quote(auth.client_id, safe='')}/{challenge}"
        # A page, not a 302: the hub logs a redirect's Location, and with Speckle's plain
        # method the challenge is the verifier itself.
        page = continue_page(url)
        self.set_header("Content-Security-Policy", page.content_security_policy)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(page.html)


class SpeckleCallbackHandler(OAuthCallbackHandler):  # type: ignore[misc]
    def check_error(self) -> None:
        if self.get_argument("denied", "") == "true":
            raise web.HTTPError(
                403, "You did not allow access on the Speckle page. Sign in again and click Allow."
            )

    def check_code(self) -> None:
        if not self.get_argument("access_code", ""):
            raise web.HTTPError(400, "Speckle sent no access code. Sign in again.")

    def check_state(self) -> None:
        """The login must have started in this browser: its cookie holds the challenge the
        code was minted for (Speckle sends no ``state`` to compare)."""
        cookie = self.get_state_cookie()
        if not cookie or not _deserialize_state(cookie).get("challenge"):
            raise web.HTTPError(
                400,
                "No Speckle login was started in this browser (or it expired). Sign in again.",
            )

    def challenge(self) -> str:
        return str(_deserialize_state(self.get_state_cookie()).get("challenge") or "")


class SpeckleHubLoginHandler(LoginHandler):  # type: ignore[misc]
    """The hub's login page, saying why the person is back here when we know."""

    def _render(
        self, login_error: str | None = None, username: str | None = None, **kwargs: Any
    ) -> Any:
        reason = REASONS.get(self.get_cookie(REASON_COOKIE, "") or "")
        if reason:
            self.clear_cookie(REASON_COOKIE, path=self.hub.base_url)
            url = self.authenticator.login_url(self.hub.base_url)
            kwargs["custom_html"] = (
                f'<p class="login_error" id="speckle-nb-reason">{escape.xhtml_escape(reason)}</p>'
                f"<a role='button' class='btn btn-jupyter btn-lg' "
                f"href='{escape.xhtml_escape(url)}'>Sign in with Speckle</a>"
            )
            return self.render_template(
                "login.html",
                next=escape.url_escape(self.get_argument("next", default="")),
                username=username,
                login_error=login_error,
                login_url=self.settings["login_url"],
                authenticator_login_url=url,
                authenticator=self.authenticator,
                xsrf=self.xsrf_token.decode("ascii"),
                **kwargs,
            )
        return super()._render(login_error=login_error, username=username, **kwargs)


class SpeckleOAuthenticator(OAuthenticator):  # type: ignore[misc]
    """Log in to JupyterHub with a Speckle account; tokens kept in ``auth_state``."""

    login_service = Unicode("Speckle", config=True, help="The name on the login button.")
    login_handler = SpeckleLoginHandler
    callback_handler = SpeckleCallbackHandler
    user_auth_state_key = "speckle_user"

    speckle_server_url = Unicode(
        config=True,
        help="The Speckle server to log in with (default: SPECKLE_SERVER_URL, else "
        "https://app.speckle.systems).",
    )

    @default("speckle_server_url")
    def _server_default(self) -> str:
        return server_url_setting()

    @default("client_id")
    def _client_id_default(self) -> str:
        return env_text(ENV_APP_ID)

    @default("client_secret")
    def _client_secret_default(self) -> str:
        return env_text(ENV_APP_SECRET)

    @default("username_claim")
    def _username_claim_default(self) -> Any:
        # The email is unique on a Speckle server; without profile:email, the user id.
        return lambda user: user.get("email") or user.get("id")

    @default("token_url")
    def _token_url_default(self) -> str:
        return f"{self.server}/auth/token"

    @default("userdata_url")
    def _userdata_url_default(self) -> str:
        return f"{self.server}/graphql"

    @default("authorize_url")
    def _authorize_url_default(self) -> str:
        return f"{self.server}/authn/verify/{self.client_id}/"

    @property
    def server(self) -> str:
        return normalize_server_url(self.speckle_server_url)

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        from .renew import RenewHandler

        return [
            *super().get_handlers(app),
            (r"/login", SpeckleHubLoginHandler),
            (r"/api/speckle-nb/users/([^/]+)/renew", RenewHandler),
        ]

    # ------------------------------------------------------------------ token requests

    def build_access_tokens_request_params(self, handler: Any, data: Any = None) -> dict[str, Any]:
        return {
            "appId": self.client_id,
            "appSecret": self.client_secret,
            "accessCode": handler.get_argument("access_code"),
            "challenge": handler.challenge(),
        }

    def build_refresh_token_request_params(self, refresh_token: str) -> dict[str, Any]:
        return {
            "appId": self.client_id,
            "appSecret": self.client_secret,
            "refreshToken": refresh_token,
        }

    async def get_token_info(self, handler: Any, params: dict[str, Any]) -> dict[str, Any]:
        """Speckle's JSON exchange; answers in OAuth's shape (``access_token``, …)."""
        request = HTTPRequest(
            self.server + "/auth/token",
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            body=json.dumps(params),
            validate_cert=self.validate_server_cert,
        )
        try:
            response: HTTPResponse = await self.http_client.fetch(request)
        except HTTPClientError as exc:
            # Speckle's words say why (a burned code, a revoked app); they hold no secret.
            words = _speckle_words(exc.response)
            self.log.info(
                "speckle-nb: Speckle refused a token request: HTTP %s %s", exc.code, words
            )
            raise web.HTTPError(
                403, f"Speckle refused the sign-in: {words}. Sign in again."
            ) from None
        body = json.loads(response.body or b"{}")
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise web.HTTPError(502, "Speckle answered the token request without a token.")
        return {
            "access_token": body["token"],
            "refresh_token": body.get("refreshToken"),
            "token_type": "Bearer",
        }

    async def token_to_user(self, token_info: dict[str, Any]) -> dict[str, Any]:
        """``activeUser``; a refused token raises ``HTTPClientError`` (4xx), which makes
        ``refresh_user`` try the refresh token."""
        request = HTTPRequest(
            self.server + "/graphql",
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token_info['access_token']}",
            },
            body=json.dumps({"query": _ACTIVE_USER}),
            validate_cert=self.validate_server_cert,
        )
        response = await self.http_client.fetch(request)  # 403 for a dead token
        body = json.loads(response.body or b"{}")
        user = (body.get("data") or {}).get("activeUser")
        if not isinstance(user, dict):
            raise HTTPClientError(401, "Speckle did not say who the token belongs to")
        return user

    def build_auth_state_dict(
        self, token_info: dict[str, Any], user_info: dict[str, Any]
    ) -> dict[str, Any]:
        state: dict[str, Any] = super().build_auth_state_dict(token_info, user_info)
        state["speckle_server_url"] = self.server
        return state

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        result = await super().refresh_user(user, handler, **kwargs)
        if result is False and handler is not None:
            # Back to the login page (the hub sends the browser there): say why.
            handler.set_cookie(
                REASON_COOKIE, "refresh-refused", path=handler.hub.base_url, httponly=True
            )
        return result


def _speckle_words(response: HTTPResponse | None) -> str:
    if response is None:
        return "no answer"
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        return f"HTTP {response.code}"
    if isinstance(body, dict):
        for key in ("err", "error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
    return f"HTTP {response.code}"
