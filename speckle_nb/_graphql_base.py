"""What the sync and async GraphQL clients share: configuration, repr, and pure helpers.

Split from ``speckle_nb.graphql`` to keep each module to one job; nothing here does I/O
except ``ClientBase._specklepy_client`` (specklepy authenticates as it starts).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx

from ._coalesce import check_batch_size
from ._graphql_core import (
    Flow,
    Operation,
    Result,
    batch_body,
    build_headers,
    call_flow,
    graphql_endpoint,
    parse_batch_response,
    parse_response,
    single_body,
)
from .credentials import User, normalize_server_url
from .errors import (
    ConfigurationError,
    InvalidTokenError,
    NotSignedInError,
    ServerError,
    SpeckleError,
)

if TYPE_CHECKING:
    from specklepy.api.client import SpeckleClient as SpecklepyClient

T = TypeVar("T")

#: Seconds for connect, read, write and pool waits unless the caller says otherwise.
DEFAULT_TIMEOUT = 10.0


class ClientBase:
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
        max_batch_size: int,
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
        self._max_batch_size = check_batch_size(max_batch_size)
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

    def _operations_flow(
        self, operations: Sequence[Operation], can_refresh: bool, *, as_batch: bool = True
    ) -> Flow[list[Result]]:
        """One request for ``operations`` (at most ``max_batch_size``): an Apollo batch, or
        with ``as_batch=False`` and a single operation, the plain request ``execute`` sends."""
        if not as_batch and len(operations) == 1:
            return self._flow(
                single_body(operations[0]), lambda r: [self._parse_one(r)], can_refresh
            )
        return self._flow(batch_body(operations), self._batch_parser(len(operations)), can_refresh)

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


def check_page_size(page_size: int) -> None:
    if page_size < 1:
        raise ValueError("page_size must be at least 1")


def projects_variables(page_size: int, search: str | None, cursor: str | None) -> dict[str, Any]:
    variables: dict[str, Any] = {"limit": page_size, "cursor": cursor}
    if search is not None:
        variables["filter"] = {"search": search}
    return variables
