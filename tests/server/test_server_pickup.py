"""``POST pickup`` (the kernel's long poll) and ``POST refresh``: no Jupyter login, a secret."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
from serverkit import (
    APP_SECRET,
    Browser,
    FakeClock,
    FakeSpeckle,
    Kernel,
    challenge_of,
    pickup,
    sign_in,
)


async def test_pickup_needs_no_jupyter_login_and_no_xsrf(browser: Browser) -> None:
    kernel = Kernel()
    await sign_in(browser, FakeSpeckle(), kernel)  # a start/callback of another Speckle: fails
    # `pickup()` sends no token, no cookie, no _xsrf: like a kernel under JupyterHub
    status, body, reply = await pickup(browser.fetch, kernel)
    assert status == 200
    assert body["status"] == "error"
    assert reply.headers["Cache-Control"] == "no-store"


async def test_result_is_delivered_exactly_once(browser: Browser, speckle: FakeSpeckle) -> None:
    kernel = Kernel()
    assert (await sign_in(browser, speckle, kernel)).code == 200
    first = await pickup(browser.fetch, kernel)
    assert first[1]["status"] == "ok"
    second = await pickup(browser.fetch, kernel)
    assert second[1] == {"status": "pending"}


async def test_wrong_secret_is_refused_at_once_and_changes_nothing(
    browser: Browser, speckle: FakeSpeckle, service: Any
) -> None:
    kernel = Kernel()
    assert (await sign_in(browser, speckle, kernel)).code == 200
    began = time.monotonic()
    status, body, reply = await pickup(browser.fetch, kernel, secret="guess", hold=5)
    assert time.monotonic() - began < 2  # not held
    assert status == 403
    assert body["reason"] == "forbidden"
    assert "token" not in json.dumps(body).replace("pickup", "")  # no credentials in it
    assert reply.headers["Cache-Control"] == "no-store"
    # a wrong-secret cancel neither cancels nor deletes
    assert (await pickup(browser.fetch, kernel, secret="guess", action="cancel"))[0] == 403
    assert service.store.counts()["entries"] == 1
    assert (await pickup(browser.fetch, kernel))[1]["status"] == "ok"


async def test_unknown_request_is_pending_after_the_hold(browser: Browser) -> None:
    began = time.monotonic()
    status, body, _ = await pickup(browser.fetch, Kernel(), hold=0.3)
    assert time.monotonic() - began >= 0.3
    assert (status, body) == (200, {"status": "pending"})


async def test_long_poll_returns_as_soon_as_the_callback_stores_the_result(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    kernel = Kernel()
    waiting = asyncio.ensure_future(pickup(browser.fetch, kernel, hold=20))
    await asyncio.sleep(0.1)  # the kernel is waiting before the user even clicked
    began = time.monotonic()
    assert (await sign_in(browser, speckle, kernel)).code == 200
    _status, body, _ = await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - began < 3
    assert body["status"] == "ok"


async def test_refused_callback_reaches_the_waiting_pickup_at_once(browser: Browser) -> None:
    kernel = Kernel()
    await browser.start(kernel)
    waiting = asyncio.ensure_future(pickup(browser.fetch, kernel, hold=20))
    await asyncio.sleep(0.1)
    await browser.callback({"denied": "true"})
    _status, body, _ = await asyncio.wait_for(waiting, 5)
    assert body["status"] == "error"
    assert body["reason"] == "denied"


async def test_superseded_flow_reaches_the_waiting_pickup(browser: Browser) -> None:
    first, second = Kernel(), Kernel()
    await browser.start(first)
    waiting = asyncio.ensure_future(pickup(browser.fetch, first, hold=20))
    await asyncio.sleep(0.1)
    await browser.start(second)
    _, body, _ = await asyncio.wait_for(waiting, 5)
    assert body["reason"] == "superseded"


async def test_expiry_reaches_the_waiting_pickup(
    browser: Browser, clock: FakeClock, service: Any
) -> None:
    kernel = Kernel()
    await browser.start(kernel)
    waiting = asyncio.ensure_future(pickup(browser.fetch, kernel, hold=20))
    await asyncio.sleep(0.1)
    clock.advance(600)
    service.store.purge()  # any request does this; in real time the waiter wakes by itself
    _, body, _ = await asyncio.wait_for(waiting, 5)
    assert body["reason"] == "expired"


async def test_cancel_ends_the_flow(browser: Browser, speckle: FakeSpeckle, service: Any) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    status, body, _ = await pickup(browser.fetch, kernel, action="cancel")
    assert (status, body["status"], body["reason"]) == (200, "error", "cancelled")
    code = speckle.mint_code(challenge_of(started))
    assert (await browser.callback({"access_code": code})).code == 409
    assert code in speckle.codes
    # the same request cannot be started again
    assert (await browser.start(kernel)).code == 409
    # a waiting thread of the kernel hears it once; then the request is gone
    assert (await pickup(browser.fetch, kernel))[1]["reason"] == "cancelled"
    assert (await pickup(browser.fetch, kernel))[1] == {"status": "pending"}
    assert service.store.counts()["entries"] == 0


async def test_cancel_wakes_a_held_poll(browser: Browser) -> None:
    kernel = Kernel()
    await browser.start(kernel)
    waiting = asyncio.ensure_future(pickup(browser.fetch, kernel, hold=20))
    await asyncio.sleep(0.1)
    await pickup(browser.fetch, kernel, action="cancel")
    _, body, _ = await asyncio.wait_for(waiting, 5)
    assert body["reason"] == "cancelled"


async def test_cancel_discards_and_revokes_a_ready_result(
    browser: Browser, speckle: FakeSpeckle, service: Any
) -> None:
    kernel = Kernel()
    assert (await sign_in(browser, speckle, kernel)).code == 200
    assert len(speckle.tokens) == 1
    await pickup(browser.fetch, kernel, action="cancel")
    await service.close()  # waits for the background revocation
    assert speckle.tokens == {}
    assert (await pickup(browser.fetch, kernel))[1]["reason"] == "cancelled"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"request": "short", "secret": "s"}',
        b'{"request": "rrrrrrrrrrrrrrrrrrrr", "secret": ""}',
        b'{"request": "rrrrrrrrrrrrrrrrrrrr", "secret": "s", "hold": -1}',
        b'{"request": "rrrrrrrrrrrrrrrrrrrr", "secret": "s", "hold": "10"}',
        b'{"request": "rrrrrrrrrrrrrrrrrrrr", "secret": "s", "action": "steal"}',
        b'{"request": "rrrrrrrrrrrrrrrrrrrr", "secret": "\\ud800"}',  # lone surrogate
    ],
)
async def test_malformed_bodies_answer_400_json(jp_fetch: Any, body: bytes) -> None:
    reply = await jp_fetch(
        "speckle-nb",
        "pickup",
        method="POST",
        body=body,
        headers={"Authorization": ""},
        raise_error=False,
        allow_nonstandard_methods=True,
    )
    assert reply.code == 400
    answer = json.loads(reply.body)
    assert answer["status"] == "error"
    assert answer["reason"] == "bad-request"
    assert reply.headers["X-Speckle-NB"]


async def test_hold_is_capped_by_configuration(browser: Browser, service: Any) -> None:
    object.__setattr__(service.settings, "pickup_hold", 0.2)
    began = time.monotonic()
    _, body, _ = await pickup(browser.fetch, Kernel(), hold=30)
    assert time.monotonic() - began < 5
    assert body == {"status": "pending"}


async def test_cross_origin_browser_posts_are_rejected(jp_fetch: Any) -> None:
    reply = await jp_fetch(
        "speckle-nb",
        "pickup",
        method="POST",
        body=json.dumps({"request": "r" * 20, "secret": "s", "hold": 0}),
        headers={"Authorization": "", "Origin": "https://evil.example"},
        raise_error=False,
    )
    assert reply.code == 404


# ---------------------------------------------------------------------- refresh


async def refresh(fetch: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    reply = await fetch(
        "speckle-nb",
        "refresh",
        method="POST",
        body=json.dumps(body),
        headers={"Authorization": ""},
        raise_error=False,
    )
    assert reply.headers["Cache-Control"] == "no-store"
    return reply.code, json.loads(reply.body)


async def test_refresh_uses_the_secret_held_by_the_server(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    kernel = Kernel()
    await sign_in(browser, speckle, kernel)
    creds = (await pickup(browser.fetch, kernel))[1]["credentials"]
    status, body = await refresh(
        browser.fetch,
        {"server_url": "http://speckle.test/", "refresh_token": creds["refresh_token"]},
    )
    assert status == 200
    assert body["status"] == "ok"
    assert body["token"] in speckle.tokens
    assert body["token"] != creds["token"]
    assert APP_SECRET not in json.dumps(body)


async def test_refresh_refusal_quotes_the_server(jp_fetch: Any) -> None:
    status, body = await refresh(
        jp_fetch, {"server_url": "http://speckle.test", "refresh_token": "f" * 42}
    )
    assert status == 200
    assert body["status"] == "error"
    assert body["reason"] == "refused"
    assert body["server_message"] == "Invalid request"
    assert "Sign in again" in body["message"]


async def test_refresh_never_sends_the_secret_to_another_server(
    jp_fetch: Any, speckle: FakeSpeckle
) -> None:
    status, body = await refresh(
        jp_fetch, {"server_url": "https://evil.example", "refresh_token": "f" * 42}
    )
    assert status == 403
    assert body["reason"] == "server-not-allowed"
    assert speckle.calls == []


async def test_refresh_malformed(jp_fetch: Any) -> None:
    status, body = await refresh(jp_fetch, {"server_url": "http://speckle.test"})
    assert status == 400
    assert body["reason"] == "bad-request"


async def test_ping_answers_quietly_without_a_login(
    jp_fetch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await jp_fetch(
        "speckle-nb",
        "pickup",
        method="POST",
        body=json.dumps({"action": "ping"}),
        headers={"Authorization": ""},
    )
    assert reply.code == 200
    assert json.loads(reply.body) == {"status": "ready", "version": "0.1.0", "app_configured": True}
    assert reply.headers["X-Speckle-NB"] == "0.1.0"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
