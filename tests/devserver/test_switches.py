"""``DevOptions`` flipped on a running server: latency and faults."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from speckle_nb.devserver import DevOptions, DevServer
from speckle_nb.devserver.state import App

from .helpers import bearer, exchange_body, mint

QUERY = {"query": "{ activeUser { id } }"}


def _timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    answer = send()
    return answer, time.perf_counter() - started


def test_latency_switch(devserver: DevServer, dev_app: App, http: httpx.Client) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])
    devserver.options.latency = True

    code = mint(devserver, dev_app)
    authed, authed_s = _timed(lambda: http.post("/graphql", json=QUERY, headers=bearer(token)))
    exchanged, exchange_s = _timed(
        lambda: http.post("/auth/token", json=exchange_body(dev_app, code))
    )

    assert authed.status_code == exchanged.status_code == 200
    assert authed_s >= 0.06
    assert exchange_s >= 0.12


def test_a_5xx_fault_answers_before_the_route_and_pages_keep_working(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    code = mint(devserver, dev_app)
    devserver.options.fault = "5xx"

    broken = http.post("/auth/token", json=exchange_body(dev_app, code))
    page = http.get("/authn/login")
    devserver.options.fault = None
    healed = http.post("/auth/token", json=exchange_body(dev_app, code))

    assert broken.status_code == 502
    assert "502 Bad Gateway" in broken.text
    assert page.status_code == 200
    assert healed.status_code == 200  # the code never reached the server while broken


def test_a_malformed_fault_is_a_200_that_is_not_json(
    devserver: DevServer, http: httpx.Client
) -> None:
    devserver.options.fault = "malformed"

    answer = http.post("/graphql", json=QUERY)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        answer.json()


def test_a_reset_fault_drops_the_connection(devserver: DevServer, http: httpx.Client) -> None:
    devserver.options.fault = "reset"

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.post("/auth/logout", json={"token": "x"})
    devserver.options.fault = None
    assert http.post("/graphql", json=QUERY).status_code == 200


def test_a_slow_fault_delays_and_stopping_does_not_wait_for_it() -> None:
    server = DevServer(options=DevOptions(fault="slow", slow_seconds=0.3))
    with server.running() as dev, httpx.Client(base_url=dev.url) as http:
        slow, slow_s = _timed(lambda: http.post("/graphql", json=QUERY))
        dev.options.slow_seconds = 30
        with pytest.raises(httpx.ReadTimeout):
            http.post("/graphql", json=QUERY, timeout=0.2)
        stopping = time.perf_counter()
    stop_s = time.perf_counter() - stopping

    assert slow.status_code == 200
    assert slow_s >= 0.3
    assert stop_s < 5
