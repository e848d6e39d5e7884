"""The preconfigured GraphQL client: ``SpeckleClient`` (sync) and ``AsyncSpeckleClient``.

    client = SpeckleClient("https://app.speckle.systems", token)
    client.active_user()                       # -> User
    client.execute("query { serverInfo { name } }")
    for project in client.projects(): ...      # follows the cursor lazily
    client.execute_many([q1, (q2, {"id": x})]) # one HTTP request, one Result each
    client.to_specklepy()                      # a specklepy SpeckleClient, same token

Both clients keep one httpx connection pool for their life (close them, or use ``with`` /
``async with``) and share every decision with the pure core in ``speckle_nb._graphql_core``:
the classes here only perform what its flows ask for (send, sleep, refresh a token).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

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
    batch_body,
    build_headers,
    call_flow,
    graphql_endpoint,
    operation_of,
    parse_batch_response,
    parse_response,
    single_body,
    transport_error,
)
from .credentials import Credentials, User, normalize_server_url
from .errors import (
    ConfigurationError,
    InvalidTokenError,
    NotSignedInError,
    ServerError,
    SpeckleError,
)

if TYPE_CHECKING:
    # asyncio is imported where it is used: it costs more to import than httpx itself, and
    # most notebooks only ever build the sync client.
    import asyncio

    from specklepy.api.client import SpeckleClient as SpecklepyClient

__all__ = ["AsyncSpeckleClient", "Operation", "Result", "SpeckleClient"]

T = TypeVar("T")

#: Seconds for connect, read, write and pool waits unless the caller says otherwise.
DEFAULT_TIMEOUT = 10.0


class _Base:
    """What the sync and async clients share: configuration, repr, and the pure helpers."""

    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        user: User | None,
        timeout: float | httpx.Timeout,
        rate_limit_retries: int,
        max_retry_wait: float,
    ) -> None:
        try:
            self._server_url = normalize_server_url(server_url)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not token or not token.strip():
            raise ConfigurationError(
                "The token is empty. Sign in with `speckle_nb.sign_in()` or pass a personal "
                "access token."
            )
        if rate_limit_retries < 0 or max_retry_wait < 0:
            raise ValueError("rate_limit_retries and max_retry_wait must not be negative")
        self._token = token.strip()
        self._user = user
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._rate_limit_retries = rate_limit_retries
        self._max_retry_wait = max_retry_wait
        self._endpoint = graphql_endpoint(self._server_url)
        self._closed = False

    @property
    def server_url(self) -> str:
        """The server this client talks to, normalised (``https://host[:port]``, no slash)."""
        return self._server_url

    @property
    def user(self) -> User | None:
        """Who the token belongs to, as last seen (``active_user()`` refreshes it)."""
        return self._user

    @property
    def closed(self) -> bool:
        """True once the client was closed (its connection pool is gone)."""
        return self._closed

    def __repr__(self) -> str:
        # Never the token: the repr is what a notebook shows for a bare `client` cell.
        name = self._user.name if self._user else None
        return f"{type(self).__name__}(server={self._server_url!r}, user={name!r})"

    def _headers(self) -> dict[str, str]:
        from . import __version__  # the package is imported already; this is a dict lookup

        return build_headers(self._token, __version__)

    def _flow(
        self, body: bytes, parse: Callable[[httpx.Response], T], can_refresh: bool
    ) -> Flow[T]:
        return call_flow(
            body,
            parse,
            server_url=self._server_url,
            can_refresh=can_refresh,
            rate_limit_retries=self._rate_limit_retries,
            max_retry_wait=self._max_retry_wait,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise SpeckleError(
                f"This client for {self._server_url} is closed (signed out, or closed with "
                "`close()` / `with`). Get a new one with `speckle_nb.client()`.",
                server_url=self._server_url,
            )

    def _parse_one(self, response: httpx.Response) -> Result:
        return parse_response(response, self._server_url)

    def _batch_parser(self, count: int) -> Callable[[httpx.Response], list[Result]]:
        return lambda response: parse_batch_response(response, count, self._server_url)

    def _user_from(self, data: Mapping[str, Any]) -> User:
        active = data.get("activeUser")
        if not isinstance(active, Mapping):
            # Speckle answers null for an anonymous request; with our token this means the
            # token no longer maps to a user.
            raise NotSignedInError(self._server_url)
        self._user = User.from_graphql(active)
        return self._user

    def _projects_page(
        self, data: Mapping[str, Any], cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Items of one page and the cursor of the next (None when this was the last)."""
        active = data.get("activeUser")
        if not isinstance(active, Mapping):
            raise NotSignedInError(self._server_url)
        page = active.get("projects")
        if not isinstance(page, Mapping) or not isinstance(page.get("items"), list):
            raise ServerError(
                f"{self._server_url} answered activeUser.projects without an item list.",
                server_url=self._server_url,
                status_code=200,
            )
        items: list[dict[str, Any]] = page["items"]
        next_cursor = page.get("cursor")
        # An empty page, no cursor, or the same cursor again all end the walk (the last guards
        # against a server that would otherwise loop forever).
        if not items or not isinstance(next_cursor, str) or next_cursor == cursor:
            return items, None
        return items, next_cursor

    def _specklepy_client(self) -> SpecklepyClient:
        try:
            from specklepy.api.client import SpeckleClient as specklepy_client
        except ImportError as exc:
            raise ConfigurationError(
                "to_specklepy() needs specklepy (Python ≥ 3.11): "
                "pip install 'speckle-nb[specklepy]'."
            ) from exc
        # specklepy drops the scheme from `host` and takes it from `use_ssl` alone (§8.1):
        # without this, an http:// server would be called over https.
        use_ssl = urlsplit(self._server_url).scheme == "https"
        client = specklepy_client(host=self._server_url, use_ssl=use_ssl)
        try:
            client.authenticate_with_token(self._token)
        except Exception as exc:
            # specklepy wraps the server's 403 in SpeckleException(TransportServerError(403)).
            if getattr(getattr(exc, "exception", None), "code", None) == 403:
                raise InvalidTokenError(
                    f"{self._server_url} refused the token when specklepy used it. Sign in "
                    "again with `speckle_nb.sign_in()` or set a new personal access token.",
                    server_url=self._server_url,
                ) from None
            raise
        return client


def _check_page_size(page_size: int) -> None:
    if page_size < 1:
        raise ValueError("page_size must be at least 1")


def _projects_variables(page_size: int, search: str | None, cursor: str | None) -> dict[str, Any]:
    variables: dict[str, Any] = {"limit": page_size, "cursor": cursor}
    if search is not None:
        variables["filter"] = {"search": search}
    return variables


class SpeckleClient(_Base):
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
    ) -> None:
        super().__init__(
            server_url,
            token,
            user=user,
            timeout=timeout,
            rate_limit_retries=rate_limit_retries,
            max_retry_wait=max_retry_wait,
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
        """Run several operations in **one** HTTP request; one ``Result`` each, in order.

        Each item is a query string, a ``(query, variables)`` tuple or an ``Operation``.
        GraphQL errors stay on their own ``Result`` (``.error``, ``.raise_for_errors()``);
        failures of the request as a whole (token, rate limit, transport) raise.
        """
        ops = [operation_of(op) for op in operations]
        if not ops:
            return []
        flow = self._flow(
            batch_body(ops), self._batch_parser(len(ops)), self._token_refresher is not None
        )
        return self._run(flow)

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
        _check_page_size(page_size)
        return self._iter_projects(page_size, search)

    def _iter_projects(self, page_size: int, search: str | None) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            variables = _projects_variables(page_size, search, cursor)
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


class AsyncSpeckleClient(_Base):
    """The asynchronous twin of ``SpeckleClient``: the same methods, awaited.

    ``async for project in client.projects()``; ``await client.aclose()`` or
    ``async with AsyncSpeckleClient(...) as client``. ``transport`` is an
    ``httpx.AsyncBaseTransport``; ``token_refresher`` may be a plain or an async function;
    ``sleep`` is awaited (``asyncio.sleep``). Concurrent calls share one connection pool.
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
    ) -> None:
        super().__init__(
            server_url,
            token,
            user=user,
            timeout=timeout,
            rate_limit_retries=rate_limit_retries,
            max_retry_wait=max_retry_wait,
        )
        self._token_refresher = token_refresher
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
        """Run one query or mutation and return its ``data`` (errors as ``SpeckleClient``)."""
        body = single_body(Operation(query, variables, operation_name))
        flow = self._flow(body, self._parse_one, self._token_refresher is not None)
        return (await self._run(flow)).raise_for_errors()

    async def execute_many(self, operations: Sequence[OperationLike]) -> list[Result]:
        """Run several operations in one HTTP request; one ``Result`` each, in order."""
        ops = [operation_of(op) for op in operations]
        if not ops:
            return []
        flow = self._flow(
            batch_body(ops), self._batch_parser(len(ops)), self._token_refresher is not None
        )
        return await self._run(flow)

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
        _check_page_size(page_size)
        return self._iter_projects(page_size, search)

    async def _iter_projects(
        self, page_size: int, search: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            variables = _projects_variables(page_size, search, cursor)
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
