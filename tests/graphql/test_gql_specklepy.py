"""Layer 2: ``to_specklepy()`` hands the same server and token to specklepy's client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("specklepy", reason="specklepy (Python ≥ 3.11) is the optional extra")

from speckle_nb.errors import InvalidTokenError
from speckle_nb.graphql import AsyncSpeckleClient, SpeckleClient


@pytest.fixture(autouse=True)
def _no_telemetry() -> Iterator[None]:
    from specklepy.logging import metrics

    metrics.disable()  # never post to analytics.speckle.systems from a test
    yield
    metrics.enable()


@pytest.fixture
def token(dev: Any) -> str:
    token: str = dev.state.create_token(
        dev.demo_user.id, scopes=["streams:read", "profile:read", "profile:email"]
    )
    return token


def test_to_specklepy_uses_the_same_server_and_token(dev: Any, token: str) -> None:
    with SpeckleClient(dev.url, token) as client:
        speckle = client.to_specklepy()
    # `http://` survived: specklepy takes the scheme from use_ssl, which came from our URL.
    assert speckle.url == dev.url
    assert speckle.graphql == f"{dev.url}/graphql"
    assert speckle.account.token == token
    assert speckle.account.userInfo.email == "demo@example.org"
    assert speckle.active_user.get().name == "Demo User"
    projects = speckle.active_user.get_projects(limit=5)
    assert len(projects.items) == 5


def test_async_to_specklepy(dev: Any, token: str) -> None:
    async def main() -> Any:
        async with AsyncSpeckleClient(dev.url, token) as client:
            return await client.to_specklepy()

    speckle = asyncio.run(main())
    assert speckle.active_user.get().name == "Demo User"


def test_to_specklepy_with_a_refused_token(dev: Any) -> None:
    bogus = "0123456789" + "d" * 32
    with SpeckleClient(dev.url, bogus) as client, pytest.raises(InvalidTokenError) as caught:
        client.to_specklepy()
    assert bogus not in str(caught.value)
