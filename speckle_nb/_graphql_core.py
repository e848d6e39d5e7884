"""The GraphQL client's pure core: request bodies, headers, and response → data/errors mapping.

No I/O happens here (the httpx sans-IO habit): ``speckle_nb.graphql`` drives these functions
from a sync and an async client, and the tests call them by hand.

A response is checked in a fixed order, and every failure raises from ``SpeckleError``:

1. the HTTP status — ``429`` → ``RateLimitedError``; ``403`` with Speckle's non-GraphQL body
   ``{"error": "Your token is not valid."}`` → ``InvalidTokenError``; ``400`` with a
   GraphQL-shaped ``errors`` body (Apollo's CSRF, parse and validation errors) → ``GraphQLError``;
   any other non-2xx → ``ServerError``;
2. the JSON shape — not JSON, or not ``{"data": …, "errors": […]}`` → ``ServerError``;
3. ``errors`` — the first error's ``extensions.code`` picks the class: ``FORBIDDEN`` with a
   ``scope`` → ``MissingScopeError``, ``FORBIDDEN`` → ``ForbiddenError``, ``UNAUTHORIZED`` →
   ``UnauthorizedError``, anything else → ``GraphQLError``; a workspace's lapsed single sign-on
   (``SSO_SESSION_MISSING_OR_EXPIRED_ERROR``, wherever it is in the list) →
   ``WorkspaceSsoError``. All keep every error and the partial ``data``.

``call_flow`` adds the two retries a call may make (rate limit, token refresh) as a generator
that yields what to do next (``Send``, ``Sleep``, ``Refresh``) and does none of it itself.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from .errors import (
    ForbiddenError,
    GraphQLError,
    InvalidTokenError,
    MissingScopeError,
    RateLimitedError,
    ServerError,
    SpeckleError,
    TransportError,
    UnauthorizedError,
    WorkspaceSsoError,
)

__all__ = [
    "ACTIVE_USER_QUERY",
    "PROJECTS_QUERY",
    "SERVER_INFO_QUERY",
    "Operation",
    "OperationLike",
    "Refresh",
    "Result",
    "Send",
    "Sleep",
    "batch_body",
    "build_headers",
    "call_flow",
    "error_from_errors",
    "graphql_endpoint",
    "operation_of",
    "parse_batch_response",
    "parse_response",
    "parse_retry_after",
    "single_body",
    "transport_error",
]

T = TypeVar("T")

CLIENT_NAME = "speckle-nb"

# Only the fields ``User.from_graphql`` keeps; ``activeUser`` needs the ``profile:read`` scope
# (``email`` is redacted to null, without an error, when the token lacks ``profile:email``).
ACTIVE_USER_QUERY = "query ActiveUser { activeUser { id name email avatar company role } }"

# ``serverInfo`` needs no auth. The fields are those every Speckle server since 2.x has.
SERVER_INFO_QUERY = (
    "query ServerInfo { serverInfo { name company description adminContact canonicalUrl "
    "version scopes { name description } } }"
)

# ``User.projects`` is cursor-paginated: each page hands back the cursor of the next one.
PROJECTS_QUERY = (
    "query ActiveUserProjects($limit: Int!, $cursor: String, $filter: UserProjectsFilter) "
    "{ activeUser { projects(limit: $limit, cursor: $cursor, filter: $filter) "
    "{ totalCount cursor items { id name description visibility role createdAt updatedAt } } } }"
)

_SIGN_IN_AGAIN = "Sign in again with `speckle_nb.sign_in()` or set a new personal access token."


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Operation:
    """One GraphQL operation: a query or mutation document, its variables and its name."""

    query: str
    variables: Mapping[str, Any] | None = None
    operation_name: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object the server expects (``operationName`` only when set)."""
        body: dict[str, Any] = {"query": self.query}
        if self.variables is not None:
            body["variables"] = dict(self.variables)
        if self.operation_name is not None:
            body["operationName"] = self.operation_name
        return body


#: What ``execute_many`` accepts for each operation.
OperationLike = str | tuple[str, Mapping[str, Any] | None] | Operation


def operation_of(item: OperationLike) -> Operation:
    """``"query"``, ``("query", variables)`` or an ``Operation`` → an ``Operation``."""
    if isinstance(item, Operation):
        return item
    if isinstance(item, str):
        return Operation(item)
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return Operation(item[0], item[1])
    raise TypeError(
        f"expected a query string, a (query, variables) tuple or an Operation, got {item!r}"
    )


def _dumps(payload: Any) -> bytes:
    # Compact separators: the body is sent once per call and never read by a person.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def single_body(operation: Operation) -> bytes:
    """The request body of one operation."""
    return _dumps(operation.payload())


def batch_body(operations: Sequence[Operation]) -> bytes:
    """One request body for several operations (Apollo's JSON-array batch)."""
    return _dumps([op.payload() for op in operations])


def graphql_endpoint(server_url: str) -> httpx.URL:
    """``{server}/graphql``, joined by httpx so a server under a path prefix keeps it."""
    return httpx.URL(server_url.rstrip("/") + "/").join("graphql")


def build_headers(token: str, version: str) -> dict[str, str]:
    """Headers every GraphQL request carries.

    ``Content-Type: application/json`` is what lets the request past Apollo's CSRF
    prevention; the ``apollographql-client-*`` pair only feeds the server's usage reporting.
    """
    python = ".".join(map(str, sys.version_info[:2]))
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "apollographql-client-name": CLIENT_NAME,
        "apollographql-client-version": version,
        "User-Agent": f"{CLIENT_NAME}/{version} httpx/{httpx.__version__} python/{python}",
    }


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class Result:
    """The answer to one operation: ``data``, the raw ``errors``, and ``error`` mapped from them."""

    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    error: SpeckleError | None = None

    @property
    def ok(self) -> bool:
        """True when the operation came back without errors."""
        return self.error is None

    def raise_for_errors(self) -> dict[str, Any]:
        """Raise ``error`` if there is one; otherwise return ``data``."""
        if self.error is not None:
            raise self.error
        return self.data if self.data is not None else {}


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number (Speckle sends fractions) or an HTTP date."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # rare form: import only when seen

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if seconds != seconds or seconds == float("inf"):  # NaN / inf: not a usable wait
        return None
    return max(seconds, 0.0)


def _error_text(error: Mapping[str, Any]) -> str:
    # The server's sentence loses its full stop: ours follows it, and ".." reads as a slip.
    message = str(error.get("message") or "(no message)").strip().rstrip(".") or "(no message)"
    path = error.get("path")
    where = f" (at {'.'.join(map(str, path))})" if isinstance(path, list) and path else ""
    return message + where


def _extensions(error: Mapping[str, Any]) -> Mapping[str, Any]:
    extensions = error.get("extensions")
    return extensions if isinstance(extensions, Mapping) else {}


def error_from_errors(
    errors: Sequence[Mapping[str, Any]], data: Mapping[str, Any] | None, server_url: str
) -> GraphQLError:
    """The ``GraphQLError`` subclass for a non-empty ``errors`` list (the first error decides)."""
    first = errors[0]
    extensions = _extensions(first)
    code = str(extensions.get("code") or "")
    more = f" (and {len(errors) - 1} more error(s) in .errors)" if len(errors) > 1 else ""
    kwargs: dict[str, Any] = {"server_url": server_url, "errors": errors, "data": data}
    # A lapsed workspace SSO session wins wherever it is: it is the one cause with a known fix.
    sso = next((e for e in errors if _extensions(e).get("code") == WorkspaceSsoError.CODE), None)
    if sso is not None:
        return WorkspaceSsoError.from_error(sso, **kwargs)
    if code == "FORBIDDEN" and isinstance(extensions.get("scope"), str) and extensions["scope"]:
        scope = str(extensions["scope"])
        return MissingScopeError(
            f"Your token lacks the {scope!r} scope on {server_url}: {_error_text(first)}{more}. "
            f"Sign in again (`speckle_nb.sign_in()`) with an app or personal access token that "
            f"has the {scope!r} scope.",
            scope=scope,
            **kwargs,
        )
    if code == "FORBIDDEN":
        return ForbiddenError(
            f"{server_url} refused the request: {_error_text(first)}{more}. Your account's role "
            "or the project's permissions do not allow it; ask the server or project owner.",
            **kwargs,
        )
    if code == "UNAUTHORIZED":
        return UnauthorizedError(
            f"{server_url} needs a signed-in user for this: {_error_text(first)}{more}. "
            "Sign in with `speckle_nb.sign_in()`.",
            **kwargs,
        )
    shown = "; ".join(_error_text(e) for e in errors[:3])
    rest = f" (and {len(errors) - 3} more in .errors)" if len(errors) > 3 else ""
    label = f" [{code}]" if code else ""
    return GraphQLError(
        f"GraphQL error{label} from {server_url}: {shown}{rest}. Check the query and its "
        "variables; any partial result is in .data.",
        **kwargs,
    )


def _is_graphql_shaped(body: Any) -> bool:
    return isinstance(body, dict) and ("data" in body or "errors" in body)


def _result(body: Any, server_url: str, status: int) -> Result:
    """One ``{"data", "errors"}`` object → ``Result``; anything else is a ``ServerError``."""
    if not _is_graphql_shaped(body):
        raise _shape_error(server_url, status, "an object with 'data' or 'errors'")
    data = body.get("data")
    errors = body.get("errors")
    if data is not None and not isinstance(data, dict):
        raise _shape_error(server_url, status, "'data' as an object or null")
    if errors is None:
        if data is None:  # the spec allows a null data only beside errors
            raise _shape_error(server_url, status, "'errors' beside a null 'data'")
        return Result(data)
    if not isinstance(errors, list) or not errors or not all(isinstance(e, dict) for e in errors):
        raise _shape_error(server_url, status, "'errors' as a non-empty list of objects")
    return Result(data, errors, error_from_errors(errors, data, server_url))


def _shape_error(server_url: str, status: int, expected: str) -> ServerError:
    return ServerError(
        f"{server_url} answered HTTP {status} with JSON that is not a GraphQL response "
        f"(expected {expected}). Is the URL a Speckle server?",
        server_url=server_url,
        status_code=status,
    )


def _check_status(response: httpx.Response, server_url: str) -> Any:
    """Raise for the statuses that end a call whatever the body; return the parsed JSON."""
    status = response.status_code
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        when = f"retry after {wait:g} s" if wait is not None else "retry in a moment"
        raise RateLimitedError(
            f"{server_url} is rate limiting this client (HTTP 429); {when}, or create the "
            "client with rate_limit_retries=N to wait and retry automatically.",
            server_url=server_url,
            retry_after=wait,
        )
    try:
        body = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
        if 200 <= status < 300:
            raise ServerError(
                f"{server_url} answered HTTP {status} with a body that is not JSON "
                f"({response.headers.get('Content-Type', 'no content type')}). Is the URL a "
                "Speckle server?",
                server_url=server_url,
                status_code=status,
            ) from None
    if (
        status == 403
        and isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and not _is_graphql_shaped(body)
    ):
        raise InvalidTokenError(
            f"{server_url} refused the token (HTTP 403: {body['error']!r}): it is wrong, "
            f"revoked or expired. {_SIGN_IN_AGAIN}",
            server_url=server_url,
            server_message=body["error"],
        )
    if 200 <= status < 300 or (status == 400 and _is_graphql_errors(body)):
        return body
    if status == 400 and isinstance(body, list):  # a batch whose entries carry the errors
        return body
    kind = "had an internal error" if status >= 500 else "refused the request"
    raise ServerError(
        f"{server_url} {kind} (HTTP {status}{_server_words(body)}). Try again in a moment; if it "
        "persists, check the server URL or tell the server's administrators.",
        server_url=server_url,
        status_code=status,
    )


def _is_graphql_errors(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("errors"), list) and bool(body["errors"])


def _server_words(body: Any) -> str:
    """The server's own short message, when its error body has one (never our request)."""
    if isinstance(body, dict):
        value = body.get("error", body.get("message"))
        if isinstance(value, dict):
            value = value.get("message")
        if isinstance(value, str) and value:
            return f": {value[:200]}"
    return ""


def parse_response(response: httpx.Response, server_url: str) -> Result:
    """The answer to one operation. HTTP-level failures raise; GraphQL errors go in ``error``."""
    body = _check_status(response, server_url)
    return _result(body, server_url, response.status_code)


def parse_batch_response(response: httpx.Response, count: int, server_url: str) -> list[Result]:
    """The answer to a batch of ``count`` operations: one ``Result`` each, in order."""
    body = _check_status(response, server_url)
    if isinstance(body, dict) and _is_graphql_errors(body):
        # The whole batch was refused before any operation ran (CSRF, batching disabled, …).
        raise _result(body, server_url, response.status_code).error or _shape_error(
            server_url, response.status_code, "a list"
        )
    if not isinstance(body, list) or len(body) != count:
        got = f"a list of {len(body)}" if isinstance(body, list) else type(body).__name__
        raise _shape_error(
            server_url, response.status_code, f"a list of {count} results, got {got}"
        )
    return [_result(item, server_url, response.status_code) for item in body]


def transport_error(
    server_url: str, exc: Exception, *, secret: str | None = None
) -> TransportError:
    """``TransportError`` naming the server and the cause (never the token)."""
    if isinstance(exc, httpx.TimeoutException):
        cause = f"no answer in time ({type(exc).__name__})"
    else:
        detail = str(exc).strip()
        cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if secret:  # belt and braces: no httpx message is known to echo headers, but never risk it
        cause = cause.replace(secret, "<token>")
    return TransportError(
        f"Could not reach {server_url}: {cause}. Check the URL and your connection.",
        server_url=server_url,
    )


# --------------------------------------------------------------------------- one call, no I/O


@dataclass(frozen=True)
class Send:
    """Post ``body`` to the GraphQL endpoint; send back the ``httpx.Response``."""

    body: bytes


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (the server's ``Retry-After``); send back ``None``."""

    seconds: float


@dataclass(frozen=True)
class Refresh:
    """Get a new token; send back ``None`` on success or the exception that stopped it.

    ``stale`` is the ``Authorization`` header the refused request carried: when the client's
    header has changed since (a concurrent call refreshed already), there is nothing to do.
    """

    stale: str = field(repr=False)


Step = Send | Sleep | Refresh
Flow = Generator[Step, Any, T]


def call_flow(
    body: bytes,
    parse: Callable[[httpx.Response], T],
    *,
    server_url: str,
    can_refresh: bool,
    rate_limit_retries: int,
    max_retry_wait: float,
) -> Flow[T]:
    """One call: send, parse, and retry at most ``rate_limit_retries`` times on 429 (waiting
    the server's ``Retry-After`` when it is at most ``max_retry_wait``) and once after a
    token refresh. Yields ``Send``/``Sleep``/``Refresh`` for the client to perform."""
    refreshed = False
    waits = 0
    while True:
        response: httpx.Response = yield Send(body)
        try:
            return parse(response)
        except InvalidTokenError as exc:
            if not can_refresh:
                raise
            if refreshed:
                raise InvalidTokenError(
                    f"{server_url} refused the token even after refreshing it. {_SIGN_IN_AGAIN}",
                    server_url=server_url,
                    server_message=exc.server_message,
                ) from None
            refreshed = True
            failure: BaseException | None = yield Refresh(
                response.request.headers.get("Authorization", "")
            )
            if failure is not None:
                # Our errors carry their own next step; anything else gets ours.
                why = (
                    str(failure)
                    if isinstance(failure, SpeckleError)
                    else f"{type(failure).__name__}: {failure}. {_SIGN_IN_AGAIN}"
                )
                raise InvalidTokenError(
                    f"{server_url} refused the token, and refreshing it failed: {why}",
                    server_url=server_url,
                    server_message=exc.server_message,
                ) from failure
        except RateLimitedError as exc:
            wait = exc.retry_after
            if waits >= rate_limit_retries or wait is None or wait > max_retry_wait:
                raise
            waits += 1
            yield Sleep(wait)
