"""The latency switch, calibrated to a real Speckle server (docs/devserver.md "Latency"),
and the request counter tests use to see how many requests a client sent.

Only lower bounds are asserted: a sleep guarantees its minimum, while a shared 2-core machine
can always make a request slower. Each bound fails when its part of the switch is removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from speckle_nb.devserver import DevOptions, DevServer
from speckle_nb.devserver.state import App

from .helpers import CHALLENGE, bearer, exchange_body, mint

QUERY = {"query": "{ activeUser { id } }"}
ANONYMOUS = {"query": "{ serverInfo { name } }"}


def _timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = send()
    return answer, time.perf_counter() - started


def test_defaults_are_the_real_server_figures() -> None:
    options = DevOptions()
    assert options.latency is False  # tests stay fast unless they ask
    assert options.request_latency_s == 0.007
    # authenticated GraphQL measured 65–75 ms, /auth/token 130–150 ms, /auth/accesscode ~70
    assert options.request_latency_s + options.auth_latency_s == pytest.approx(0.072)
    assert options.request_latency_s + options.exchange_latency_s == pytest.approx(0.137)
    assert options.token_checks_at_once == 4  # Node's default libuv thread pool
    assert options.consent_delay == 0.0  # the real page's 2 s is opt-in


def test_each_kind_of_request_costs_its_share(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    # Shares larger than the work itself, so that each bound tells its share apart.
    opts = devserver.options
    opts.latency = True
    opts.request_latency_s, opts.auth_latency_s, opts.exchange_latency_s = 0.05, 0.1, 0.2
    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])
    session = devserver.state.create_session_token(devserver.demo_user.id)

    anonymous, anonymous_s = _timed(lambda: http.post("/graphql", json=ANONYMOUS))
    authed, authed_s = _timed(lambda: http.post("/graphql", json=QUERY, headers=bearer(token)))
    code = mint(devserver, dev_app)
    exchanged, exchange_s = _timed(
        lambda: http.post("/auth/token", json=exchange_body(dev_app, code))
    )
    minted, minted_s = _timed(
        lambda: http.get(
            "/auth/accesscode",
            params={"appId": dev_app.id, "challenge": CHALLENGE, "token": session},
        )
    )

    assert anonymous.status_code == authed.status_code == exchanged.status_code == 200
    assert minted.status_code == 302
    assert anonymous_s >= opts.request_latency_s
    assert authed_s >= opts.request_latency_s + opts.auth_latency_s
    assert exchange_s >= opts.request_latency_s + opts.exchange_latency_s
    assert minted_s >= opts.request_latency_s + opts.auth_latency_s


def test_token_checks_queue_for_the_few_slots(devserver: DevServer) -> None:
    # Two slots, eight concurrent authenticated requests: four rounds of checks at least,
    # where unlimited concurrent sleeps would all end after one.
    opts = devserver.options
    opts.latency = True
    opts.request_latency_s = 0.0
    opts.auth_latency_s = 0.1
    opts.token_checks_at_once = 2
    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])

    async def eight() -> tuple[list[int], float]:
        async with httpx.AsyncClient(base_url=devserver.url, timeout=30) as client:
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(client.post("/graphql", json=QUERY, headers=bearer(token)) for _ in range(8))
            )
            return [a.status_code for a in answers], time.perf_counter() - started

    statuses, elapsed = asyncio.run(eight())
    assert statuses == [200] * 8
    assert elapsed >= 4 * 0.1


def test_requests_are_counted_per_route(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    state = devserver.state
    assert state.request_count("/graphql") == 0
    http.post("/graphql", json=ANONYMOUS)
    http.post("/GraphQL/", json=ANONYMOUS)
    http.post("/graphql/anything", json=ANONYMOUS)
    # Refused before the route runs: it still reached the server.
    http.post("/graphql", json=QUERY, headers=bearer("0123456789" + "f" * 32))
    http.post("/auth/token", json=exchange_body(dev_app, mint(devserver, dev_app)))
    assert state.request_count("/graphql") == 4
    assert state.request_count("/graphql/") == 4
    assert state.request_count("/auth/token") == 1
    assert state.request_count("/auth/logout") == 0
