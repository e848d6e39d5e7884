"""``DevServer``: the routes, and three ways to run them (own thread, current loop, CLI)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType

import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from .base import Runtime
from .handlers import (
    AccessCodeHandler,
    GraphQLHandler,
    LogoutHandler,
    NotFoundHandler,
    OAuthTokenHandler,
    TokenHandler,
)
from .options import DevOptions
from .page_handlers import HomeHandler, LoginHandler, LogoutPageHandler, VerifyHandler
from .ratelimit import RateLimiter
from .state import DevState, User

log = logging.getLogger("speckle_nb.devserver")


def make_app(runtime: Runtime) -> tornado.web.Application:
    """Routes match case-insensitively, with an optional trailing slash (§13.12)."""
    args = {"runtime": runtime}
    routes = [
        (r"(?i)/auth/accesscode/?", AccessCodeHandler, args),
        (r"(?i)/auth/token/?", TokenHandler, args),
        (r"(?i)/auth/logout/?", LogoutHandler, args),
        (r"(?i)/oauth/token/?", OAuthTokenHandler, args),
        (r"(?i)/graphql(/.*)?", GraphQLHandler, args),
        (r"(?i)/authn/login/?", LoginHandler, args),
        (r"(?i)/authn/logout/?", LogoutPageHandler, args),
        (r"(?i)/authn/verify/([^/]+)/([^/]+)/?", VerifyHandler, args),
        (r"/", HomeHandler, args),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=args,
        # Each request is logged by BaseHandler.finish, before its answer leaves.
        log_function=lambda handler: None,
    )


class DevServer:
    """A Speckle-compatible server on loopback.

    ``url`` uses the name ``localhost`` on purpose: run Jupyter on ``127.0.0.1`` and the
    two are different *sites*, so cookies follow the same SameSite rules as against a
    real Speckle server.
    """

    def __init__(
        self,
        *,
        options: DevOptions | None = None,
        state: DevState | None = None,
        host: str = "localhost",
        port: int = 0,
    ) -> None:
        self.options = options or DevOptions()
        self.state = state or DevState()
        self._host = host
        self._port = port
        self._runtime = Runtime(
            state=self.state,
            options=self.options,
            limiter=RateLimiter(),
            csrf_key=secrets.token_bytes(32),
        )
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self.url = ""

    @property
    def demo_user(self) -> User:
        return self.state.demo_user

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1]) if self.url else 0

    # -- in the current event loop ---------------------------------------------------------

    async def start_async(self) -> DevServer:
        """Serve from the running event loop (e.g. inside an async test)."""
        self._listen()
        return self

    async def stop_async(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=2)
        except asyncio.TimeoutError:
            log.warning("dev server: connections still open at shutdown")

    async def __aenter__(self) -> DevServer:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_async()

    def _listen(self) -> None:
        if self._server is not None:
            raise RuntimeError("this DevServer is already running")
        # Port 0 on "localhost" binds 127.0.0.1 and ::1 (when present) on one free port.
        sockets = bind_sockets(self._port, self._host)
        self._server = HTTPServer(make_app(self._runtime))
        self._server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        self.state.set_server_url(self.url)

    # -- in a thread of its own --------------------------------------------------------------

    def start(self) -> DevServer:
        """Serve from a new thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("this DevServer is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            try:
                self._loop = asyncio.get_running_loop()
                self._stop_requested = asyncio.Event()
                self._listen()
            except BaseException as err:
                failure.append(err)
                raise
            finally:
                ready.set()
            await self._stop_requested.wait()
            await self.stop_async()

        def run() -> None:
            try:
                asyncio.run(serve())
            except Exception:
                if not failure:
                    log.exception("dev server thread stopped with an error")

        self._thread = threading.Thread(target=run, name="speckle-devserver", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop the thread started by ``start``; in-flight slow requests are cancelled."""
        thread, self._thread = self._thread, None
        if thread is None:
            if self._server is not None:
                # Started by start_async: stop listening now; stop_async also closes
                # the open connections.
                self._server.stop()
                self._server = None
            return
        loop, event = self._loop, self._stop_requested
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        thread.join(timeout=10)

    @contextmanager
    def running(self) -> Iterator[DevServer]:
        """``with DevServer().running() as dev:`` — started now, stopped on exit."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # -- forever (the CLI) ---------------------------------------------------------------------

    @classmethod
    def serve_forever(
        cls,
        port: int = 3000,
        *,
        options: DevOptions | None = None,
        state: DevState | None = None,
        host: str = "localhost",
        ready: Callable[[DevServer], None] | None = None,
    ) -> None:
        """Serve until interrupted; ``ready`` is called once the server is listening."""
        server = cls(options=options, state=state, host=host, port=port)

        async def main() -> None:
            await server.start_async()
            if ready is not None:
                ready(server)
            try:
                await asyncio.Event().wait()
            finally:
                await server.stop_async()

        with suppress(KeyboardInterrupt):
            asyncio.run(main())
