"""Layer 1: SpeckleClient and AsyncSpeckleClient on ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import speckle_nb
from speckle_nb.credentials import Credentials, User
from speckle_nb.errors import (
    ConfigurationError,
    ForbiddenError,
    GraphQLError,
    InvalidTokenError,
    MissingScopeError,
    NotSignedInError,
    RateLimitedError,
    ServerError,
    SpeckleError,
    TransportError,
    UnauthorizedError,
)
from speckle_nb.graphql import AsyncSpeckleClient, Operation, Result, SpeckleClient

INVALID = {"error": "Your token is not valid."}
DEMO = {"id": "u1", "name": "Demo User", "email": "demo@example.org", "avatar": None,
        "company": None, "role": "server:user"}  # fmt: skip


def answer(
    body: Any, status: int = 200, **kwargs: Any
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body, **kwargs)


def sequence(*responses: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    """Answer with each response in turn (the last one repeats)."""
    queue = list(responses)
    return lambda request: queue.pop(0) if len(queue) > 1 else queue[0]


def auth_of(request: httpx.Request) -> str:
    return request.headers["Authorization"]


# --------------------------------------------------------------------------- construction


def test_request_shape(make_client: Any, token: str) -> None:
    client, server = make_client(answer({"data": {"a": 1}}))
    assert client.execute("query Q($x: Int) { a }", {"x": 1}, "Q") == {"a": 1}
    (request,) = server.requests
    assert request.method == "POST"
    assert str(request.url) == "http://speckle.test/graphql"
    assert json.loads(request.content) == {
        "query": "query Q($x: Int) { a }",
        "variables": {"x": 1},
        "operationName": "Q",
    }
    assert request.headers["Authorization"] == f"Bearer {token}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["apollographql-client-name"] == "speckle-nb"
    assert request.headers["apollographql-client-version"] == speckle_nb.__version__
    assert request.headers["User-Agent"].startswith(f"speckle-nb/{speckle_nb.__version__}")
    assert token not in str(request.url)


def test_server_url_is_normalised_and_keeps_its_path(make_client: Any) -> None:
    client, server = make_client(answer({"data": {}}), server_url="HTTPS://Example.ORG/speckle/")
    assert client.server_url == "https://example.org/speckle"
    client.execute("{ a }")
    assert str(server.requests[0].url) == "https://example.org/speckle/graphql"


def test_timeouts_are_explicit(make_client: Any) -> None:
    client, server = make_client(answer({"data": {}}))
    client.execute("{ a }")
    assert server.requests[0].extensions["timeout"] == httpx.Timeout(10.0).as_dict()
    custom = httpx.Timeout(5.0, connect=1.0)
    client, server = make_client(answer({"data": {}}), timeout=custom)
    client.execute("{ a }")
    assert server.requests[0].extensions["timeout"] == custom.as_dict()
    client, server = make_client(answer({"data": {}}), timeout=2.5)
    client.execute("{ a }")
    assert server.requests[0].extensions["timeout"]["read"] == 2.5


@pytest.mark.parametrize(
    ("url", "token"),
    [("ftp://x", "t"), ("https://x?a=1", "t"), ("https://x", ""), ("https://x", " ")],
)
def test_bad_configuration(url: str, token: str) -> None:
    with pytest.raises(ConfigurationError):
        SpeckleClient(url, token)


def test_repr_shows_server_and_user_never_the_token(make_client: Any, token: str) -> None:
    client, _ = make_client(answer({"data": {"activeUser": DEMO}}))
    assert repr(client) == "SpeckleClient(server='http://speckle.test', user=None)"
    assert client.user is None
    user = client.active_user()
    assert user == User.from_graphql(DEMO)
    assert client.user == user
    assert repr(client) == "SpeckleClient(server='http://speckle.test', user='Demo User')"
    assert token not in repr(client)
    assert token not in str(client)


def test_from_credentials(token: str) -> None:
    creds = Credentials("http://speckle.test", token, user=User("u1", "Demo User"))
    with SpeckleClient.from_credentials(creds, transport=httpx.MockTransport(answer({}))) as client:
        assert repr(client) == "SpeckleClient(server='http://speckle.test', user='Demo User')"


def test_close_closes_the_pool_and_later_calls_say_so(make_client: Any) -> None:
    client, server = make_client(answer({"data": {}}))
    with client:
        client.execute("{ a }")
    assert server.closed
    assert client.closed
    with pytest.raises(SpeckleError, match=r"closed.*speckle_nb\.client\(\)"):
        client.execute("{ a }")
    client.close()  # idempotent


def test_one_pool_for_the_clients_life(make_client: Any) -> None:
    client, server = make_client(answer({"data": {}}))
    pool = client._http
    for _ in range(3):
        client.execute("{ a }")
    assert client._http is pool
    assert len(server.requests) == 3
    assert not server.closed


# --------------------------------------------------------------------------- errors


def error_handlers() -> dict[type[SpeckleError], Callable[[httpx.Request], httpx.Response]]:
    def connect_error(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"[Errno 111] refused ({request.headers['Authorization']})")

    def graphql(code: str | None, **extensions: Any) -> Callable[[httpx.Request], httpx.Response]:
        error = {"message": "nope", "path": ["activeUser"],
                 "extensions": {"code": code, **extensions} if code else {}}  # fmt: skip
        return answer({"errors": [error], "data": {"activeUser": None}})

    return {
        TransportError: connect_error,
        RateLimitedError: answer({}, 429, headers={"Retry-After": "2"}),
        InvalidTokenError: answer(INVALID, 403),
        ServerError: lambda request: httpx.Response(502, text="Bad gateway"),
        MissingScopeError: graphql("FORBIDDEN", scope="profile:read"),
        ForbiddenError: graphql("FORBIDDEN"),
        UnauthorizedError: graphql("UNAUTHORIZED"),
        GraphQLError: graphql("GRAPHQL_VALIDATION_FAILED"),
    }


@pytest.mark.parametrize("cls", list(error_handlers()), ids=lambda c: c.__name__)
def test_each_error_class_and_no_token_in_it(make_client: Any, token: str, cls: type) -> None:
    client, _ = make_client(error_handlers()[cls])
    with pytest.raises(SpeckleError) as caught:
        client.execute("{ activeUser { id } }")
    error = caught.value
    assert type(error) is cls
    assert error.server_url == "http://speckle.test"
    assert "http://speckle.test" in str(error)
    assert token not in str(error)
    assert token not in repr(error)
    assert token not in repr(getattr(error, "errors", ""))


def test_graphql_errors_keep_partial_data(make_client: Any) -> None:
    body = {"data": {"a": 1, "b": None}, "errors": [{"message": "b failed", "path": ["b"]}]}
    client, _ = make_client(answer(body))
    with pytest.raises(GraphQLError) as caught:
        client.execute("{ a b }")
    assert caught.value.data == {"a": 1, "b": None}
    assert caught.value.errors == body["errors"]


def test_redirects_are_not_followed(make_client: Any) -> None:
    # Following one could carry the token to another host.
    client, server = make_client(
        lambda request: httpx.Response(301, headers={"Location": "https://evil.test/graphql"})
    )
    with pytest.raises(ServerError) as caught:
        client.execute("{ a }")
    assert caught.value.status_code == 301
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- rate limit retries


def limited(after: str = "1.5") -> httpx.Response:
    return httpx.Response(429, json={}, headers={"Retry-After": after})


def test_rate_limit_retry_honours_retry_after(make_client: Any) -> None:
    waits: list[float] = []
    client, server = make_client(
        sequence(limited("1.5"), limited("0.5"), httpx.Response(200, json={"data": {"a": 1}})),
        rate_limit_retries=2,
        sleep=waits.append,
    )
    assert client.execute("{ a }") == {"a": 1}
    assert waits == [1.5, 0.5]
    assert len(server.requests) == 3


def test_rate_limit_is_not_retried_by_default(make_client: Any) -> None:
    waits: list[float] = []
    client, server = make_client(sequence(limited()), sleep=waits.append)
    with pytest.raises(RateLimitedError) as caught:
        client.execute("{ a }")
    assert caught.value.retry_after == 1.5
    assert waits == []
    assert len(server.requests) == 1


def test_rate_limit_retry_gives_up(make_client: Any) -> None:
    waits: list[float] = []
    client, server = make_client(sequence(limited()), rate_limit_retries=2, sleep=waits.append)
    with pytest.raises(RateLimitedError):
        client.execute("{ a }")
    assert waits == [1.5, 1.5]
    assert len(server.requests) == 3


def test_rate_limit_longer_than_the_cap_raises_at_once(make_client: Any) -> None:
    waits: list[float] = []
    client, _ = make_client(
        sequence(limited("60")), rate_limit_retries=5, max_retry_wait=10, sleep=waits.append
    )
    with pytest.raises(RateLimitedError) as caught:
        client.execute("{ a }")
    assert caught.value.retry_after == 60
    assert waits == []


# --------------------------------------------------------------------------- token refresh


def refreshing_server(good: str) -> Callable[[httpx.Request], httpx.Response]:
    """Accepts only ``good``; answers Speckle's 403 to anything else."""

    def handle(request: httpx.Request) -> httpx.Response:
        if auth_of(request) == f"Bearer {good}":
            return httpx.Response(200, json={"data": {"ok": True}})
        return httpx.Response(403, json=INVALID)

    return handle


def test_refresher_gets_a_new_token_and_the_call_is_retried_once(make_client: Any) -> None:
    calls: list[str] = []

    def refresher() -> str:
        calls.append("refresh")
        return "f" * 42

    client, server = make_client(refreshing_server("f" * 42), token_refresher=refresher)
    assert client.execute("{ ok }") == {"ok": True}
    assert client.execute("{ ok }") == {"ok": True}  # the new token stays
    assert calls == ["refresh"]
    assert [auth_of(r)[-4:] for r in server.requests] == ["6789", "ffff", "ffff"]


def test_refresher_failure_says_sign_in_again(make_client: Any, token: str) -> None:
    def refresher() -> str:
        raise RuntimeError("refresh token revoked")

    client, server = make_client(answer(INVALID, 403), token_refresher=refresher)
    with pytest.raises(InvalidTokenError) as caught:
        client.execute("{ ok }")
    assert "sign_in()" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert len(server.requests) == 1
    assert token not in str(caught.value)


@pytest.mark.parametrize("new_token", ["", "g" * 42], ids=["empty", "also refused"])
def test_refresher_at_most_once(make_client: Any, new_token: str) -> None:
    calls: list[int] = []

    def refresher() -> str:
        calls.append(1)
        return new_token

    client, server = make_client(answer(INVALID, 403), token_refresher=refresher)
    with pytest.raises(InvalidTokenError, match=r"sign_in\(\)"):
        client.execute("{ ok }")
    assert calls == [1]
    assert len(server.requests) == (2 if new_token else 1)
    assert new_token == "" or new_token not in str(client)


# --------------------------------------------------------------------------- batches


def test_execute_many_is_one_request_with_results_in_order(make_client: Any) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        ops = json.loads(request.content)
        return httpx.Response(
            200,
            json=[
                {"data": {"n": i}}
                if "fail" not in op["query"]
                else {"data": None, "errors": [{"message": f"op {i} failed"}]}
                for i, op in enumerate(ops)
            ],
        )

    client, server = make_client(handle)
    results = client.execute_many(
        ["{ n }", ("query N($x: Int) { n }", {"x": 1}), Operation("{ fail }", None, "F")]
    )
    assert len(server.requests) == 1
    assert server.bodies()[0] == [
        {"query": "{ n }"},
        {"query": "query N($x: Int) { n }", "variables": {"x": 1}},
        {"query": "{ fail }", "operationName": "F"},
    ]
    assert [r.data for r in results] == [{"n": 0}, {"n": 1}, None]
    assert all(isinstance(r, Result) for r in results)
    assert results[0].raise_for_errors() == {"n": 0}
    assert isinstance(results[2].error, GraphQLError)
    assert "op 2 failed" in str(results[2].error)
    with pytest.raises(GraphQLError):
        results[2].raise_for_errors()


def test_execute_many_of_nothing_sends_nothing(make_client: Any) -> None:
    client, server = make_client(answer([]))
    assert client.execute_many([]) == []
    assert server.requests == []


def test_execute_many_whole_request_failures_raise(make_client: Any) -> None:
    client, _ = make_client(answer(INVALID, 403))
    with pytest.raises(InvalidTokenError):
        client.execute_many(["{ a }", "{ b }"])


# --------------------------------------------------------------------------- helpers


def projects_server(total: int) -> Callable[[httpx.Request], httpx.Response]:
    """``activeUser.projects`` over ``total`` projects, cursor = index of the next one."""

    def handle(request: httpx.Request) -> httpx.Response:
        variables = json.loads(request.content)["variables"]
        start = int(variables["cursor"] or 0)
        end = min(start + variables["limit"], total)
        items = [{"id": f"p{i}", "name": f"Project {i}"} for i in range(start, end)]
        page = {"totalCount": total, "cursor": str(end) if items else None, "items": items}
        return httpx.Response(200, json={"data": {"activeUser": {"projects": page}}})

    return handle


def test_projects_follow_the_cursor_lazily(make_client: Any) -> None:
    client, server = make_client(projects_server(7))
    projects = client.projects(page_size=3)
    assert server.requests == []  # nothing until the first item is asked for
    first = [next(projects) for _ in range(3)]
    assert [p["id"] for p in first] == ["p0", "p1", "p2"]
    assert len(server.requests) == 1
    rest = list(projects)
    assert [p["id"] for p in rest] == ["p3", "p4", "p5", "p6"]
    # pages 2 and 3, then an empty page that ends the walk
    assert [b["variables"]["cursor"] for b in server.bodies()] == [None, "3", "6", "7"]
    assert all(b["variables"]["limit"] == 3 for b in server.bodies())


def test_projects_search_and_page_size(make_client: Any) -> None:
    client, server = make_client(projects_server(2))
    assert len(list(client.projects(search="tower"))) == 2
    assert server.bodies()[0]["variables"]["filter"] == {"search": "tower"}
    assert server.bodies()[0]["variables"]["limit"] == 25
    with pytest.raises(ValueError, match="page_size"):
        client.projects(page_size=0)


def test_projects_stop_on_a_repeated_cursor(make_client: Any) -> None:
    page = {"totalCount": 9, "cursor": "same", "items": [{"id": "p"}]}
    client, server = make_client(answer({"data": {"activeUser": {"projects": page}}}))
    assert len(list(client.projects())) == 2
    assert len(server.requests) == 2


def test_null_active_user_is_not_signed_in(make_client: Any) -> None:
    client, _ = make_client(answer({"data": {"activeUser": None}}))
    with pytest.raises(NotSignedInError, match=r"sign_in\(\)"):
        client.active_user()
    with pytest.raises(NotSignedInError):
        next(client.projects())


def test_server_info(make_client: Any) -> None:
    info = {"name": "Dev", "version": "2.5.0", "scopes": [{"name": "streams:read"}]}
    client, server = make_client(answer({"data": {"serverInfo": info}}))
    assert client.server_info() == info
    assert "serverInfo" in server.bodies()[0]["query"]


def test_to_specklepy_without_specklepy(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "specklepy.api.client", None)  # import now fails
    client, _ = make_client(answer({}))
    with pytest.raises(ConfigurationError, match=r"speckle-nb\[specklepy\]"):
        client.to_specklepy()


# --------------------------------------------------------------------------- async twin


def test_async_execute_batch_and_close(make_async_client: Any, token: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if isinstance(body, list):
            return httpx.Response(200, json=[{"data": {"i": i}} for i in range(len(body))])
        return httpx.Response(200, json={"data": {"activeUser": DEMO}})

    client, server = make_async_client(handle)

    async def main() -> None:
        async with client:
            assert (await client.active_user()).name == "Demo User"
            results = await client.execute_many(["{ i }"] * 3)
            assert [r.data for r in results] == [{"i": 0}, {"i": 1}, {"i": 2}]
        with pytest.raises(SpeckleError, match="closed"):
            await client.execute("{ a }")

    asyncio.run(main())
    assert server.closed
    assert repr(client) == "AsyncSpeckleClient(server='http://speckle.test', user='Demo User')"
    assert server.requests[0].headers["Authorization"] == f"Bearer {token}"


def test_async_projects_and_errors(make_async_client: Any) -> None:
    client, server = make_async_client(projects_server(5))

    async def main() -> list[str]:
        async with client:
            return [p["id"] async for p in client.projects(page_size=2)]

    assert asyncio.run(main()) == ["p0", "p1", "p2", "p3", "p4"]
    assert len(server.requests) == 4

    client, _ = make_async_client(answer(INVALID, 403))

    async def refused() -> None:
        async with client:
            await client.execute("{ a }")

    with pytest.raises(InvalidTokenError):
        asyncio.run(refused())


def test_async_rate_limit_retry_with_injected_sleep(make_async_client: Any) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client, _ = make_async_client(
        sequence(limited("0.75"), httpx.Response(200, json={"data": {"a": 1}})),
        rate_limit_retries=1,
        sleep=sleep,
    )

    async def main() -> Any:
        async with client:
            return await client.execute("{ a }")

    assert asyncio.run(main()) == {"a": 1}
    assert waits == [0.75]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_async_concurrent_calls_share_one_refresh(make_async_client: Any, kind: str) -> None:
    # One request per call (coalesce=False); test_gql_coalesce.py has the coalesced twin.
    calls: list[int] = []

    async def async_refresher() -> str:
        calls.append(1)
        await asyncio.sleep(0.01)  # let the other calls meet the stale token meanwhile
        return "f" * 42

    def sync_refresher() -> str:
        calls.append(1)
        return "f" * 42

    client, server = make_async_client(
        refreshing_server("f" * 42),
        token_refresher=async_refresher if kind == "async" else sync_refresher,
        coalesce=False,
    )

    async def main() -> Any:
        async with client:
            return await asyncio.gather(*(client.execute("{ ok }") for _ in range(5)))

    assert asyncio.run(main()) == [{"ok": True}] * 5
    assert calls == [1]
    if kind == "async":
        # The refresher awaits, so all five calls meet the stale token before it returns:
        # five refused, five retried with the new token, one refresh between them.
        assert len(server.requests) == 10
    else:
        # A sync refresher never yields: the first call refreshes before the others send.
        assert len(server.requests) == 6


def test_async_transport_error(make_async_client: Any, token: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client, _ = make_async_client(handle)

    async def main() -> None:
        async with client:
            await client.execute("{ a }")

    with pytest.raises(TransportError, match=r"Could not reach http://speckle\.test: no answer"):
        asyncio.run(main())


def test_async_from_credentials(token: str) -> None:
    creds = Credentials("http://speckle.test", token, user=User("u1", "Demo User"))

    async def main() -> str:
        transport = httpx.MockTransport(answer({}))
        async with AsyncSpeckleClient.from_credentials(creds, transport=transport) as client:
            return repr(client)

    assert (
        asyncio.run(main()) == "AsyncSpeckleClient(server='http://speckle.test', user='Demo User')"
    )
