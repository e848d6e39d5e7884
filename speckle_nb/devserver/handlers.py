"""The Express API routes: ``/auth/accesscode``, ``/auth/token``, ``/auth/logout``,
``/oauth/token``, ``/graphql``, and Express's 404 for everything else.

Thin on purpose: parse, call ``DevState`` or the GraphQL runner, shape the answer.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

from .base import ApiHandler
from .express import express_404
from .graphql_http import (
    CSRF_MESSAGE,
    LANDING_PAGE,
    PREFLIGHT_HEADERS,
    Answer,
    csrf_blocked,
    operations_in,
    prefers_html,
)
from .graphql_http import run_request as run_graphql
from .messages import (
    AccessCodeRequestError,
    InternalServerError,
    LogoutError,
    TokenRequestError,
)
from .models import iso_ms
from .schema import GraphQLContext
from .state import body_text

RATE_LIMIT_BODY = {
    "error": {
        "message": (
            "You have sent too many requests. You are being rate limited. Please try again later."
        ),
        "code": "RATE_LIMIT_ERROR",
    }
}
NO_CACHE_HEADERS = {"Cache-Control": "no-cache, no-store", "Expires": "0", "Pragma": "no-cache"}


class AccessCodeHandler(ApiHandler):
    """``GET /auth/accesscode`` (§1.3), the call behind the consent page's Allow."""

    async def get(self) -> None:
        query = parse_qs(self.request.query, keep_blank_values=True)

        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        token = first("token")
        if token:
            await self.pause(self.opts.auth_latency_s)
        try:
            redirect_url = self.state.request_access_code(first("appId"), first("challenge"), token)
        except AccessCodeRequestError as err:
            self.send_text(400, err.message)
            return
        except InternalServerError as err:
            self.send_text(500, err.message)
            return
        # `!!req.query.preventRedirect`: any non-empty value, even "false".
        if any(query.get("preventRedirect", [])):
            self.send_json(200, {"redirectUrl": redirect_url})
        else:
            self.express_redirect(redirect_url)


class TokenHandler(ApiHandler):
    """``POST /auth/token``: code exchange (§2.2) and refresh (§3.1); failures 401."""

    async def post(self) -> None:
        body = self.body_fields()
        await self.pause(self.opts.exchange_latency_s)
        try:
            pair = self.state.token_request(body)
        except TokenRequestError as err:
            self.send_json(401, {"err": err.message})
            return
        if "refreshToken" in body:
            for name, value in NO_CACHE_HEADERS.items():
                self.set_header(name, value)
        self.send_json(200, pair.as_json())


class LogoutHandler(ApiHandler):
    """``POST /auth/logout`` (§3.2)."""

    async def post(self) -> None:
        body = self.body_fields()
        try:
            self.state.logout(body.get("token"), body.get("refreshToken"))
        except LogoutError as err:
            self.send_text(400, err.message)
            return
        self.send_json(200, {"message": "You have logged out."})


class OAuthTokenHandler(ApiHandler):
    """``/oauth/token``: Express's 404 (§13.7) unless the S256 switch is on (§2.1)."""

    async def get(self) -> None:
        if not self.opts.oauth_s256:
            self._not_found()
            return
        # The SDK's probe only looks at the status; the body is ours.
        self.send_json(200, {"codeChallengeMethodsSupported": ["S256"]})

    async def post(self) -> None:
        if not self.opts.oauth_s256:
            self._not_found()
            return
        body = self.body_fields()
        await self.pause(self.opts.exchange_latency_s)
        try:
            pair = self.state.exchange_s256(
                body_text(body.get("appId")),
                body_text(body.get("accessCode")),
                body_text(body.get("codeVerifier")),
            )
        except TokenRequestError as err:
            self.send_json(401, {"err": err.message})
            return
        self.send_json(200, pair.as_json())

    def _not_found(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(express_404(self.request.method or "GET", self.request.path))


class NotFoundHandler(ApiHandler):
    """Any other route: the global token check still runs first, then Express's 404."""

    faultable = False

    async def prepare(self) -> None:
        await super().prepare()
        if not self._finished and self.request.method != "OPTIONS":
            self.set_status(404)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(express_404(self.request.method or "GET", self.request.path))


class GraphQLHandler(ApiHandler):
    """``/graphql`` (and ``/graphql/<anything>``): Apollo Server 4 behind Speckle's limiter."""

    async def get(self, *_rest: str) -> None:
        if prefers_html(self.request.headers.get("Accept")):
            # Apollo's landing page comes before its CSRF check.
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(LANDING_PAGE)
            return
        self._serve(self.request.query, "GET")

    async def post(self, *_rest: str) -> None:
        payload: object = self.json_body
        if payload is None:
            payload = self.body_fields() or None
        self._serve(payload, "POST")

    async def put(self, *_rest: str) -> None:
        self._serve(None, "PUT")

    async def patch(self, *_rest: str) -> None:
        self._serve(None, "PATCH")

    async def delete(self, *_rest: str) -> None:
        self._serve(None, "DELETE")

    def _serve(self, payload: object, method: str) -> None:
        if not self._within_rate_limit(operations_in(payload)):
            return
        headers = {name: self.request.headers.get(name, "") for name in PREFLIGHT_HEADERS}
        if csrf_blocked({**headers, "Content-Type": self.content_type}):
            self._answer(
                Answer(
                    400,
                    {"errors": [{"message": CSRF_MESSAGE, "extensions": {"code": "BAD_REQUEST"}}]},
                )
            )
            return
        context = GraphQLContext(
            state=self.state, auth=self.auth, sso_session_lapsed=self.opts.sso_session_lapsed
        )
        accept = self.request.headers.get("Accept")
        self._answer(run_graphql(payload, method=method, context=context, accept=accept))

    def _answer(self, answer: Answer) -> None:
        self.set_status(answer.status)
        self.set_header(
            "Content-Type", answer.headers.pop("Content-Type", "application/json; charset=utf-8")
        )
        for name, value in answer.headers.items():
            self.set_header(name, value)
        self.finish(answer.text())

    def _within_rate_limit(self, points: int) -> bool:
        limit = self.opts.rate_limit
        if limit is None:
            return True
        source = self.auth.user_id if self.auth else f"ip:{self.request.remote_ip}"
        now = time.time()
        decision = self.runtime.limiter.consume(
            source, points, limit=limit.requests, window_s=limit.per_seconds, now_s=now
        )
        if decision.allowed:
            self.set_header("X-RateLimit-Remaining", str(decision.remaining))
            return True
        wait = max(decision.reset_at_s - now, 0.001)
        self.set_status(429)
        self.set_header("Retry-After", f"{wait:.3f}".rstrip("0").rstrip("."))
        self.set_header("X-RateLimit-Reset", iso_ms(decision.reset_at_s * 1000))
        self.set_header("X-Speckle-Meditation", "https://http.cat/429")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(RATE_LIMIT_BODY, separators=(",", ":")))
        return False
