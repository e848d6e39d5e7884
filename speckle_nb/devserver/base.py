"""What every dev-server handler shares: headers, safe logging, and the API pipeline.

The API pipeline runs in Express's order before any route: the fault switch (a
proxy in front), body parsing (400 ``USER_INPUT_ERROR``), the global token check
(403 ``Your token is not valid.``, so a stale header never reaches ``/auth/token``
and never burns a code), then the latency switch. Each request is counted first
(``DevState.request_count``), so tests can see how many requests a client sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

import tornado.web

from .express import encode_url, express_404, redirect_body
from .jsjson import JsonBodyError, parse_body
from .options import DevOptions
from .ratelimit import RateLimiter
from .state import DevState, TokenInfo

log = logging.getLogger("speckle_nb.devserver")

INVALID_TOKEN_BODY = {"error": "Your token is not valid."}
PROXY_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
MALFORMED_JSON = '{"data":{"activeUser":{"id":"5f3c'
_CHALLENGE_IN_PATH = re.compile(r"(?i)^(/authn/verify/[^/]+/)[^/]+")


@dataclass
class Runtime:
    """One running server's shared objects, handed to every handler."""

    state: DevState
    options: DevOptions
    limiter: RateLimiter = field(default_factory=RateLimiter)
    csrf_key: bytes = b""
    # Node's bcrypt thread pool: made on first use, inside the server's loop, and again
    # when `token_checks_at_once` changes on a running server.
    token_checks: asyncio.Semaphore | None = None
    token_checks_size: int = 0

    def token_check_slots(self) -> asyncio.Semaphore:
        size = max(1, self.options.token_checks_at_once)
        if self.token_checks is None or size != self.token_checks_size:
            self.token_checks, self.token_checks_size = asyncio.Semaphore(size), size
        return self.token_checks


class BaseHandler(tornado.web.RequestHandler):
    runtime: Runtime

    def initialize(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def state(self) -> DevState:
        return self.runtime.state

    @property
    def opts(self) -> DevOptions:
        # Not `options`: that name is tornado's handler for the OPTIONS method.
        return self.runtime.options

    def set_default_headers(self) -> None:
        # Both the API and the web app forbid framing (§1.2): sign-in needs a real window.
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.clear_header("Server")

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        # Logged before the answer leaves, not after (tornado's log_function): a client that
        # holds an answer can rely on its line being written, so tests that count requests
        # from the log never see a late line of an earlier request.
        if not self._finished:
            request = self.request
            # Method and path only: queries carry tokens (/auth/accesscode?token=…) and the
            # verify path carries the challenge, so neither is ever written down.
            path = _CHALLENGE_IN_PATH.sub(r"\1…", request.path)
            log.info(
                "%d %s %s %.1fms",
                self.get_status(),
                request.method,
                path,
                1000 * request.request_time(),
            )
        return super().finish(chunk)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # tornado's default logs the request (query string, headers): tokens would leak.
        if isinstance(value, tornado.web.HTTPError):
            return
        log.error(
            "%s %s failed: %s",
            self.request.method,
            self.request.path,
            typ.__name__,
            exc_info=(typ, value, tb),
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(self._reason)

    def send_json(self, status: int, body: object) -> None:
        """``res.status(n).json(body)``: compact JSON, Express's content type."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, separators=(",", ":"), ensure_ascii=False))

    def send_text(self, status: int, text: str) -> None:
        """``res.status(n).send('text')``: Express labels a string body as HTML."""
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(text)


class ApiHandler(BaseHandler):
    """Base of the Express API routes (``/auth/*``, ``/oauth/token``, ``/graphql``, 404s)."""

    faultable = True
    auth: TokenInfo | None = None
    json_body: object = None

    def initialize(self, runtime: Runtime) -> None:
        super().initialize(runtime)
        # Express parses only JSON and urlencoded bodies. tornado would also parse a
        # multipart body, and answer a malformed one with its own 400 before any route
        # (or Apollo's CSRF check) runs; hide the type from it and keep the original.
        self.content_type = self.request.headers.get("Content-Type", "")
        if self.content_type.lower().startswith("multipart/"):
            self.request.headers["Content-Type"] = "application/octet-stream"

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Access-Control-Allow-Origin", "*")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            # Express has no "method not allowed": a route without this method is a 404.
            self.set_status(404)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(express_404(self.request.method or "GET", self.request.path))
            return
        super().write_error(status_code, **kwargs)

    def express_redirect(self, url: str) -> None:
        """``res.redirect(url)``: a 302 whose body says where, worded for ``Accept``."""
        location = encode_url(url)
        body, content_type = redirect_body(self.request.headers.get("Accept"), location)
        self.set_status(302)
        self.set_header("Location", location)
        self.set_header("Vary", "Accept")
        if content_type is not None:
            self.set_header("Content-Type", content_type)
        self.finish(body)

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        self.state.count_request(self.request.path)
        if self.faultable and self.opts.fault is not None and await self._fault():
            return
        if not self._parse_json_body():
            return
        if self.opts.latency and self.opts.request_latency_s > 0:
            # What every request costs the real server (middleware, JSON), token or not.
            await asyncio.sleep(self.opts.request_latency_s)
        token = self._token_from_request()
        if token is not None:
            self.auth = self.state.validate_token(token)
            if self.auth is None:
                self.send_json(403, INVALID_TOKEN_BODY)
                return
            await self.pause(self.opts.auth_latency_s)

    def options(self, *_args: str) -> None:
        # The `cors` middleware answers every preflight before auth runs.
        self.set_status(204)
        self.set_header("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
        wanted = self.request.headers.get("Access-Control-Request-Headers")
        if wanted:
            self.set_header("Access-Control-Allow-Headers", wanted)
            self.set_header("Vary", "Access-Control-Request-Headers")
        self.set_header("Content-Length", "0")
        self.finish()

    async def pause(self, seconds: float) -> None:
        """The latency switch for a bcrypt check (token, app secret): sleep without
        blocking other requests, but hold one of the few thread-pool slots meanwhile, so
        that many concurrent checks queue as they do on the real server."""
        if self.opts.latency and seconds > 0:
            async with self.runtime.token_check_slots():
                await asyncio.sleep(seconds)

    def _token_from_request(self) -> str | None:
        """``getTokenFromRequest`` then ``createAuthContextFromToken``, quirks included.

        The first ``Bearer `` is removed, then a remaining ``Bearer x`` keeps its second
        word: ``Bearer Bearer t`` works, and ``Bearer `` (trimmed to ``Bearer``) is an
        invalid token, not anonymous (§13.3, §13.12).
        """
        header = self.request.headers.get("Authorization", "").strip()
        cookie = self.get_cookie("authn") or ""
        raw = (header or cookie).replace("Bearer ", "", 1)
        if not raw:
            return None
        if raw.startswith("Bearer "):
            raw = raw.split(" ")[1]
        return raw

    def _parse_json_body(self) -> bool:
        """``express.json``: only for JSON content types; empty means ``{}``, and a
        malformed body is refused in V8's words (``jsjson``)."""
        if self.content_type.split(";", 1)[0].strip().lower() != "application/json":
            return True
        try:
            self.json_body = parse_body(self.request.body)
        except JsonBodyError as err:
            self.send_json(
                400,
                {
                    "error": {
                        "message": f"Invalid request body: {err.message}",
                        "code": "USER_INPUT_ERROR",
                    }
                },
            )
            return False
        return True

    def body_fields(self) -> dict[str, object]:
        """The parsed body as Express sees it: JSON object, form fields, or nothing."""
        if isinstance(self.json_body, dict):
            return dict(self.json_body)
        if self.json_body is not None:
            return {}
        return {
            key: values[0].decode("utf-8", "replace")
            for key, values in self.request.body_arguments.items()
            if values
        }

    async def _fault(self) -> bool:
        """Apply the fault switch; True when the request was answered (or dropped)."""
        fault = self.opts.fault
        if fault == "slow":
            await asyncio.sleep(self.opts.slow_seconds)
            return False
        if fault == "5xx":
            self.set_status(502)
            self.set_header("Content-Type", "text/html")
            self.finish(PROXY_502)
        elif fault == "malformed":
            self.set_status(200)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(MALFORMED_JSON)
        elif fault == "reset":
            self._reset_connection()
        return True

    def _reset_connection(self) -> None:
        stream = self.request.connection.detach()  # type: ignore[union-attr]
        sock = stream.socket
        if sock is not None:
            # Linger 0 turns close() into a TCP RST: the client sees a reset, not an EOF.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        stream.close()
        # Nothing may be written any more; mark the handler done without a response.
        self._finished = True
