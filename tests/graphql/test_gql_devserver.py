"""Layer 2: the GraphQL client over real loopback HTTP against the dev server."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from speckle_nb.credentials import User
from speckle_nb.devserver.options import RateLimit
from speckle_nb.errors import (
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
from speckle_nb.graphql import AsyncSpeckleClient, SpeckleClient

READ = ("streams:read", "profile:read", "profile:email", "users:read")


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that counts the requests it sends (one per HTTP round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return super().handle_request(request)


@pytest.fixture
def token(dev: Any) -> str:
    """A PAT of the demo user with the usual read scopes."""
    token: str = dev.state.create_token(dev.demo_user.id, scopes=READ)
    return token


@pytest.fixture
def make(dev: Any, token: str) -> Iterator[Callable[..., SpeckleClient]]:
    """``make(**kwargs)`` → a sync client on the dev server, closed after the test."""
    clients: list[SpeckleClient] = []

    def build(**kwargs: Any) -> SpeckleClient:
        kwargs.setdefault("server_url", dev.url)
        kwargs.setdefault("token", token)
        clients.append(SpeckleClient(**kwargs))
        return clients[-1]

    yield build
    for client in clients:
        client.close()


# --------------------------------------------------------------------------- success paths


def test_active_user_and_server_info(make: Callable[..., SpeckleClient], dev: Any) -> None:
    client = make()
    user = client.active_user()
    assert isinstance(user, User)
    assert user.name == "Demo User"
    assert user.email == "demo@example.org"
    assert user.id == dev.demo_user.id
    assert repr(client) == f"SpeckleClient(server={dev.url!r}, user='Demo User')"
    info = client.server_info()
    assert info["name"]
    assert "version" in info
    assert {"name": "profile:read", "description": "Read your profile information."} in info[
        "scopes"
    ]


def test_one_connection_for_many_calls(make: Callable[..., SpeckleClient]) -> None:
    client = make()
    for _ in range(5):
        client.execute("{ serverInfo { name } }")
    # Keep-alive: httpcore's pool holds the one connection all five calls used.
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1


def test_projects_across_three_pages(make: Callable[..., SpeckleClient]) -> None:
    counter = CountingTransport()
    client = make(transport=counter)
    total = client.execute("{ activeUser { projects(limit: 1) { totalCount } } }")
    expected = total["activeUser"]["projects"]["totalCount"]
    assert expected >= 41  # the seeded demo user has about sixty
    counter.count = 0
    projects = list(client.projects(page_size=20))
    assert len(projects) == expected
    assert len({p["id"] for p in projects}) == expected
    assert counter.count == -(-expected // 20)  # ceil: each page one request, no extra
    assert counter.count >= 3
    stamps = [p["updatedAt"] for p in projects]
    assert stamps == sorted(stamps, reverse=True)  # newest first, as the server orders them


def test_projects_are_lazy_and_searchable(make: Callable[..., SpeckleClient]) -> None:
    counter = CountingTransport()
    client = make(transport=counter)
    projects = client.projects(page_size=5)
    first = next(projects)
    assert counter.count == 1
    assert first["name"].startswith("Demo project")
    found = list(client.projects(page_size=5, search="project 1"))
    assert found
    assert all("project 1" in p["name"].lower() for p in found)


def test_execute_many_is_one_request(make: Callable[..., SpeckleClient], dev: Any) -> None:
    counter = CountingTransport()
    client = make(transport=counter)
    results = client.execute_many(
        [
            "{ activeUser { name } }",
            ("query Q($limit: Int!) { activeUser { projects(limit: $limit) { totalCount } } }",
             {"limit": 1}),
            "{ nonsense }",
            "{ serverInfo { name } }",
        ]
    )  # fmt: skip
    assert counter.count == 1
    assert results[0].data == {"activeUser": {"name": "Demo User"}}
    assert results[1].ok
    assert isinstance(results[2].error, GraphQLError)
    assert results[2].data is None
    assert results[3].data is not None
    assert results[3].data["serverInfo"]["name"]


def test_batch_of_fifty(make: Callable[..., SpeckleClient]) -> None:
    counter = CountingTransport()
    client = make(transport=counter)
    results = client.execute_many(["{ activeUser { id } }"] * 50)
    assert counter.count == 1
    assert len(results) == 50
    assert all(r.ok for r in results)


# --------------------------------------------------------------------------- every error class


def test_invalid_token(make: Callable[..., SpeckleClient]) -> None:
    bogus = "0123456789" + "f" * 32
    client = make(token=bogus)
    with pytest.raises(InvalidTokenError) as caught:
        client.active_user()
    assert caught.value.server_message == "Your token is not valid."
    assert "sign_in()" in str(caught.value)
    assert bogus not in str(caught.value)
    assert bogus not in repr(caught.value)


def test_revoked_token_and_refresh(make: Callable[..., SpeckleClient], dev: Any) -> None:
    doomed = dev.state.create_token(dev.demo_user.id, scopes=READ)
    dev.state.revoke_user_token(doomed, dev.demo_user.id)
    fresh: list[str] = []

    def refresher() -> str:
        fresh.append(dev.state.create_token(dev.demo_user.id, scopes=READ))
        return fresh[-1]

    with pytest.raises(InvalidTokenError):
        make(token=doomed).active_user()
    client = make(token=doomed, token_refresher=refresher)
    assert client.active_user().name == "Demo User"
    assert len(fresh) == 1
    assert fresh[0] not in repr(client)


def test_missing_scope_keeps_partial_data(make: Callable[..., SpeckleClient], dev: Any) -> None:
    narrow = dev.state.create_token(dev.demo_user.id, scopes=["streams:read"])
    client = make(token=narrow)
    with pytest.raises(MissingScopeError) as caught:
        client.execute("{ activeUser { id } serverInfo { name } }")
    error = caught.value
    assert error.scope == "profile:read"
    assert "'profile:read'" in str(error)
    assert error.data is not None
    assert error.data["activeUser"] is None
    assert error.data["serverInfo"]["name"]
    assert error.errors[0]["path"] == ["activeUser"]
    assert error.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert narrow not in str(error)


def test_forbidden_without_scope(make: Callable[..., SpeckleClient], dev: Any) -> None:
    # Another user's private project: FORBIDDEN, but no scope is missing.
    reader = dev.state.create_token(dev.demo_user.id, scopes=["streams:read"])
    alice = dev.state.user_by_email("alice@example.org")
    private = dev.state.add_project(alice.id, "Alice's private project")
    client = make(token=reader)
    with pytest.raises(ForbiddenError) as caught:
        client.execute("query P($id: String!) { project(id: $id) { id } }", {"id": private.id})
    assert not isinstance(caught.value, MissingScopeError)
    assert caught.value.codes == ["FORBIDDEN"]
    assert "You do not have access to the project" in str(caught.value)
    assert reader not in str(caught.value)


class HeaderDroppingTransport(httpx.HTTPTransport):
    """Real HTTP through a "proxy" that strips ``Authorization`` (a known misconfiguration):
    the server then sees an anonymous request, the only way to meet ``UNAUTHORIZED``."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        del request.headers["Authorization"]
        return super().handle_request(request)


def test_unauthorized_when_the_token_does_not_arrive(make: Callable[..., SpeckleClient]) -> None:
    client = make(transport=HeaderDroppingTransport())
    with pytest.raises(UnauthorizedError) as caught:
        client.execute('mutation { apiTokenRevoke(token: "x") }')
    assert caught.value.codes == ["UNAUTHORIZED"]
    assert "sign_in()" in str(caught.value)
    # Anonymous activeUser is null, not an error: active_user() says how to sign in.
    with pytest.raises(NotSignedInError):
        client.active_user()


def test_graphql_errors(make: Callable[..., SpeckleClient]) -> None:
    client = make()
    with pytest.raises(GraphQLError) as parse:
        client.execute("{ activeUser { ")
    assert type(parse.value) is GraphQLError
    with pytest.raises(GraphQLError) as invalid:
        client.execute("{ activeUser { noSuchField } }")
    assert "noSuchField" in str(invalid.value)


def test_rate_limited_then_retried(make: Callable[..., SpeckleClient], dev: Any) -> None:
    # A user of its own: the limiter counts per user, so no other test's calls count here.
    user = dev.state.add_user(f"limited-{secrets.token_hex(4)}@example.org", "pw", "Limited")
    limited = dev.state.create_token(user.id, scopes=READ)
    dev.options.rate_limit = RateLimit(requests=2, per_seconds=0.5)
    client = make(token=limited)
    client.execute("{ activeUser { id } }")
    client.execute("{ activeUser { id } }")
    with pytest.raises(RateLimitedError) as caught:
        client.execute("{ activeUser { id } }")
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 0.5
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    patient = make(token=limited, rate_limit_retries=3, sleep=sleep)
    assert patient.execute("{ activeUser { id } }")["activeUser"]["id"]
    assert len(waits) <= 1  # at most one window to wait out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_server(make: Callable[..., SpeckleClient], token: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = make(server_url=url, timeout=2.0)
    with pytest.raises(TransportError) as caught:
        client.execute("{ serverInfo { name } }")
    assert str(caught.value).startswith(f"Could not reach {url}: ")
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    ("fault", "cls"),
    [("5xx", ServerError), ("malformed", ServerError), ("reset", TransportError),
     ("slow", TransportError)],
)  # fmt: skip
def test_faults(
    make: Callable[..., SpeckleClient], dev: Any, token: str, fault: str, cls: type
) -> None:
    dev.options.fault = fault
    dev.options.slow_seconds = 2.0
    client = make(timeout=0.3)
    with pytest.raises(SpeckleError) as caught:
        client.execute("{ serverInfo { name } }")
    assert type(caught.value) is cls
    assert dev.url in str(caught.value)
    assert token not in str(caught.value)
    if fault == "slow":
        assert "no answer in time" in str(caught.value)


# --------------------------------------------------------------------------- async path


def test_async_client(dev: Any, token: str) -> None:
    async def main() -> None:
        async with AsyncSpeckleClient(dev.url, token) as client:
            user = await client.active_user()
            assert user.name == "Demo User"
            many = await asyncio.gather(
                *(client.execute("{ activeUser { id } }") for _ in range(10))
            )
            assert {m["activeUser"]["id"] for m in many} == {dev.demo_user.id}
            names = [p["name"] async for p in client.projects(page_size=20)]
            assert len(names) >= 41
            results = await client.execute_many(["{ serverInfo { name } }", "{ nope }"])
            assert results[0].ok
            assert not results[1].ok
            info = await client.server_info()
            assert info["name"]
        assert repr(client) == f"AsyncSpeckleClient(server={dev.url!r}, user='Demo User')"

    asyncio.run(main())


def test_async_errors(dev: Any) -> None:
    narrow = dev.state.create_token(dev.demo_user.id, scopes=["streams:read"])

    async def main() -> None:
        async with AsyncSpeckleClient(dev.url, "0123456789" + "e" * 32) as client:
            with pytest.raises(InvalidTokenError):
                await client.active_user()
        async with AsyncSpeckleClient(dev.url, narrow) as client:
            with pytest.raises(MissingScopeError):
                await client.active_user()
        async with AsyncSpeckleClient(f"http://127.0.0.1:{free_port()}", narrow) as client:
            with pytest.raises(TransportError):
                await client.server_info()

    asyncio.run(main())
