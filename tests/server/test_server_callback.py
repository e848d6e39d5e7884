"""``GET {base_url}speckle-nb/callback``: every named check, the exchange, and the pages."""

from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import pytest
from serverkit import (
    APP_SECRET,
    Browser,
    FakeClock,
    FakeSpeckle,
    Kernel,
    challenge_of,
    pickup,
    set_cookies,
    sign_in,
)
from tornado.web import create_signed_value

from speckle_nb.server.pages import CHANNEL


def note_of(body: bytes) -> dict[str, Any]:
    """The message the page's script posts on the BroadcastChannel."""
    match = re.search(rb"var note = (\{.*?\});", body)
    assert match, body
    note: dict[str, Any] = json.loads(match.group(1))
    return note


def assert_page_basics(response: Any) -> None:
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    csp = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce
    assert f'<script nonce="{nonce.group(1)}">'.encode() in response.body
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert f"new BroadcastChannel({json.dumps(CHANNEL)})".encode() in response.body
    assert b'history.replaceState(null, "", window.location.pathname)' in response.body


def assert_cookie_cleared(response: Any) -> None:
    morsel = set_cookies(response)["speckle-nb-flow"]
    assert morsel.value == "" or morsel["expires"].endswith("GMT")
    assert morsel["path"] == "/a%40b/speckle-nb/"


async def test_success_stores_the_result_and_answers_the_signed_in_page(
    browser: Browser, speckle: FakeSpeckle, service: Any
) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    code = speckle.mint_code(challenge_of(started))
    response = await browser.callback({"access_code": code})

    assert response.code == 200
    assert_page_basics(response)
    text = response.body.decode()
    # the user's name is escaped, and the sentence is the agreed one
    assert "Signed in as Demo &lt;b&gt;User&lt;/b&gt; — you can close this window." in text
    assert "<b>User</b>" not in text
    assert note_of(response.body) == {
        "type": "signed-in",
        "request": kernel.request_id,
        "reason": "ok",
    }
    assert "window.close()" in text
    assert_cookie_cleared(response)
    for secret in [code, APP_SECRET, kernel.secret, *speckle.issued]:
        assert secret not in text
    # the probe, the app's registered redirect URL (start), the exchange, activeUser
    assert speckle.calls == [
        "GET /oauth/token",
        "POST /graphql",
        "POST /auth/token",
        "POST /graphql",
    ]

    status, body, reply = await pickup(browser.fetch, kernel)
    assert status == 200
    assert body["status"] == "ok"
    creds = body["credentials"]
    assert creds["token"] in speckle.tokens
    assert creds["refresh_token"] == speckle.tokens[creds["token"]]
    assert creds["user"]["name"] == "Demo <b>User</b>"
    assert creds["user"]["id"] == "u1"
    assert creds["server_url"] == "http://speckle.test"
    assert creds["app_id"] == "a1b2c3d4e5"
    assert creds["scopes"] == []
    assert reply.headers["Cache-Control"] == "no-store"
    # exactly once
    assert (await pickup(browser.fetch, kernel))[1] == {"status": "pending"}


async def test_s256_exchange_sends_the_verifier_and_no_secret(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    speckle.s256 = True
    speckle.app_secret = "not-the-configured-one"  # proves the S256 path does not use it
    kernel = Kernel()
    response = await sign_in(browser, speckle, kernel)
    assert response.code == 200
    assert "POST /oauth/token" in speckle.calls
    assert "POST /auth/token" not in speckle.calls
    assert (await pickup(browser.fetch, kernel))[1]["status"] == "ok"


async def refused(
    browser: Browser, query: dict[str, str], *, status: int, reason: str, text: str
) -> Any:
    response = await browser.callback(query)
    assert response.code == status, response.body
    assert_page_basics(response)
    assert text.encode() in response.body
    note = note_of(response.body)
    assert note["type"] == "failed"
    assert note["reason"] == reason
    return response


async def test_denied_records_the_denial_for_the_kernel(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    kernel = Kernel()
    await browser.start(kernel)
    response = await refused(
        browser, {"denied": "true"}, status=403, reason="denied", text="choose Authorize"
    )
    assert note_of(response.body)["request"] == kernel.request_id
    assert_cookie_cleared(response)
    assert "POST /auth/token" not in speckle.calls
    _, body, _ = await pickup(browser.fetch, kernel)
    assert body["status"] == "error"
    assert body["reason"] == "denied"
    assert "chose Deny" in body["message"]
    assert "Authorize" not in body["message"]  # the panel gives the next step itself


async def test_missing_code_fails_the_flow(browser: Browser, speckle: FakeSpeckle) -> None:
    kernel = Kernel()
    await browser.start(kernel)
    await refused(browser, {}, status=400, reason="missing-code", text="without an access code")
    _, body, _ = await pickup(browser.fetch, kernel)
    assert body["reason"] == "failed"
    assert "redirect URL" in body["message"]
    assert "POST /auth/token" not in speckle.calls


async def test_no_cookie_changes_nothing(
    browser: Browser, speckle: FakeSpeckle, jp_fetch: Any
) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    code = speckle.mint_code(challenge_of(started))
    stranger = Browser(jp_fetch)  # another browser, same Jupyter user: no flow cookie
    response = await stranger.callback({"access_code": code})
    assert response.code == 400
    assert b"no sign-in in progress" in response.body
    assert note_of(response.body) == {"type": "failed", "request": None, "reason": "no-cookie"}
    assert code in speckle.codes  # not exchanged, so not burned
    assert (await pickup(jp_fetch, kernel))[1] == {"status": "pending"}
    # the right browser still completes it
    assert (await browser.callback({"access_code": code})).code == 200


async def test_forged_cookie_changes_nothing(browser: Browser, speckle: FakeSpeckle) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    code = speckle.mint_code(challenge_of(started))
    real = browser.cookies["speckle-nb-flow"]
    browser.cookies["speckle-nb-flow"] = real[:-3] + ("000" if not real.endswith("000") else "111")
    await refused(
        browser, {"access_code": code}, status=400, reason="bad-cookie", text="invalid or too old"
    )
    assert code in speckle.codes
    _, body, _ = await pickup(browser.fetch, kernel)
    assert body == {"status": "pending"}


async def test_unknown_flow_changes_nothing(
    browser: Browser, speckle: FakeSpeckle, jp_serverapp: Any, service: Any
) -> None:
    kernel = Kernel()
    await browser.start(kernel)
    secret = jp_serverapp.web_app.settings["cookie_secret"]
    forged = create_signed_value(secret, "speckle-nb-flow", secrets.token_urlsafe(24)).decode()
    browser.cookies["speckle-nb-flow"] = forged
    await refused(
        browser,
        {"access_code": "0" * 42},
        status=400,
        reason="unknown-flow",
        text="no longer known here",
    )
    assert "POST /auth/token" not in speckle.calls
    assert [f.status for f in service.store._flows.values()] == ["pending"]


async def test_expired_flow_is_refused_and_the_kernel_hears_expired(
    browser: Browser, speckle: FakeSpeckle, clock: FakeClock
) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    code = speckle.mint_code(challenge_of(started))
    clock.advance(601)
    await refused(browser, {"access_code": code}, status=400, reason="expired", text="expired")
    assert code in speckle.codes
    _, body, _ = await pickup(browser.fetch, kernel)
    assert body["reason"] == "expired"
    assert "10 minutes" in body["message"]


async def test_replayed_callback_is_refused_after_success(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    cookie = browser.cookies["speckle-nb-flow"]
    code = speckle.mint_code(challenge_of(started))
    assert (await browser.callback({"access_code": code})).code == 200
    exchanges = speckle.calls.count("POST /auth/token")
    browser.cookies["speckle-nb-flow"] = cookie  # a replay with the old cookie
    await refused(
        browser,
        {"access_code": code},
        status=409,
        reason="already-finished",
        text="already finished successfully",
    )
    assert speckle.calls.count("POST /auth/token") == exchanges
    # the stored result is untouched by the replay
    assert (await pickup(browser.fetch, kernel))[1]["status"] == "ok"


async def test_refused_exchange_quotes_the_server(browser: Browser) -> None:
    kernel = Kernel()
    assert (await browser.start(kernel)).code == 200
    response = await browser.callback({"access_code": "0" * 42})  # a code Speckle never made
    assert response.code == 502
    assert b"Access code not found." in response.body
    assert b"Start the sign-in again" in response.body
    assert note_of(response.body)["reason"] == "exchange-failed"
    _, body, _ = await pickup(browser.fetch, kernel)
    assert body["reason"] == "failed"
    assert "Access code not found." in body["message"]


async def test_wrong_app_secret_is_the_administrators_to_fix(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    speckle.app_secret = "rotated"  # the configured secret is now wrong
    response = await sign_in(browser, speckle, Kernel())
    assert response.code == 502
    assert b"Invalid app secret. Ensure the app secret is correct." in response.body
    assert note_of(response.body)["reason"] == "misconfigured"  # what the panel hears


async def test_unreachable_server_at_exchange(browser: Browser, speckle: FakeSpeckle) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    code = speckle.mint_code(challenge_of(started))
    speckle.unreachable = True
    response = await browser.callback({"access_code": code})
    assert response.code == 502
    assert b"Could not reach" in response.body or b"unreachable" in response.body
    _, body, _ = await pickup(browser.fetch, kernel)
    assert body["reason"] == "failed"


async def test_failed_active_user_revokes_the_fresh_token(
    browser: Browser, speckle: FakeSpeckle, service: Any
) -> None:
    speckle.graphql_status = 500
    kernel = Kernel()
    response = await sign_in(browser, speckle, kernel)
    assert response.code == 502
    assert b"start it again from the notebook" in response.body  # a next step, always
    await service.close()  # waits for the background revocation
    assert "POST /auth/logout" in speckle.calls
    assert speckle.tokens == {}


async def test_cancelled_while_pending_then_callback(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    status, body, _ = await pickup(browser.fetch, kernel, action="cancel")
    assert status == 200
    assert body["reason"] == "cancelled"
    code = speckle.mint_code(challenge_of(started))
    await refused(
        browser,
        {"access_code": code},
        status=409,
        reason="already-finished",
        text="cancelled from the notebook",
    )
    assert code in speckle.codes


async def test_callback_requires_a_jupyter_login_and_keeps_the_code_out_of_next(
    browser: Browser, jp_fetch: Any
) -> None:
    await browser.start(Kernel())
    logged_out = Browser(jp_fetch, cookies={"speckle-nb-flow": browser.cookies["speckle-nb-flow"]})
    response = await logged_out.get(
        "speckle-nb/callback",
        {"access_code": "c0de" * 10},
        headers={"Authorization": ""},
    )
    assert response.code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/a%40b/login"
    assert "c0de" not in location
    assert "next=%2Fa%2540b%2Fspeckle-nb%2Fcallback" in location


@pytest.mark.parametrize(
    "query",
    [
        {"access_code": "<script>alert(1)</script>"},
        {"denied": "true", "x": "</script><script>alert(1)</script>"},
    ],
)
async def test_nothing_from_the_query_is_reflected(browser: Browser, query: dict[str, str]) -> None:
    await browser.start(Kernel())
    response = await browser.callback(query)
    assert b"alert(1)" not in response.body


async def test_an_unexpected_error_is_logged_without_the_query(
    browser: Browser, speckle: FakeSpeckle, caplog: pytest.LogCaptureFixture
) -> None:
    kernel = Kernel()
    started = await browser.start(kernel)
    code = speckle.mint_code(challenge_of(started))
    speckle.explode = True
    caplog.set_level(logging.DEBUG)
    response = await browser.callback({"access_code": code})
    assert response.code == 500
    assert code.encode() not in response.body
    text = caplog.text
    assert "speckle-nb: uncaught exception in GET /a%40b/speckle-nb/callback" in text
    assert "a bug somewhere below the handler" in text  # the traceback is kept
    assert code not in text
    # the flow is ended, and the kernel hears it
    _, body, _ = await pickup(browser.fetch, kernel)
    assert body["reason"] == "failed"
