"""Speckle's app sign-in protocol: pure builders and parsers, and a thin httpx layer.

What the released server does (see ``docs/protocol.md``): the browser visits
``{server}/authn/verify/{appId}/{challenge}``; Speckle redirects to the app's one registered
URL with ``?access_code=`` (or ``denied=true``); the app exchanges the code at
``POST /auth/token`` with ``{appId, appSecret, accessCode, challenge}``, where the challenge
is compared as plain text. A newer ``/oauth/token`` endpoint (S256, no secret) is probed with
``GET``: a 200 means the server has it, anything else means the legacy flow.

Each operation is written once, as a generator that yields ``httpx.Request`` objects and
receives ``httpx.Response`` objects (no I/O, like ``httpx.Auth.auth_flow``); ``AuthClient``
and ``AsyncAuthClient`` drive the same generators. No request to ``/auth/*`` ever carries
an ``Authorization`` header: the server answers 403 to a stale one before the route runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from ._graphql_core import parse_retry_after
from .credentials import mask_secret, normalize_server_url
from .errors import (
    ConfigurationError,
    InvalidTokenError,
    LogoutError,
    RateLimitedError,
    ServerError,
    TokenExchangeError,
    TransportError,
)

__all__ = [
    "App",
    "AsyncAuthClient",
    "AuthClient",
    "CallbackParams",
    "Challenge",
    "Method",
    "TokenPair",
    "authorize_url",
    "new_challenge",
    "parse_callback_url",
    "s256",
]

Method = Literal["plain", "S256"]
T = TypeVar("T")
Flow = Generator[httpx.Request, httpx.Response, T]

#: The server keeps the challenge in a 255-character column (longer → HTTP 500); 43 is safe.
_VERIFIER_BYTES = 32
_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class App:
    """A Speckle app registration: where it lives and how it proves itself."""

    server_url: str
    app_id: str
    app_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "server_url", normalize_server_url(self.server_url))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not self.app_id or "/" in self.app_id:
            raise ConfigurationError(
                "The Speckle app id is missing or malformed. Set SPECKLE_APP_ID (or "
                "c.SpeckleNB.app_id) to the id shown on the server's Developer settings page."
            )

    def __repr__(self) -> str:
        return (
            f"App(server_url={self.server_url!r}, app_id={self.app_id!r}, "
            f"app_secret={'<set>' if self.app_secret else '<none>'})"
        )


@dataclass(frozen=True)
class Challenge:
    """One sign-in's proof. ``verifier`` stays with us; ``challenge`` goes in the browser URL.

    For ``plain`` they are the same string (the released server compares it verbatim).
    """

    method: Method
    verifier: str = field(repr=False)
    challenge: str = field(repr=False)


@dataclass(frozen=True)
class TokenPair:
    """What a successful exchange or refresh returns."""

    token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"TokenPair(token={mask_secret(self.token)!r}, refresh_token=<hidden>)"


@dataclass(frozen=True)
class CallbackParams:
    """What Speckle appended to the redirect URL: an access code, or a denial."""

    access_code: str | None = field(default=None, repr=False)
    denied: bool = False


# --------------------------------------------------------------------------- pure functions


def s256(verifier: str) -> str:
    """base64url(SHA-256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_challenge(method: Method = "plain") -> Challenge:
    """A fresh random verifier (43 URL-safe characters) and its challenge for ``method``."""
    verifier = secrets.token_urlsafe(_VERIFIER_BYTES)
    return Challenge(method, verifier, verifier if method == "plain" else s256(verifier))


def authorize_url(app: App, challenge: Challenge) -> str:
    """``{server}/authn/verify/{appId}/{challenge}`` — both values are path segments."""
    url = (
        f"{app.server_url}/authn/verify/{quote(app.app_id, safe='')}/"
        f"{quote(challenge.challenge, safe='')}"
    )
    return url + "?code_challenge_method=S256" if challenge.method == "S256" else url


def parse_callback_url(url_or_query: str) -> CallbackParams:
    """Read ``access_code`` / ``denied`` from a redirect URL (or just its query string).

    Speckle joins ``?access_code=`` to the registered URL as plain text, so a registered URL
    that has a query already yields two ``?``; both ``&`` and ``?`` separate parameters here.
    """
    text = url_or_query.strip()
    query = urlsplit(text).query if "://" in text else text.lstrip("?")
    params = parse_qs(query.replace("?", "&"), keep_blank_values=True)
    if params.get("denied", [""])[-1].lower() == "true":
        return CallbackParams(denied=True)
    code = params.get("access_code", [""])[-1].strip()
    return CallbackParams(access_code=code or None)


def _post_json(url: str, body: dict[str, Any]) -> httpx.Request:
    return httpx.Request("POST", url, headers=_JSON_HEADERS, content=json.dumps(body).encode())


def probe_request(server_url: str) -> httpx.Request:
    """``GET /oauth/token``: 200 on servers with the S256 endpoint; 404 on released servers."""
    return httpx.Request("GET", f"{server_url}/oauth/token", headers={"Accept": "application/json"})


def exchange_request(app: App, access_code: str, challenge: Challenge) -> httpx.Request:
    """The code exchange for the challenge's method (S256 needs no secret)."""
    if challenge.method == "S256":
        return _post_json(
            f"{app.server_url}/oauth/token",
            {"appId": app.app_id, "accessCode": access_code, "codeVerifier": challenge.verifier},
        )
    return _post_json(
        f"{app.server_url}/auth/token",
        {
            "appId": app.app_id,
            "appSecret": _require_secret(app),
            "accessCode": access_code,
            "challenge": challenge.challenge,
        },
    )


def refresh_request(app: App, refresh_token: str) -> httpx.Request:
    return _post_json(
        f"{app.server_url}/auth/token",
        {"appId": app.app_id, "appSecret": _require_secret(app), "refreshToken": refresh_token},
    )


def logout_request(server_url: str, token: str, refresh_token: str | None = None) -> httpx.Request:
    body = {"token": token} | ({"refreshToken": refresh_token} if refresh_token else {})
    return _post_json(f"{server_url}/auth/logout", body)


def _require_secret(app: App) -> str:
    if not app.app_secret:
        raise ConfigurationError(
            f"The app secret for {app.app_id!r} on {app.server_url} is not set. This server "
            "needs it to exchange codes: set SPECKLE_APP_SECRET (or c.SpeckleNB.app_secret)."
        )
    return app.app_secret


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def raise_for_common(response: httpx.Response, server_url: str) -> None:
    """Statuses every Speckle route shares: 403 invalid token, 429, 5xx."""
    status = response.status_code
    body = _json_or_none(response)
    if status == 403 and isinstance(body, dict) and isinstance(body.get("error"), str):
        raise InvalidTokenError(
            f"{server_url} refused the token: {body['error']} Sign in again with "
            "`speckle_nb.sign_in()` or set a new personal access token.",
            server_url=server_url,
            server_message=body["error"],
        )
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        raise RateLimitedError(
            f"{server_url} is rate limiting requests"
            + (f"; try again in {wait:g} s." if wait is not None else "; try again shortly."),
            server_url=server_url,
            retry_after=wait,
        )
    if status >= 500:
        raise ServerError(
            f"{server_url} had an internal error (HTTP {status}). Try again in a moment; if it "
            "persists, the server's administrators need to know.",
            server_url=server_url,
            status_code=status,
        )


def parse_probe_response(response: httpx.Response) -> bool:
    """True only for a plain 200: a 404, a 405 or a front-end page all mean "legacy server"."""
    content_type = response.headers.get("Content-Type", "")
    return response.status_code == 200 and "html" not in content_type


def parse_token_response(
    response: httpx.Response, server_url: str, *, renewing: bool = False
) -> TokenPair:
    """``{"token", "refreshToken"}`` on 200; the server's ``{"err": …}`` words otherwise.

    ``renewing``: the request renewed a token (no sign-in was under way, so the message must
    not speak of one)."""
    raise_for_common(response, server_url)
    body = _json_or_none(response)
    if response.status_code == 200:
        if isinstance(body, dict) and isinstance(body.get("token"), str) and body["token"]:
            refresh = body.get("refreshToken")
            return TokenPair(body["token"], refresh if isinstance(refresh, str) else None)
        raise ServerError(
            f"{server_url} answered the token request without a token. Is this a Speckle server?",
            server_url=server_url,
            status_code=200,
        )
    message = _server_words(body) or f"HTTP {response.status_code}"
    # The server's words are quoted and closed off, so they never run into our next step.
    said = f'"{message}"' + ("" if message.endswith((".", "!", "?")) else ".")
    if renewing:
        text = (
            f"{server_url} refused to renew the token; it said: {said} The refresh token was "
            "revoked or has expired, or the app's secret changed. Sign in again with "
            "`speckle_nb.sign_in()`."
        )
    else:
        text = f"{server_url} refused the sign-in; it said: {said} {_exchange_hint(message)}"
    raise TokenExchangeError(
        text,
        server_url=server_url,
        status_code=response.status_code,
        server_message=message,
    )


def _server_words(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    for key in ("err", "message", "error"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return str(value["message"])
    return None


def _exchange_hint(message: str) -> str:
    """The next step for the server's refusal (its words name the cause)."""
    lowered = message.lower()
    if "secret" in lowered or "invalid app" in lowered or "application id" in lowered:
        return "Check the app id and secret in the configuration."
    if "refresh" in lowered or lowered in ("invalid request", "invalid token"):
        return "Sign in again with `speckle_nb.sign_in()`."
    return "Start the sign-in again (click 'Try again')."


def parse_logout_response(response: httpx.Response, server_url: str) -> None:
    raise_for_common(response, server_url)
    if response.status_code != 200:
        text = response.text.strip()[:200] or f"HTTP {response.status_code}"
        raise LogoutError(
            f"{server_url} did not revoke the token: {text} (it may be revoked already).",
            server_url=server_url,
            status_code=response.status_code,
            server_message=text,
        )


# --------------------------------------------------------------------------- flows (no I/O)


def probe_flow(server_url: str) -> Flow[bool]:
    response = yield probe_request(server_url)
    return parse_probe_response(response)


def exchange_flow(app: App, access_code: str, challenge: Challenge) -> Flow[TokenPair]:
    response = yield exchange_request(app, access_code, challenge)
    return parse_token_response(response, app.server_url)


def refresh_flow(app: App, refresh_token: str) -> Flow[TokenPair]:
    response = yield refresh_request(app, refresh_token)
    return parse_token_response(response, app.server_url, renewing=True)


def logout_flow(server_url: str, token: str, refresh_token: str | None) -> Flow[None]:
    response = yield logout_request(server_url, token, refresh_token)
    parse_logout_response(response, server_url)


# --------------------------------------------------------------------------- thin I/O


def _transport_error(server_url: str, exc: httpx.HTTPError) -> TransportError:
    kind = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "is unreachable"
    return TransportError(
        f"{server_url} {kind} ({type(exc).__name__}). Check the server URL and your network, "
        "then try again.",
        server_url=server_url,
    )


def _server_of(request: httpx.Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"


class AuthClient:
    """Runs the auth flows over one ``httpx.Client`` (inject ``transport`` in tests)."""

    def __init__(
        self, *, timeout: float = 15.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def _run(self, flow: Flow[T]) -> T:
        request = next(flow)
        while True:
            try:
                response = self._http.send(request)
                response.read()
            except httpx.HTTPError as exc:
                raise _transport_error(_server_of(request), exc) from None
            try:
                request = flow.send(response)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def supports_s256(self, server_url: str) -> bool:
        return self._run(probe_flow(server_url))

    def exchange(self, app: App, access_code: str, challenge: Challenge) -> TokenPair:
        return self._run(exchange_flow(app, access_code, challenge))

    def refresh(self, app: App, refresh_token: str) -> TokenPair:
        return self._run(refresh_flow(app, refresh_token))

    def logout(self, server_url: str, token: str, refresh_token: str | None = None) -> None:
        self._run(logout_flow(server_url, token, refresh_token))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAuthClient:
    """The same flows over one ``httpx.AsyncClient``."""

    def __init__(
        self, *, timeout: float = 15.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)

    async def _run(self, flow: Flow[T]) -> T:
        request = next(flow)
        while True:
            try:
                response = await self._http.send(request)
                await response.aread()
            except httpx.HTTPError as exc:
                raise _transport_error(_server_of(request), exc) from None
            try:
                request = flow.send(response)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def supports_s256(self, server_url: str) -> bool:
        return await self._run(probe_flow(server_url))

    async def exchange(self, app: App, access_code: str, challenge: Challenge) -> TokenPair:
        return await self._run(exchange_flow(app, access_code, challenge))

    async def refresh(self, app: App, refresh_token: str) -> TokenPair:
        return await self._run(refresh_flow(app, refresh_token))

    async def logout(self, server_url: str, token: str, refresh_token: str | None = None) -> None:
        await self._run(logout_flow(server_url, token, refresh_token))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAuthClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
