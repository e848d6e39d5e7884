"""Helpers for the server-extension tests: a Speckle double, a fake clock, a browser player.

The Speckle side is ``FakeSpeckle``, a small in-memory double reached through an
``httpx.MockTransport`` that the extension's ``http_transport`` trait injects: it keeps the
wire rules the extension depends on (plain vs S256 challenge, single-use codes, the 401
``{"err"}`` words, activeUser, logout). The full flow against the real dev server lives in
``test_server_devserver.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import httpx
from tornado.httpclient import HTTPResponse

from speckle_nb._names import KERNEL_KEY_ENV, KERNEL_KEY_HEADER
from speckle_nb.oauth import s256
from speckle_nb.server.flows import pickup_hash

APP_ID = "a1b2c3d4e5"
#: Distinctive values, so a leak into a page or a log line is easy to find.
APP_SECRET = "app-secret-" + "5ec7e7" * 6
SPECKLE_URL = "http://speckle.test"
OTHER_SPECKLE_URL = "http://other-speckle.test"
USER = {
    "id": "u1",
    "name": "Demo <b>User</b>",
    "email": "demo@example.org",
    "avatar": None,
    "company": "ACME",
    "role": "server:user",
}


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2 + 1)[:n]


@dataclass
class FakeSpeckle:
    """Just enough of a Speckle server for the extension: see the module docstring."""

    s256: bool = False
    app_secret: str = APP_SECRET
    unreachable: bool = False
    graphql_status: int = 200  # anything else: GraphQL answers that status with a text body
    explode: bool = False  # raise a bug (not a network error) inside the HTTP client
    #: ``app(id:) { redirectUrl }`` answers this (None: not answered, like a failing lookup)
    registered_redirect: str | None = None
    has_app: bool = True  # False: ``app(id:)`` is null (no such app on this server)
    user: dict[str, Any] = field(default_factory=lambda: dict(USER))
    codes: dict[str, str] = field(default_factory=dict)  # code -> challenge
    tokens: dict[str, str] = field(default_factory=dict)  # token -> refresh token
    issued: list[str] = field(default_factory=list)  # every token and refresh token given out
    calls: list[str] = field(default_factory=list)  # "METHOD /path"

    def __deepcopy__(self, memo: Any) -> FakeSpeckle:
        # traitlets deep-copies config values; the transport must keep talking to this double
        return self

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def mint_code(self, challenge: str) -> str:
        """What Speckle does when the user clicks Authorize for ``challenge``."""
        code = _hex(42)
        self.codes[code] = challenge
        return code

    def _issue(self) -> httpx.Response:
        token, refresh = _hex(42), _hex(42)
        self.tokens[token] = refresh
        self.issued += [token, refresh]
        return httpx.Response(200, json={"token": token, "refreshToken": refresh})

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append(f"{request.method} {path}")
        if self.unreachable:
            raise httpx.ConnectError("connection refused", request=request)
        if self.explode:
            raise RuntimeError("a bug somewhere below the handler")
        body = json.loads(request.content) if request.content else {}
        if path == "/oauth/token" and request.method == "GET":
            if self.s256:
                return httpx.Response(200, json={})
            return httpx.Response(
                404, text="Cannot GET /oauth/token", headers={"Content-Type": "text/html"}
            )
        if path == "/auth/token":
            if "refreshToken" in body:
                if body.get("appSecret") != self.app_secret:
                    return httpx.Response(401, json={"err": "Invalid request"})
                if body["refreshToken"] not in self.tokens.values():
                    return httpx.Response(401, json={"err": "Invalid request"})
                return self._issue()
            challenge = self.codes.pop(body.get("accessCode", ""), None)
            if challenge is None:
                return httpx.Response(401, json={"err": "Access code not found."})
            if challenge != body.get("challenge"):
                return httpx.Response(
                    401,
                    json={
                        "err": "Code challenge mismatch. Ensure the same challenge is used for "
                        "authentication and token exchange."
                    },
                )
            if body.get("appSecret") != self.app_secret:
                return httpx.Response(
                    401, json={"err": "Invalid app secret. Ensure the app secret is correct."}
                )
            return self._issue()
        if path == "/oauth/token" and request.method == "POST" and self.s256:
            challenge = self.codes.pop(body.get("accessCode", ""), None)
            if challenge is None or s256(body.get("codeVerifier", "")) != challenge:
                return httpx.Response(401, json={"err": "Access code not found."})
            return self._issue()
        if path == "/graphql" and self.graphql_status != 200:
            return httpx.Response(self.graphql_status, text="boom")
        if path == "/graphql" and "app(id:" in str(body.get("query", "")):
            if not self.has_app:
                return httpx.Response(200, json={"data": {"app": None}})
            if self.registered_redirect is not None:
                app = {"redirectUrl": self.registered_redirect}
                return httpx.Response(200, json={"data": {"app": app}})
        if path == "/graphql":
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                return httpx.Response(403, json={"error": "Your token is not valid."})
            return httpx.Response(200, json={"data": {"activeUser": self.user}})
        if path == "/auth/logout":
            if self.tokens.pop(body.get("token", ""), None) is None:
                return httpx.Response(400, text="Something went wrong while trying to logout.")
            return httpx.Response(200, json={"message": "You have logged out."})
        return httpx.Response(404, text=f"Cannot {request.method} {path}")


class FakeClock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---------------------------------------------------------------------- browser helpers


@dataclass
class Kernel:
    """A kernel's side of one sign-in: the request id and the pickup secret."""

    request_id: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def pickup(self) -> str:
        return pickup_hash(self.secret)

    def start_params(self, **extra: str) -> dict[str, str]:
        return {"request": self.request_id, "pickup": self.pickup, **extra}


Fetch = Callable[..., Awaitable[HTTPResponse]]


def set_cookies(response: HTTPResponse) -> dict[str, Any]:
    """The response's Set-Cookie headers, parsed (name -> Morsel)."""
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        jar.load(header)
    return dict(jar)


def raw_set_cookie(response: HTTPResponse, name: str) -> str:
    for header in response.headers.get_list("Set-Cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}")


@dataclass
class Browser:
    """Plays a browser against ``jp_fetch``: keeps the flow cookie, stops at redirects."""

    fetch: Fetch
    cookies: dict[str, str] = field(default_factory=dict)
    #: A browser sends ``Sec-Fetch-Site`` with every navigation; the panel's button opens
    #: ``start`` from the notebook's own page: same-origin.
    headers: dict[str, str] = field(default_factory=lambda: {"Sec-Fetch-Site": "same-origin"})

    async def get(self, path: str, params: dict[str, str] | None = None, **kw: Any) -> HTTPResponse:
        """``headers=`` adds to (or, with None values, removes from) the browser's own."""
        merged: dict[str, str | None] = {**self.headers, **kw.pop("headers", {})}
        headers = {k: v for k, v in merged.items() if v is not None}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.fetch(
            *path.split("/"),
            params=params,
            headers=headers,
            follow_redirects=False,
            raise_error=False,
            **kw,
        )
        for name, morsel in set_cookies(response).items():
            if morsel["max-age"] == "0" or morsel.value == "" or "1970" in morsel["expires"]:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value
        return response

    async def start(
        self, kernel: Kernel, *, headers: dict[str, str | None] | None = None, **extra: str
    ) -> HTTPResponse:
        return await self.get(
            "speckle-nb/start", kernel.start_params(**extra), headers=headers or {}
        )

    async def callback(self, query: dict[str, str]) -> HTTPResponse:
        return await self.get("speckle-nb/callback", query)


def authorize_url_of(response: HTTPResponse) -> str:
    """Where ``start``'s page sends the browser (a meta refresh, never a 302: see pages.py)."""
    assert response.code == 200, response.body
    assert "Location" not in response.headers
    match = re.search(rb'http-equiv="refresh" content="0;url=([^"]+)"', response.body)
    assert match, response.body
    return html.unescape(match.group(1).decode())


def challenge_of(response: HTTPResponse) -> str:
    """The challenge in the ``/authn/verify/{app}/{challenge}`` URL ``start`` moves on to."""
    location = authorize_url_of(response)
    match = re.fullmatch(r"/authn/verify/([^/]+)/([^/?]+)", urlsplit(location).path)
    assert match, location
    return match.group(2)


def kernel_headers(kernel_key: str | None = None) -> dict[str, str]:
    """What a kernel of the server under test sends: no Jupyter login, the server's kernel key
    (which the extension put in this process's environment, as kernels inherit it)."""
    key = os.environ[KERNEL_KEY_ENV] if kernel_key is None else kernel_key
    return {"Authorization": "", KERNEL_KEY_HEADER: key}


async def pickup(
    fetch: Fetch,
    kernel: Kernel,
    *,
    hold: float = 0,
    action: str = "wait",
    secret: str | None = None,
) -> tuple[int, dict[str, Any], HTTPResponse]:
    """The kernel's POST pickup, sent *without* Jupyter credentials, with the kernel key."""
    body = {
        "request": kernel.request_id,
        "secret": kernel.secret if secret is None else secret,
        "hold": hold,
        "action": action,
    }
    response = await fetch(
        "speckle-nb",
        "pickup",
        method="POST",
        body=json.dumps(body),
        headers=kernel_headers(),
        raise_error=False,
    )
    return response.code, json.loads(response.body), response


async def sign_in(browser: Browser, speckle: FakeSpeckle, kernel: Kernel) -> HTTPResponse:
    """start → (the user authorizes on Speckle) → callback; returns the callback response."""
    started = await browser.start(kernel)
    assert started.code == 200, started.body
    code = speckle.mint_code(challenge_of(started))
    return await browser.callback({"access_code": code})


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds: an observable state, not a guessed delay."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        await asyncio.sleep(0.005)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
