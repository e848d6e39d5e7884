"""Fixtures for the GraphQL client's tests: a recording mock server and client factories."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from speckle_nb.graphql import AsyncSpeckleClient, SpeckleClient

#: Shaped like a real Speckle token (42 lowercase hex) so a leak would be easy to spot.
TOKEN = "0123456789" + "abcdef0123456789abcdef0123456789"
SERVER = "http://speckle.test"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A mock GraphQL server: answers with ``handler`` and keeps every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.closed = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


class ClosingMockTransport(httpx.MockTransport):
    """``MockTransport`` that remembers being closed (the client owns one pool for its life)."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self.recorder = recorder

    def close(self) -> None:
        self.recorder.closed = True

    async def aclose(self) -> None:
        self.recorder.closed = True


@pytest.fixture
def token() -> str:
    """The token every mock client here is built with (assert it never leaks)."""
    return TOKEN


@pytest.fixture
def server() -> str:
    return SERVER


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[SpeckleClient, Recorder]]]:
    """``make_client(handler, **kwargs)`` → a sync client on a mock transport, and its recorder."""
    clients: list[SpeckleClient] = []

    def make(handler: Handler, **kwargs: Any) -> tuple[SpeckleClient, Recorder]:
        recorder = Recorder(handler)
        kwargs.setdefault("server_url", SERVER)
        kwargs.setdefault("token", TOKEN)
        client = SpeckleClient(transport=ClosingMockTransport(recorder), **kwargs)
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_async_client() -> Callable[..., tuple[AsyncSpeckleClient, Recorder]]:
    """The async twin of ``make_client``; close the client in the test (``async with``)."""

    def make(handler: Handler, **kwargs: Any) -> tuple[AsyncSpeckleClient, Recorder]:
        recorder = Recorder(handler)
        kwargs.setdefault("server_url", SERVER)
        kwargs.setdefault("token", TOKEN)
        return AsyncSpeckleClient(transport=ClosingMockTransport(recorder), **kwargs), recorder

    return make


# --------------------------------------------------------------------------- layer 2


@pytest.fixture(scope="module")
def _gql_devserver() -> Iterator[Any]:
    """A dev server of this package's own, when the suite-wide ``devserver`` is absent."""
    from speckle_nb.devserver import DevServer

    with DevServer().running() as dev:
        yield dev


@pytest.fixture
def dev(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The dev server (the suite's ``devserver`` fixture if there is one), with every switch
    a test flips (latency, rate limit, fault) put back afterwards."""
    try:
        server = request.getfixturevalue("devserver")
    except pytest.FixtureLookupError:
        server = request.getfixturevalue("_gql_devserver")
    saved = dataclasses.replace(server.options)
    yield server
    for item in dataclasses.fields(saved):
        setattr(server.options, item.name, getattr(saved, item.name))
