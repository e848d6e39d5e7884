"""Layer 1: the client's pure core — bodies, headers, response mapping, and the call flow by hand."""

from __future__ import annotations

import json
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from speckle_nb import _graphql_core as core
from speckle_nb.errors import (
    ForbiddenError,
    GraphQLError,
    InvalidTokenError,
    MissingScopeError,
    RateLimitedError,
    ServerError,
    SpeckleError,
    TransportError,
    UnauthorizedError,
)

SERVER = "http://speckle.test"
TOKEN = "0123456789abcdef0123456789abcdef0123456789"
INVALID = {"error": "Your token is not valid."}
SCOPE_ERROR = {
    "message": "Your auth token does not have the required scope: profile:read.",
    "locations": [{"line": 1, "column": 3}],
    "path": ["activeUser"],
    "extensions": {"code": "FORBIDDEN", "scope": "profile:read", "statusCode": 403},
}
CSRF = {
    "errors": [
        {
            "message": "This operation has been blocked as a potential Cross-Site Request "
            "Forgery (CSRF). Please either specify a 'content-type' header …\n",
            "extensions": {"code": "BAD_REQUEST"},
        }
    ]
}


def response(
    status: int = 200,
    body: Any = None,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str = TOKEN,
) -> httpx.Response:
    """A response as the client would receive it, to a request carrying ``token``."""
    request = httpx.Request(
        "POST", f"{SERVER}/graphql", headers={"Authorization": f"Bearer {token}"}
    )
    if content is None:
        content = json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers, request=request)


# --------------------------------------------------------------------------- requests


def test_headers_carry_bearer_json_and_client_name() -> None:
    headers = core.build_headers(TOKEN, "1.2.3")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"  # Apollo's CSRF prevention needs it
    assert headers["Accept"] == "application/json"
    assert headers["apollographql-client-name"] == "speckle-nb"
    assert headers["apollographql-client-version"] == "1.2.3"
    assert headers["User-Agent"].startswith("speckle-nb/1.2.3 ")


@pytest.mark.parametrize(
    ("server", "endpoint"),
    [
        ("https://app.speckle.systems", "https://app.speckle.systems/graphql"),
        ("http://localhost:3000/", "http://localhost:3000/graphql"),
        ("https://example.org/speckle", "https://example.org/speckle/graphql"),
    ],
)
def test_endpoint_keeps_a_path_prefix(server: str, endpoint: str) -> None:
    assert str(core.graphql_endpoint(server)) == endpoint


def test_operation_payload_omits_unset_fields() -> None:
    assert core.Operation("{ a }").payload() == {"query": "{ a }"}
    assert core.Operation("q", {"x": 1}, "Q").payload() == {
        "query": "q",
        "variables": {"x": 1},
        "operationName": "Q",
    }


def test_operation_of_accepts_the_three_forms() -> None:
    op = core.Operation("q", {"x": 1}, "Q")
    assert core.operation_of(op) is op
    assert core.operation_of("q") == core.Operation("q")
    assert core.operation_of(("q", {"x": 1})) == core.Operation("q", {"x": 1})
    assert core.operation_of(("q", None)) == core.Operation("q")
    with pytest.raises(TypeError, match="expected a query string"):
        core.operation_of(42)  # type: ignore[arg-type]


def test_bodies_are_compact_json_and_a_batch_is_an_array() -> None:
    assert core.single_body(core.Operation("{ a }", {"é": 1})) == (
        '{"query":"{ a }","variables":{"é":1}}'.encode()
    )
    batch = json.loads(core.batch_body([core.Operation("q1"), core.Operation("q2", {"x": 2})]))
    assert batch == [{"query": "q1"}, {"query": "q2", "variables": {"x": 2}}]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1.5", 1.5), ("0", 0.0), ("30", 30.0), ("-2", 0.0), (None, None), ("", None),
     ("soon", None), ("nan", None), ("inf", None)],
)  # fmt: skip
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert core.parse_retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    import datetime as dt

    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=20)
    parsed = core.parse_retry_after(format_datetime(when, usegmt=True))
    assert parsed is not None
    assert 17 <= parsed <= 21


# --------------------------------------------------------------------------- response mapping


def test_data_without_errors() -> None:
    result = core.parse_response(response(body={"data": {"a": 1}}), SERVER)
    assert result == core.Result({"a": 1})
    assert result.ok
    assert result.raise_for_errors() == {"a": 1}


def test_missing_scope_names_the_scope_and_keeps_partial_data() -> None:
    body = {"errors": [SCOPE_ERROR], "data": {"activeUser": None, "serverInfo": {"name": "S"}}}
    result = core.parse_response(response(body=body), SERVER)
    error = result.error
    assert isinstance(error, MissingScopeError)
    assert error.scope == "profile:read"
    assert "'profile:read'" in str(error)
    assert "sign_in()" in str(error)
    assert error.data == body["data"]
    assert error.errors == [SCOPE_ERROR]  # message, path, extensions all kept
    assert error.codes == ["FORBIDDEN"]
    assert error.server_url == SERVER
    with pytest.raises(MissingScopeError):
        result.raise_for_errors()


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ({"message": "You do not have the required server role",
          "extensions": {"code": "FORBIDDEN", "statusCode": 403}}, ForbiddenError),
        ({"message": "Must provide an auth token", "path": ["project", "role"],
          "extensions": {"code": "UNAUTHORIZED", "statusCode": 401}}, UnauthorizedError),
        ({"message": "Project not found", "path": ["project"],
          "extensions": {"code": "STREAM_NOT_FOUND"}}, GraphQLError),
        ({"message": "no extensions at all"}, GraphQLError),
    ],
)  # fmt: skip
def test_first_error_code_picks_the_class(error: dict[str, Any], cls: type[GraphQLError]) -> None:
    second = {"message": "second", "path": ["b", 0], "extensions": {"code": "FORBIDDEN"}}
    body = {"errors": [error, second], "data": {"a": None, "b": [1]}}
    mapped = core.parse_response(response(body=body), SERVER).error
    assert type(mapped) is cls
    assert mapped.errors == [error, second]
    assert mapped.data == {"a": None, "b": [1]}
    assert error["message"] in str(mapped)
    # The specific classes name the deciding error and count the rest; the generic one lists
    # the first few, since any of them may be the one to fix.
    assert ("1 more" if cls is not GraphQLError else "second (at b.0)") in str(mapped)


def test_generic_error_lists_paths_and_code() -> None:
    body = {"errors": [{"message": "boom", "path": ["x", 2, "y"], "extensions": {"code": "X"}}]}
    message = str(core.parse_response(response(body=body), SERVER).error)
    assert "boom (at x.2.y)" in message
    assert "[X]" in message


def test_invalid_token_is_the_403_non_graphql_body() -> None:
    with pytest.raises(InvalidTokenError) as caught:
        core.parse_response(response(403, INVALID), SERVER)
    assert caught.value.server_message == "Your token is not valid."
    assert "sign_in()" in str(caught.value)
    assert caught.value.server_url == SERVER


def test_rate_limit_carries_retry_after() -> None:
    body = {"error": {"message": "You have sent too many requests.", "code": "RATE_LIMIT_ERROR"}}
    with pytest.raises(RateLimitedError) as caught:
        core.parse_response(response(429, body, headers={"Retry-After": "1.5"}), SERVER)
    assert caught.value.retry_after == 1.5
    assert "rate_limit_retries" in str(caught.value)


def test_rate_limit_without_retry_after() -> None:
    with pytest.raises(RateLimitedError) as caught:
        core.parse_response(response(429, INVALID), SERVER)  # the status decides, not the body
    assert caught.value.retry_after is None


def test_csrf_400_is_a_graphql_error_keeping_the_errors() -> None:
    result = core.parse_response(response(400, CSRF), SERVER)
    assert type(result.error) is GraphQLError
    assert result.error.codes == ["BAD_REQUEST"]
    assert "Cross-Site Request Forgery" in str(result.error)


@pytest.mark.parametrize(
    ("status", "kwargs", "words"),
    [
        (500, {"body": {"error": {"message": "Something went wrong"}}}, "Something went wrong"),
        (502, {"content": b"<html>Bad Gateway</html>"}, "internal error"),
        (400, {"body": {"error": {"message": "Invalid request body: Unexpected token"}}},
         "Invalid request body"),
        (403, {"content": b"<html>Forbidden by proxy</html>"}, "refused the request"),
        (404, {"content": b"Cannot POST /graphql"}, "HTTP 404"),
        (200, {"content": b"<html>a login page</html>"}, "not JSON"),
        (200, {"body": [1, 2]}, "not a GraphQL response"),
        (200, {"body": {}}, "not a GraphQL response"),
        (200, {"body": {"data": 5}}, "'data' as an object"),
        (200, {"body": {"data": None}}, "beside a null 'data'"),
        (200, {"body": {"errors": "boom"}}, "non-empty list"),
        (200, {"body": {"errors": [], "data": None}}, "non-empty list"),
        (200, {"body": {"errors": ["x"]}}, "non-empty list"),
    ],
)  # fmt: skip
def test_unusable_answers_are_server_errors(
    status: int, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ServerError) as caught:
        core.parse_response(response(status, **kwargs), SERVER)
    assert caught.value.status_code == status
    assert words in str(caught.value)
    assert SERVER in str(caught.value)


# --------------------------------------------------------------------------- batches


def test_batch_results_in_order_each_with_its_own_errors() -> None:
    body = [{"data": {"a": 1}}, {"errors": [SCOPE_ERROR], "data": {"activeUser": None}}]
    first, second = core.parse_batch_response(response(body=body), 2, SERVER)
    assert first.ok
    assert first.data == {"a": 1}
    assert isinstance(second.error, MissingScopeError)
    assert second.data == {"activeUser": None}


def test_batch_400_list_still_maps_entry_by_entry() -> None:
    body = [{"data": {"a": 1}}, {"errors": [{"message": "Syntax Error"}]}]
    results = core.parse_batch_response(response(400, body), 2, SERVER)
    assert [r.ok for r in results] == [True, False]


def test_batch_refused_as_a_whole_raises() -> None:
    with pytest.raises(GraphQLError, match="Cross-Site"):
        core.parse_batch_response(response(400, CSRF), 3, SERVER)
    with pytest.raises(InvalidTokenError):
        core.parse_batch_response(response(403, INVALID), 3, SERVER)


@pytest.mark.parametrize("body", [[{"data": {}}], {"data": {}}, [{"data": {}}, 7]])
def test_batch_of_the_wrong_shape(body: Any) -> None:
    with pytest.raises(ServerError):
        core.parse_batch_response(response(body=body), 2, SERVER)


# --------------------------------------------------------------------------- transport errors


def test_transport_error_names_server_and_cause_never_the_token() -> None:
    error = core.transport_error(
        SERVER, httpx.ConnectError(f"refused for Bearer {TOKEN}"), secret=TOKEN
    )
    assert isinstance(error, TransportError)
    assert str(error).startswith(f"Could not reach {SERVER}: ConnectError: refused")
    assert str(error).endswith("Check the URL and your connection.")
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)


def test_transport_error_for_a_timeout() -> None:
    error = core.transport_error(SERVER, httpx.ReadTimeout(""))
    assert "no answer in time (ReadTimeout)" in str(error)


# --------------------------------------------------------------------------- the flow by hand


def start(
    *, retries: int = 0, max_wait: float = 30.0, can_refresh: bool = False
) -> tuple[core.Flow[core.Result], core.Step]:
    flow = core.call_flow(
        b"{}",
        lambda r: core.parse_response(r, SERVER),
        server_url=SERVER,
        can_refresh=can_refresh,
        rate_limit_retries=retries,
        max_retry_wait=max_wait,
    )
    return flow, next(flow)


def finish(flow: core.Flow[core.Result], reply: Any) -> core.Result:
    with pytest.raises(StopIteration) as done:
        flow.send(reply)
    result: core.Result = done.value.value
    return result


OK = {"data": {"a": 1}}


def test_flow_sends_once_and_returns() -> None:
    flow, step = start()
    assert step == core.Send(b"{}")
    assert finish(flow, response(body=OK)).data == {"a": 1}


def test_flow_waits_retry_after_then_resends() -> None:
    flow, _ = start(retries=2)
    step = flow.send(response(429, {}, headers={"Retry-After": "1.5"}))
    assert step == core.Sleep(1.5)
    assert flow.send(None) == core.Send(b"{}")
    step = flow.send(response(429, {}, headers={"Retry-After": "0.25"}))
    assert step == core.Sleep(0.25)
    flow.send(None)
    assert finish(flow, response(body=OK)).ok


def test_flow_retries_are_bounded() -> None:
    flow, _ = start(retries=1)
    assert isinstance(flow.send(response(429, {}, headers={"Retry-After": "1"})), core.Sleep)
    flow.send(None)
    with pytest.raises(RateLimitedError):
        flow.send(response(429, {}, headers={"Retry-After": "1"}))


@pytest.mark.parametrize(
    ("retries", "headers"),
    [(0, {"Retry-After": "1"}), (3, {"Retry-After": "31"}), (3, {})],
    ids=["opt-in only", "longer than max_retry_wait", "no Retry-After"],
)
def test_flow_raises_at_once(retries: int, headers: dict[str, str]) -> None:
    flow, _ = start(retries=retries, max_wait=30.0)
    with pytest.raises(RateLimitedError):
        flow.send(response(429, {}, headers=headers))


def test_flow_without_refresher_raises_invalid_token() -> None:
    flow, _ = start()
    with pytest.raises(InvalidTokenError, match=r"sign_in\(\)"):
        flow.send(response(403, INVALID))


def test_flow_refreshes_once_then_resends() -> None:
    flow, _ = start(can_refresh=True)
    step = flow.send(response(403, INVALID))
    assert step == core.Refresh(f"Bearer {TOKEN}")
    assert flow.send(None) == core.Send(b"{}")
    assert finish(flow, response(body=OK)).ok


def test_flow_refresh_failure_says_sign_in_again() -> None:
    flow, _ = start(can_refresh=True)
    flow.send(response(403, INVALID))
    failure = RuntimeError("refresh token revoked")
    with pytest.raises(InvalidTokenError) as caught:
        flow.send(failure)
    assert "refreshing it failed" in str(caught.value)
    assert "sign_in()" in str(caught.value)
    assert caught.value.__cause__ is failure


def test_flow_refreshes_at_most_once_per_call() -> None:
    flow, _ = start(can_refresh=True)
    assert isinstance(flow.send(response(403, INVALID)), core.Refresh)
    flow.send(None)
    with pytest.raises(InvalidTokenError, match="even after refreshing"):
        flow.send(response(403, INVALID, token="f" * 42))


def test_every_error_is_a_speckle_error() -> None:
    for cls in (InvalidTokenError, RateLimitedError, ServerError, TransportError, GraphQLError):
        assert issubclass(cls, SpeckleError)
