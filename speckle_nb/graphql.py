"""The preconfigured GraphQL client: ``SpeckleClient`` (sync) and ``AsyncSpeckleClient``.

    client = SpeckleClient("https://app.speckle.systems", token)
    client.active_user()                       # -> User
    client.execute("query { serverInfo { name } }")
    for project in client.projects(): ...      # follows the cursor lazily
    client.execute_many([q1, (q2, {"id": x})]) # one HTTP request, one Result each
    with client.batch() as b:                  # the same, written as calls:
        me = b.execute(q1)                     #   me.result() after the block
    client.to_specklepy()                      # a specklepy SpeckleClient, same token

    await asyncio.gather(*(aclient.execute(q) for q in queries))  # one HTTP request

Both clients keep one httpx connection pool for their life (close them, or use ``with`` /
``async with``) and share every decision with the pure core in ``speckle_nb._graphql_core``:
the classes here only perform what its flows ask for (send, sleep, refresh a token).
``AsyncSpeckleClient`` coalesces concurrent ``execute()`` calls (``speckle_nb._coalesce``).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ._coalesce import MAX_BATCH_SIZE, Batch, Coalescer, Deferred, chunked
from ._graphql_base import DEFAULT_TIMEOUT, ClientBase, check_page_size, projects_variables
from ._graphql_core import (
    ACTIVE_USER_QUERY,
    PROJECTS_QUERY,
    SERVER_INFO_QUERY,
    Flow,
    Operation,
    OperationLike,
    Refresh,
    Result,
    Send,
    Sleep,
    operation_of,
    single_body,
    transport_error,
)
from .credentials import Credentials, User
from .errors import SpeckleError

if TYPE_CHECKING:
    # asyncio is imported where it is used: it costs more to import than httpx itself, and
    # most notebooks only ever build the sync client.
    import asyncio

    from specklepy.api.client import SpeckleClient as SpecklepyClient

__all__ = [
    "MAX_BATCH_SIZE",
    "AsyncSpeckleClient",
    "Batch",
    "Deferred",
    "Operation",
    "Result",
    "SpeckleClient",
]

T = TypeVar("T")


class SpeckleClient(ClientBase):
    """A GraphQL client for one Speckle server, authenticated with one token.

    Args:
        server_url: the server, e.g. ``"https://app.speckle.systems"``.
        token: a personal access token or an app token (sent as ``Authorization: Bearer``).
        user: who the token belongs to, if known (shown in the repr).
        timeout: seconds, or an ``httpx.Timeout`` for connect/read/write/pool separately.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
        rate_limit_retries: how many times to wait out an HTTP 429 and retry (default 0: raise
            ``RateLimitedError`` at once). The wait is the server's ``Retry-After``.
        max_retry_wait: the longest ``Retry-After`` to wait for; a longer one raises at once.
        token_refresher: called when the server refuses the token; returns a new one, and
            the call is retried once with it.
        sleep: how to wait for ``Retry-After`` (``time.sleep``; tests inject their own).
        max_batch_size: most operations per request in ``execute_many`` and ``batch()``
            (default and most: 50, Speckle's per-second limit; more are split).

    Errors all derive from ``speckle_nb.SpeckleError``. Use it as a context manager, or call
    ``close()``: it keeps one connection pool open until then.
    """

    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        user: User | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        rate_limit_retries: int = 0,
        max_retry_wait: float = 30.0,
        token_refresher: Callable[[], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_batch_size: int = MAX_BATCH_SIZE,
    ) -> None:
        super().__init__(
            server_url,
            token,
            user=user,
            timeout=timeout,
            rate_limit_retries=rate_limit_retries,
            max_retry_wait=max_retry_wait,
            max_batch_size=max_batch_size,
        )
        self._token_refresher = token_refresher
        self._sleep = sleep
        self._refresh_lock = threading.Lock()
        # Redirects are not followed: a GraphQL endpoint that redirects is misconfigured, and
        # following one could carry the token to another host.
        self._http = httpx.Client(
            headers=self._headers(),
            timeout=self._timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_credentials(cls, credentials: Credentials, **kwargs: Any) -> SpeckleClient:
        """A client for ``credentials`` (server, token and user); ``kwargs`` as for the class."""
        return cls(credentials.server_url, credentials.token, user=credentials.user, **kwargs)

    # ---------------------------------------------------------------- I/O driver

    def _run(self, flow: Flow[T]) -> T:
        self._check_open()
        try:
            step = next(flow)
            while True:
                reply: Any = None
                if isinstance(step, Send):
                    reply = self._send(step.body)
                elif isinstance(step, Sleep):
                    self._sleep(step.seconds)
                elif isinstance(step, Refresh):
                    reply = self._refresh(step.stale)
                step = flow.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            flow.close()

    def _send(self, body: bytes) -> httpx.Response:
        try:
            return self._http.post(self._endpoint, content=body)
        except httpx.TransportError as exc:
            raise transport_error(self._server_url, exc, secret=self._token) from None

    def _refresh(self, stale: str) -> BaseException | None:
        with self._refresh_lock:
            if self._http.headers.get("Authorization") != stale:
                return None  # another thread refreshed while this call was in flight
            try:
                assert self._token_refresher is not None  # call_flow asks only when set
                token = self._token_refresher()
                if not isinstance(token, str) or not token.strip():
                    raise ValueError("the token refresher returned no token")
            except Exception as exc:
                return exc
            self._token = token.strip()
            self._http.headers["Authorization"] = f"Bearer {self._token}"
            return None

    # ---------------------------------------------------------------- public API

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """Run one query or mutation and return its ``data``.

        Raises ``GraphQLError`` (or ``MissingScopeError``, ``ForbiddenError``,
        ``UnauthorizedError``) when the answer carries ``errors`` — partial data is on the
        error's ``.data`` — and ``InvalidTokenError``, ``RateLimitedError``,
        ``TransportError`` or ``ServerError`` when the request itself failed.
        """
        body = single_body(Operation(query, variables, operation_name))
        flow = self._flow(body, self._parse_one, self._token_refresher is not None)
        return self._run(flow).raise_for_errors()

    def execute_many(self, operations: Sequence[OperationLike]) -> list[Result]:
        """Run several operations in **one** HTTP request (one per ``max_batch_size``, 50 by
        default); one ``Result`` each, in order.

        Each item is a query string, a ``(query, variables)`` tuple or an ``Operation``.
        GraphQL errors stay on their own ``Result`` (``.error``, ``.raise_for_errors()``);
        failures of a request as a whole (token, rate limit, transport) raise.
        """
        ops = [operation_of(op) for op in operations]
        results: list[Result] = []
        for chunk in chunked(ops, self._max_batch_size):
            results += self._run(self._operations_flow(chunk, self._token_refresher is not None))
        return results

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Queue ``execute`` calls and send them together when the block ends::

            with client.batch() as b:
                me = b.execute("{ activeUser { name } }")
                info = b.execute("{ serverInfo { version } }")
            me.result()["activeUser"]["name"]   # data, or this operation's own error

        One HTTP request per ``max_batch_size`` operations. A failure of a request as a
        whole (token, rate limit, transport) raises when the block ends, and from
        ``result()`` of each operation it carried. If the block raises, nothing is sent.
        """
        self._check_open()
        batch = Batch()
        try:
            yield batch
        except BaseException:
            batch.fail(SpeckleError("Not sent: the `with client.batch()` block raised."))
            raise
        results: list[Result] = []
        try:
            for chunk in chunked(batch.operations(), self._max_batch_size):
                flow = self._operations_flow(chunk, self._token_refresher is not None)
                results += self._run(flow)
        except Exception as exc:
            batch.fill(results)
            batch.fail(exc)
            raise
        batch.fill(results)

    def active_user(self) -> User:
        """The user the token belongs to (needs the ``profile:read`` scope)."""
        return self._user_from(self.execute(ACTIVE_USER_QUERY))

    def server_info(self) -> dict[str, Any]:
        """The server's ``serverInfo``: name, company, version, public scopes, …"""
        info: dict[str, Any] = self.execute(SERVER_INFO_QUERY)["serverInfo"]
        return info

    def projects(
        self, page_size: int = 25, *, search: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The signed-in user's projects, one dict each, fetched ``page_size`` at a time.

        Lazy: a page is requested only when the previous one is used up.
        ``search`` filters by name on the server.
        """
        check_page_size(page_size)
        return self._iter_projects(page_size, search)

    def _iter_projects(self, page_size: int, search: str | None) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            variables = projects_variables(page_size, search, cursor)
            items, cursor = self._projects_page(self.execute(PROJECTS_QUERY, variables), cursor)
            yield from items
            if cursor is None:
                return

    def to_specklepy(self) -> SpecklepyClient:
        """A specklepy ``SpeckleClient`` for the same server, authenticated with the same token.

        Needs the ``speckle-nb[specklepy]`` extra (Python ≥ 3.11).
        """
        self._check_open()
        return self._specklepy_client()

    def close(self) -> None:
        """Close the connection pool. Further calls raise ``SpeckleError``."""
        self._closed = True
        self._http.close()

    def __enter__(self) -> SpeckleClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSpeckleClient(ClientBase):
    """The asynchronous twin of ``SpeckleClient``: the same methods, awaited.

    ``async for project in client.projects()``; ``await client.aclose()`` or
    ``async with AsyncSpeckleClient(...) as client``. ``transport`` is an
    ``httpx.AsyncBaseTransport``; ``token_refresher`` may be a plain or an async function;
    ``sleep`` is awaited (``asyncio.sleep``). Concurrent calls share one connection pool.

    **Coalescing** (``coalesce=True``, the default): ``execute()`` calls made in the same
    event-loop turn — ``asyncio.gather(...)`` of many calls, or tasks created together — go
    out as one HTTP request (an Apollo batch, split every ``max_batch_size`` operations;
    a lone call is sent as a plain request). Each call still returns its own ``data`` or
    raises its own error; a failure of the request as a whole (token, 429, transport)
    raises in every call it carried, and a token refresh or 429 retry covers the request.
    ``coalesce=False`` sends one request per call.
    """

    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        user: User | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limit_retries: int = 0,
        max_retry_wait: float = 30.0,
        token_refresher: Callable[[], str] | Callable[[], Awaitable[str]] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        coalesce: bool = True,
        max_batch_size: int = MAX_BATCH_SIZE,
    ) -> None:
        super().__init__(
            server_url,
            token,
            user=user,
            timeout=timeout,
            rate_limit_retries=rate_limit_retries,
            max_retry_wait=max_retry_wait,
            max_batch_size=max_batch_size,
        )
        self._token_refresher = token_refresher
        self._coalescer = Coalescer(self._send_together, max_batch_size) if coalesce else None
        self._sleep = sleep
        self._refresh_lock: asyncio.Lock | None = None  # created inside the running loop
        self._http = httpx.AsyncClient(
            headers=self._headers(),
            timeout=self._timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_credentials(cls, credentials: Credentials, **kwargs: Any) -> AsyncSpeckleClient:
        """A client for ``credentials`` (server, token and user); ``kwargs`` as for the class."""
        return cls(credentials.server_url, credentials.token, user=credentials.user, **kwargs)

    # ---------------------------------------------------------------- I/O driver

    async def _run(self, flow: Flow[T]) -> T:
        self._check_open()
        try:
            step = next(flow)
            while True:
                reply: Any = None
                if isinstance(step, Send):
                    reply = await self._send(step.body)
                elif isinstance(step, Sleep):
                    await self._wait(step.seconds)
                elif isinstance(step, Refresh):
                    reply = await self._refresh(step.stale)
                step = flow.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            flow.close()

    async def _send(self, body: bytes) -> httpx.Response:
        try:
            return await self._http.post(self._endpoint, content=body)
        except httpx.TransportError as exc:
            raise transport_error(self._server_url, exc, secret=self._token) from None

    async def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
        else:
            import asyncio

            await asyncio.sleep(seconds)

    async def _refresh(self, stale: str) -> BaseException | None:
        if self._refresh_lock is None:
            import asyncio

            self._refresh_lock = asyncio.Lock()
        # One refresh for all the concurrent calls that met the same stale token.
        async with self._refresh_lock:
            if self._http.headers.get("Authorization") != stale:
                return None
            try:
                assert self._token_refresher is not None  # call_flow asks only when set
                token: Any = self._token_refresher()
                if inspect.isawaitable(token):
                    token = await token
                if not isinstance(token, str) or not token.strip():
                    raise ValueError("the token refresher returned no token")
            except Exception as exc:
                return exc
            self._token = token.strip()
            self._http.headers["Authorization"] = f"Bearer {self._token}"
            return None

    # ---------------------------------------------------------------- public API

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """Run one query or mutation and return its ``data`` (errors as ``SpeckleClient``).

        Calls made together are sent together (see the class: coalescing)."""
        operation = Operation(query, variables, operation_name)
        if self._coalescer is not None:
            self._check_open()  # fail in this call, not in the batch it would have joined
            return (await self._coalescer.submit(operation)).raise_for_errors()
        body = single_body(operation)
        flow = self._flow(body, self._parse_one, self._token_refresher is not None)
        return (await self._run(flow)).raise_for_errors()

    async def _send_together(self, operations: Sequence[Operation]) -> list[Result]:
        """The coalescer's one request: a plain one for a lone operation, else a batch."""
        can_refresh = self._token_refresher is not None
        return await self._run(self._operations_flow(operations, can_refresh, as_batch=False))

    async def execute_many(self, operations: Sequence[OperationLike]) -> list[Result]:
        """Run several operations in one HTTP request (one per ``max_batch_size``); one
        ``Result`` each, in order."""
        ops = [operation_of(op) for op in operations]
        results: list[Result] = []
        for chunk in chunked(ops, self._max_batch_size):
            flow = self._operations_flow(chunk, self._token_refresher is not None)
            results += await self._run(flow)
        return results

    async def active_user(self) -> User:
        """The user the token belongs to (needs the ``profile:read`` scope)."""
        return self._user_from(await self.execute(ACTIVE_USER_QUERY))

    async def server_info(self) -> dict[str, Any]:
        """The server's ``serverInfo``: name, company, version, public scopes, …"""
        info: dict[str, Any] = (await self.execute(SERVER_INFO_QUERY))["serverInfo"]
        return info

    def projects(
        self, page_size: int = 25, *, search: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The signed-in user's projects, fetched lazily ``page_size`` at a time:
        ``async for project in client.projects(): ...``."""
        check_page_size(page_size)
        return self._iter_projects(page_size, search)

    async def _iter_projects(
        self, page_size: int, search: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            variables = projects_variables(page_size, search, cursor)
            data = await self.execute(PROJECTS_QUERY, variables)
            items, cursor = self._projects_page(data, cursor)
            for item in items:
                yield item
            if cursor is None:
                return

    async def to_specklepy(self) -> SpecklepyClient:
        """A specklepy ``SpeckleClient`` with the same token (built in a worker thread,
        since specklepy's client is synchronous and talks to the server as it starts)."""
        import asyncio

        self._check_open()
        return await asyncio.to_thread(self._specklepy_client)

    async def aclose(self) -> None:
        """Close the connection pool. Further calls raise ``SpeckleError``."""
        self._closed = True
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSpeckleClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
