"""Coalescing: concurrent ``execute()`` calls travel as one request; ``SpeckleClient.batch()``.

Layer 2 (the dev server on loopback counts the requests that reach it) for what the issue
asks to see at the server; layer 1 (``MockTransport``) for the edges a server cannot be made
to show on cue: splitting, cancellation, failures of one request among several.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from speckle_nb.devserver.options import RateLimit
from speckle_nb.errors import (
    GraphQLError,
    InvalidTokenError,
    RateLimitedError,
    ServerError,
    SpeckleError,
    TransportError,
)
from speckle_nb.graphql import MAX_BATCH_SIZE, AsyncSpeckleClient, Deferred, SpeckleClient

T = TypeVar("T")
READ = ("streams:read", "profile:read", "profile:email", "users:read")
N = 50
BAD = 7  # the one caller whose query is wrong


def aliased(i: int) -> str:
    """A query whose answer says which caller it belongs to (``{"n<i>": {...}}``)."""
    return f"query {{ n{i}: activeUser {{ id }} }}"


@pytest.fixture
def user_token(dev: Any) -> str:
    """A PAT of a user of this test's own: the rate limiter counts per user."""
    user = dev.state.add_user(f"co-{secrets.token_hex(4)}@example.org", "pw", "Coalesced")
    token: str = dev.state.create_token(user.id, scopes=READ)
    return token


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with a deadline: a caller left without an answer fails, not hangs."""
    return asyncio.run(asyncio.wait_for(main, timeout=20))


def graphql_requests(dev: Any) -> int:
    return int(dev.state.request_count("/graphql"))


async def gather_fifty(client: AsyncSpeckleClient, bad: int | None = None) -> list[Any]:
    queries = [("{ nonsense }" if i == bad else aliased(i)) for i in range(N)]
    return await asyncio.gather(*(client.execute(q) for q in queries), return_exceptions=True)


# --------------------------------------------------------------------------- at the dev server


def test_fifty_concurrent_calls_are_at_most_two_requests_in_order(
    dev: Any, user_token: str
) -> None:
    async def main() -> list[Any]:
        async with AsyncSpeckleClient(dev.url, user_token) as client:
            return await gather_fifty(client, bad=BAD)

    before = graphql_requests(dev)
    answers = run(main())
    assert graphql_requests(dev) - before <= 2
    for i, got in enumerate(answers):
        if i == BAD:
            # The wrong query's error stays with its caller, typed as execute() raises it.
            assert type(got) is GraphQLError
            assert "nonsense" in str(got)
        else:
            assert isinstance(got, dict), f"caller {i} got {got!r}"
            assert list(got) == [f"n{i}"]
            assert got[f"n{i}"]["id"]


def test_switched_off_each_call_is_a_request(dev: Any, user_token: str) -> None:
    async def main() -> list[Any]:
        async with AsyncSpeckleClient(dev.url, user_token, coalesce=False) as client:
            return await gather_fifty(client)

    before = graphql_requests(dev)
    answers = run(main())
    assert graphql_requests(dev) - before == N
    assert [list(a) for a in answers] == [[f"n{i}"] for i in range(N)]


def test_a_refused_token_reaches_every_caller(dev: Any, user_token: str) -> None:
    dev.state.revoke_user_token(user_token, dev.state.validate_token(user_token).user_id)

    async def main() -> list[Any]:
        async with AsyncSpeckleClient(dev.url, user_token) as client:
            return await gather_fifty(client, bad=BAD)

    before = graphql_requests(dev)
    answers = run(main())
    assert graphql_requests(dev) - before == 1
    assert all(type(a) is InvalidTokenError for a in answers), answers
    assert all(a.server_message == "Your token is not valid." for a in answers)
    assert all(user_token not in str(a) for a in answers)


def test_a_rate_limit_reaches_every_caller(dev: Any, user_token: str) -> None:
    # 50 operations in one batch count 50 hits (§9): over a limit of 20 per minute.
    dev.options.rate_limit = RateLimit(requests=20, per_seconds=60)

    async def main() -> list[Any]:
        async with AsyncSpeckleClient(dev.url, user_token) as client:
            return await gather_fifty(client)

    answers = run(main())
    assert all(type(a) is RateLimitedError for a in answers), answers
    assert all(a.retry_after is not None and 0 < a.retry_after <= 60 for a in answers)


def test_refresh_through_a_batch(dev: Any, user_token: str) -> None:
    user_id = dev.state.validate_token(user_token).user_id
    dev.state.revoke_user_token(user_token, user_id)
    fresh: list[str] = []

    def refresher() -> str:
        fresh.append(dev.state.create_token(user_id, scopes=READ))
        return fresh[-1]

    async def main() -> list[Any]:
        async with AsyncSpeckleClient(dev.url, user_token, token_refresher=refresher) as client:
            answers = await gather_fifty(client)
            # The new token stays: a later call needs no refresh.
            answers.append(await client.execute(aliased(N)))
            return answers

    before = graphql_requests(dev)
    answers = run(main())
    # refused batch, the same batch with the new token, the later call
    assert graphql_requests(dev) - before == 3
    assert len(fresh) == 1
    assert [list(a) for a in answers] == [[f"n{i}"] for i in range(N + 1)]


def test_sync_batch_fills_at_exit(dev: Any, user_token: str) -> None:
    before = graphql_requests(dev)
    with SpeckleClient(dev.url, user_token) as client, client.batch() as batch:
        deferred = [batch.execute("{ nonsense }" if i == BAD else aliased(i)) for i in range(N)]
        assert not deferred[0].done()
        with pytest.raises(SpeckleError, match="after the block"):
            deferred[0].result()
    assert graphql_requests(dev) - before == 1
    assert all(d.done() for d in deferred)
    for i, item in enumerate(deferred):
        if i == BAD:
            with pytest.raises(GraphQLError, match="nonsense"):
                item.result()
            assert item.outcome is not None
            assert item.outcome.errors
        else:
            assert list(item.result()) == [f"n{i}"]


def test_sync_batch_whole_request_failure_raises_at_exit_and_from_each(
    dev: Any, user_token: str
) -> None:
    dev.state.revoke_user_token(user_token, dev.state.validate_token(user_token).user_id)
    queued: list[Deferred] = []
    with SpeckleClient(dev.url, user_token) as client:

        def send() -> None:
            with client.batch() as batch:
                queued.extend([batch.execute(aliased(0)), batch.execute(aliased(1))])

        with pytest.raises(InvalidTokenError):
            send()
    assert len(queued) == 2
    for item in queued:
        with pytest.raises(InvalidTokenError):
            item.result()


# --------------------------------------------------------------------------- on MockTransport


def batch_server(requests: list[Any]) -> Callable[[httpx.Request], httpx.Response]:
    """Answers any single or batched request; keeps each parsed body."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append(body)
        if isinstance(body, list):
            return httpx.Response(200, json=[{"data": {"q": e["query"]}} for e in body])
        return httpx.Response(200, json={"data": {"q": body["query"]}})

    return handle


@pytest.fixture
def seen() -> list[Any]:
    return []


@pytest.fixture
def mock_async(make_async_client: Any, seen: list[Any]) -> Callable[..., AsyncSpeckleClient]:
    def make(**kwargs: Any) -> AsyncSpeckleClient:
        client, _ = make_async_client(kwargs.pop("handler", batch_server(seen)), **kwargs)
        return client  # type: ignore[no-any-return]

    return make


def test_more_than_the_maximum_is_split(mock_async: Any, seen: list[Any]) -> None:
    async def main() -> list[Any]:
        async with mock_async() as client:
            return await asyncio.gather(*(client.execute(f"q{i}") for i in range(120)))

    assert [a["q"] for a in run(main())] == [f"q{i}" for i in range(120)]
    assert [len(body) for body in seen] == [MAX_BATCH_SIZE, MAX_BATCH_SIZE, 20]


def test_execute_many_and_batch_split_too(make_client: Any, seen: list[Any]) -> None:
    client, _ = make_client(batch_server(seen), max_batch_size=10)
    assert [r.data for r in client.execute_many([f"q{i}" for i in range(25)])] == [
        {"q": f"q{i}"} for i in range(25)
    ]
    with client.batch() as batch:
        answers = [batch.execute(f"b{i}") for i in range(11)]
    assert [a.result()["q"] for a in answers] == [f"b{i}" for i in range(11)]
    assert [len(body) for body in seen] == [10, 10, 5, 10, 1]


@pytest.mark.parametrize("size", [0, MAX_BATCH_SIZE + 1])
def test_batch_size_is_bounded(size: int) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        SpeckleClient("http://speckle.test", "x" * 42, max_batch_size=size)


def test_a_lone_call_is_a_plain_request(mock_async: Any, seen: list[Any]) -> None:
    async def main() -> Any:
        async with mock_async() as client:
            first = await client.execute("one")
            second = await client.execute("two")  # awaited in turn: never together
            return first, second

    assert run(main()) == ({"q": "one"}, {"q": "two"})
    assert seen == [{"query": "one"}, {"query": "two"}]


def test_a_caller_cancelled_before_sending_is_left_out(mock_async: Any, seen: list[Any]) -> None:
    async def main() -> list[Any]:
        async with mock_async() as client:
            tasks = [asyncio.ensure_future(client.execute(f"q{i}")) for i in range(3)]
            await asyncio.sleep(0)  # every task has queued its operation; none is sent
            tasks[1].cancel()
            return await asyncio.gather(*tasks, return_exceptions=True)

    answers = run(main())
    assert isinstance(answers[1], asyncio.CancelledError)
    assert answers[0] == {"q": "q0"}
    assert answers[2] == {"q": "q2"}
    assert seen == [[{"query": "q0"}, {"query": "q2"}]]


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, {"err": "nope"}, ServerError),
        (403, {"error": "Your token is not valid."}, InvalidTokenError),
        (429, {"error": {"code": "RATE_LIMIT_ERROR"}}, RateLimitedError),
        (502, None, ServerError),
        (None, None, TransportError),
    ],
    ids=["401", "403", "429", "502", "transport"],
)
def test_a_failed_request_fails_every_caller_in_it(
    mock_async: Any, status: int | None, body: Any, cls: type
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if status is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(status, json=body)

    async def main() -> list[Any]:
        async with mock_async(handler=handle) as client:
            return await asyncio.gather(
                *(client.execute(f"q{i}") for i in range(5)), return_exceptions=True
            )

    answers = run(main())
    assert [type(a) for a in answers] == [cls] * 5


def test_one_failed_chunk_fails_only_its_callers(mock_async: Any, seen: list[Any]) -> None:
    ok = batch_server(seen)

    def handle(request: httpx.Request) -> httpx.Response:
        if b'"q0"' in request.content:
            return httpx.Response(502, text="bad gateway")
        return ok(request)

    async def main() -> list[Any]:
        async with mock_async(handler=handle, max_batch_size=2) as client:
            return await asyncio.gather(
                *(client.execute(f"q{i}") for i in range(4)), return_exceptions=True
            )

    answers = run(main())
    assert [type(a) for a in answers[:2]] == [ServerError, ServerError]
    assert answers[2:] == [{"q": "q2"}, {"q": "q3"}]


def test_sync_batch_keeps_the_answers_before_a_failed_request(make_client: Any) -> None:
    seen: list[Any] = []
    ok = batch_server(seen)

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="down") if seen else ok(request)

    client, _ = make_client(handle, max_batch_size=2)
    with pytest.raises(ServerError), client.batch() as batch:
        answers = [batch.execute(f"q{i}") for i in range(4)]
    assert [a.result() for a in answers[:2]] == [{"q": "q0"}, {"q": "q1"}]
    for later in answers[2:]:
        with pytest.raises(ServerError):
            later.result()


def test_sync_batch_sends_nothing_when_the_block_raises(make_client: Any) -> None:
    seen: list[Any] = []
    client, _ = make_client(batch_server(seen))
    kept: list[Any] = []

    def fail_inside() -> None:
        with client.batch() as batch:
            kept.extend([batch, batch.execute("q")])
            raise KeyError("user code failed")

    with pytest.raises(KeyError):
        fail_inside()
    batch, queued = kept
    assert seen == []
    with pytest.raises(SpeckleError, match="block raised"):
        queued.result()
    with pytest.raises(SpeckleError, match="sent already"):
        batch.execute("late")


def test_closed_async_client_refuses_before_queueing(mock_async: Any, seen: list[Any]) -> None:
    async def main() -> None:
        client = mock_async()
        await client.aclose()
        with pytest.raises(SpeckleError, match="closed"):
            await client.execute("q")

    run(main())
    assert seen == []
