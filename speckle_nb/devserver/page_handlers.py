"""The web app's pages: login, the authorize page ``/authn/verify/{appId}/{challenge}``, home.

They stand in for Speckle's Nuxt front end (§1.2), served from the same origin. The
session is the web app's own token in the ``authn`` cookie, as in the real front end;
its path is ``/authn`` so the browser never sends it to other localhost ports.
Pages do not apply the API's global 403: a stale cookie just means "not logged in".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote, unquote

from . import pages
from .base import BaseHandler
from .messages import AccessCodeRequestError, InternalServerError, missing_scope_message
from .models import App, TokenInfo, User
from .urls import is_local_path, with_access_code, with_denied

SESSION_COOKIE = "authn"
REDIRECT_COOKIE = "postAuthRedirect"
COOKIE_PATH = "/authn"
REDIRECT_COOKIE_SECONDS = 300  # fe2's postAuthRedirect maxAge: 5 min
INVALID_CREDENTIALS = "Invalid credentials."


class PageHandler(BaseHandler):
    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        # Here, not in set_default_headers: that runs before `initialize` gives us options.
        if self.opts.coop:
            self.set_header("Cross-Origin-Opener-Policy", "same-origin")

    def session(self) -> tuple[TokenInfo, User] | None:
        token = self.get_cookie(SESSION_COOKIE)
        info = self.state.validate_token(token) if token else None
        user = self.state.user(info.user_id) if info else None
        if info is None or user is None:
            if token:
                self.clear_cookie(SESSION_COOKIE, path=COOKIE_PATH)
            return None
        return info, user

    def send_page(self, html: str, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)

    def go_to_login(self) -> None:
        """fe2's auth middleware: remember where we were (5 min) and go to the login page."""
        self.set_cookie(
            REDIRECT_COOKIE,
            quote(self.request.uri or "/", safe=""),
            path=COOKIE_PATH,
            expires_days=None,
            max_age=REDIRECT_COOKIE_SECONDS,
            samesite="Lax",
        )
        self.redirect("/authn/login")


class HomeHandler(PageHandler):
    def get(self) -> None:
        # The session cookie is scoped to /authn, so the home page cannot see it.
        self.send_page(pages.home_page(None, None))


class LoginHandler(PageHandler):
    def get(self) -> None:
        self.send_page(pages.login_page())

    def post(self) -> None:
        is_json = self.request.headers.get("Content-Type", "").startswith("application/json")
        email, password = self._credentials(is_json)
        user = self.state.authenticate(email, password) if email and password else None
        if user is None:
            if is_json:
                self.set_status(401)
                self.set_header("Content-Type", "application/json; charset=utf-8")
                self.finish(json.dumps({"err": True, "message": INVALID_CREDENTIALS}))
            else:
                self.send_page(pages.login_page(error=INVALID_CREDENTIALS, email=email), 401)
            return
        self.set_cookie(
            SESSION_COOKIE,
            self.state.create_session_token(user.id),
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
        )
        target = unquote(self.get_cookie(REDIRECT_COOKIE) or "")
        self.clear_cookie(REDIRECT_COOKIE, path=COOKIE_PATH)
        self.redirect(target if is_local_path(target) else "/")

    def _credentials(self, is_json: bool) -> tuple[str, str]:
        if is_json:
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                body = {}
            if not isinstance(body, dict):
                body = {}
            email, password = body.get("email"), body.get("password")
        else:
            email = self.get_body_argument("email", "")
            password = self.get_body_argument("password", "")
        return (
            email if isinstance(email, str) else "",
            password if isinstance(password, str) else "",
        )


class LogoutPageHandler(PageHandler):
    def get(self) -> None:
        token = self.get_cookie(SESSION_COOKIE)
        info = self.state.validate_token(token) if token else None
        if info is not None:
            # Not state.logout: that counts the API's /auth/logout calls only.
            self.state.revoke_user_token(info.token_id, info.user_id)
        self.clear_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        self.redirect("/authn/login")


class VerifyHandler(PageHandler):
    """``/authn/verify/{appId}/{challenge}``: resolve the app, log in, consent, redirect."""

    def get(self, app_id: str, challenge: str) -> None:
        session = self.session()
        if session is None:
            self.go_to_login()
            return
        app = self.state.app(app_id)
        if app is None:
            # fe2 shows an error and stays put: no redirect anywhere.
            self.send_page(pages.app_error_page())
            return
        info, user = session
        if app.trusted:
            self._allow(app, challenge, info)
            return
        self.send_page(
            pages.consent_page(
                app_name=app.name,
                app_description=app.description,
                scopes=app.scopes,
                user_name=user.name,
                user_email=user.email,
                action_url=self.request.uri or self.request.path,
                csrf=self._csrf(info, app_id, challenge),
            )
        )

    def post(self, app_id: str, challenge: str) -> None:
        session = self.session()
        if session is None:
            self.go_to_login()
            return
        info, _user = session
        sent = self.get_body_argument("_csrf", "")
        if not hmac.compare_digest(sent, self._csrf(info, app_id, challenge)):
            self.send_page(pages.form_expired_page(), 403)
            return
        app = self.state.app(app_id)
        if app is None:
            self.send_page(pages.app_error_page())
            return
        action = self.get_body_argument("action", "")
        if action == "allow":
            self._allow(app, challenge, info)
        elif action == "deny":
            self._send_browser_to(with_denied(app.redirect_url), denied=True)
        else:
            self.send_page(pages.authorization_failed_page("Choose Authorize or Deny."), 400)

    def _allow(self, app: App, challenge: str, info: TokenInfo) -> None:
        # The page's Allow calls /auth/accesscode with the session token: same checks.
        try:
            if not info.has_scope("tokens:write"):
                raise AccessCodeRequestError(missing_scope_message("tokens:write"))
            code = self.state.mint_access_code(app.id, info.user_id, challenge)
        except AccessCodeRequestError as err:
            self.send_page(pages.authorization_failed_page(err.message), 400)
            return
        except InternalServerError as err:
            self.send_page(pages.authorization_failed_page(err.message), 500)
            return
        self._send_browser_to(with_access_code(app.redirect_url, code), denied=False)

    def _send_browser_to(self, target: str, *, denied: bool) -> None:
        delay = self.opts.consent_delay
        if delay > 0:
            self.send_page(pages.redirect_page(target, delay, denied=denied))
        else:
            self.redirect(target)

    def _csrf(self, info: TokenInfo, app_id: str, challenge: str) -> str:
        """A form token bound to this session and this authorization request."""
        message = f"{info.token_id}\x00{app_id}\x00{challenge}".encode()
        return hmac.new(self.runtime.csrf_key, message, hashlib.sha256).hexdigest()
