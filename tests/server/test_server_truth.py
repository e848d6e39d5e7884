"""Say what will fail before the user waits (issue 15, server side): a redirect URL Speckle
will not store, a Jupyter address that does not match the app's registered redirect URL, an
app id the server does not know, and a wrong app secret (which "Try again" cannot fix)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest
from serverkit import (
    APP_ID,
    APP_SECRET,
    Browser,
    FakeSpeckle,
    Kernel,
    challenge_of,
    pickup,
    sign_in,
)
from test_server_redirect import startup_lines

from speckle_nb import errors
from speckle_nb.pickup import PickupClient, SignInRequest

LONG_BASE = "/" + "a-rather-long-base-url" * 4 + "/"


def message_of(body: bytes) -> str:
    match = re.search(rb'<p id="message">([^<]*)</p>', body)
    assert match, body[:400]
    import html

    return html.unescape(match.group(1).decode())


def our_callback(port: int, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/a%40b/speckle-nb/callback"


# ------------------------------------------------------------------- redirect URL length


class TestLongBaseURL:
    @pytest.fixture
    def jp_base_url(self) -> str:
        return LONG_BASE

    async def test_status_names_the_too_long_redirect_url_and_the_fix(self, jp_fetch: Any) -> None:
        status = json.loads((await jp_fetch("speckle-nb", "status")).body)
        url = status["redirect_url"]
        assert len(url) > 100
        (problem,) = [p for p in status["problems"] if "characters long" in p]
        assert f"The redirect URL {url} is {len(url)} characters long" in problem
        assert "Speckle accepts at most 100" in problem
        assert "c.SpeckleNB.redirect_url" in problem

    async def test_start_up_log_warns_with_the_shortest_length(
        self, jp_serverapp: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        warnings = [
            r.getMessage()
            for r in startup_lines(jp_serverapp, caplog)
            if r.levelno == logging.WARNING and "characters long" in r.getMessage()
        ]
        shortest = len("http://a" + LONG_BASE + "speckle-nb/callback")
        assert len(warnings) == 1, warnings
        assert f"is at least {shortest} characters long" in warnings[0]


async def test_a_short_redirect_url_is_no_problem(jp_fetch: Any) -> None:
    status = json.loads((await jp_fetch("speckle-nb", "status")).body)
    assert status["problems"] == []


@pytest.mark.parametrize(
    "speckle_config", [{"redirect_url": "https://hub.example.org/" + "x" * 90 + "/callback"}]
)
async def test_a_configured_redirect_url_too_long_is_logged_exactly(
    jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    warnings = [
        r.getMessage()
        for r in startup_lines(jp_serverapp, caplog)
        if "characters long" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "is 123 characters long" in warnings[0]


# ------------------------------------------------------------------- the registered URL


async def test_start_at_another_address_than_the_registered_one_is_refused_at_once(
    browser: Browser, speckle: FakeSpeckle, service: Any, jp_http_port: int
) -> None:
    registered = our_callback(jp_http_port, "localhost")
    speckle.registered_redirect = registered
    kernel = Kernel()
    response = await browser.start(kernel)
    assert response.code == 409
    message = message_of(response.body)
    assert registered in message
    assert our_callback(jp_http_port) in message
    assert (
        f"Open Jupyter at the address the app is registered for (http://localhost:{jp_http_port})"
        in message
    )
    assert "c.SpeckleNB.redirect_url" in message
    assert b"redirect-mismatch" in response.body  # the BroadcastChannel's reason word
    assert service.store.counts()["flows"] == 0
    # the kernel hears it at once, as something trying again cannot fix
    _, body, _ = await pickup(browser.fetch, kernel)
    assert (body["reason"], body["message"]) == ("misconfigured", message)
    # one lookup per app and server
    assert (await browser.start(Kernel())).code == 409
    assert speckle.calls.count("POST /graphql") == 1


@pytest.mark.parametrize(
    "registered",
    [
        "HTTP://127.0.0.1:{port}/a@b/speckle-nb/callback",  # case, a decoded path
        # https: behind a TLS-terminating proxy whose headers this server does not trust,
        # it sees http — our guess is wrong, the registered URL works
        "https://127.0.0.1:{port}/a%40b/speckle-nb/callback",
    ],
)
async def test_start_at_the_registered_address_goes_on(
    browser: Browser, speckle: FakeSpeckle, jp_http_port: int, registered: str
) -> None:
    speckle.registered_redirect = registered.format(port=jp_http_port)
    assert (await browser.start(Kernel())).code == 200


@pytest.mark.parametrize(
    "registered",
    [
        "http://127.0.0.1:{other}/a%40b/speckle-nb/callback",  # another port
        "http://127.0.0.1:{port}/speckle-nb/callback",  # another base URL
        "http://127.0.0.1:{port}/a%40b/speckle-nb/callback/",  # a path tornado does not route
    ],
)
async def test_start_at_another_port_or_path_is_refused(
    browser: Browser, speckle: FakeSpeckle, jp_http_port: int, registered: str
) -> None:
    speckle.registered_redirect = registered.format(port=jp_http_port, other=jp_http_port + 1)
    assert (await browser.start(Kernel())).code == 409


async def test_status_names_a_mismatch_once_start_has_seen_it(
    browser: Browser, speckle: FakeSpeckle, jp_http_port: int
) -> None:
    speckle.registered_redirect = our_callback(jp_http_port, "localhost")
    await browser.start(Kernel())
    status = json.loads((await browser.get("speckle-nb/status")).body)
    assert any(speckle.registered_redirect in p for p in status["problems"]), status


@pytest.mark.parametrize(
    "speckle_config", [{"redirect_url": "https://proxy.example.org/speckle-nb/callback"}]
)
async def test_a_configured_redirect_url_that_differs_from_the_registered_one(
    browser: Browser, speckle: FakeSpeckle, jp_http_port: int
) -> None:
    speckle.registered_redirect = our_callback(jp_http_port)
    response = await browser.start(Kernel())
    assert response.code == 409
    message = message_of(response.body)
    assert "this Jupyter server's redirect_url setting is" in message
    assert "https://proxy.example.org/speckle-nb/callback" in message
    assert "The administrator must make them equal" in message


async def test_an_app_id_the_server_does_not_know(browser: Browser, speckle: FakeSpeckle) -> None:
    speckle.has_app = False
    kernel = Kernel()
    response = await browser.start(kernel)
    assert response.code == 503
    message = message_of(response.body)
    assert f"has no app with the id {APP_ID!r}" in message
    assert "SPECKLE_APP_ID" in message
    assert (await pickup(browser.fetch, kernel))[1]["reason"] == "misconfigured"


async def test_a_failed_lookup_does_not_block_the_sign_in(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    # FakeSpeckle answers app(id:) with 403 unless told otherwise: nothing to compare with
    kernel = Kernel()
    assert (await sign_in(browser, speckle, kernel)).code == 200
    assert (await pickup(browser.fetch, kernel))[1]["status"] == "ok"


async def test_the_kernel_is_told_to_fix_a_setting_not_to_try_again(
    browser: Browser,
    speckle: FakeSpeckle,
    jp_serverapp: Any,
    http_server: Any,
    jp_http_port: int,
) -> None:
    speckle.registered_redirect = our_callback(jp_http_port, "localhost")
    request = SignInRequest.new()
    params = {"request": request.request_id, "pickup": request.pickup_hash}
    assert (await browser.get("speckle-nb/start", params)).code == 409
    with (
        PickupClient(f"http://127.0.0.1:{jp_http_port}/a%40b/") as client,
        pytest.raises(errors.ConfigurationError, match="sends sign-ins back to"),
    ):
        await asyncio.to_thread(client.poll, request, hold=0)


# ------------------------------------------------------------------- a wrong app secret


async def test_a_wrong_app_secret_names_the_setting_and_not_try_again(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    speckle.app_secret = "the-real-one-" + APP_SECRET  # the server holds another
    kernel = Kernel()
    started = await browser.start(kernel)
    code = speckle.mint_code(challenge_of(started))
    response = await browser.callback({"access_code": code})
    assert response.code == 502
    message = message_of(response.body)
    assert "The app secret this Jupyter server uses is wrong" in message
    assert "Invalid app secret" in message  # Speckle's own words
    assert "SPECKLE_APP_SECRET" in message
    assert "restarts Jupyter" in message
    assert "try again" not in message.lower()
    assert "start it again" not in message.lower()
    assert APP_SECRET not in response.body.decode()
    _, body, _ = await pickup(browser.fetch, kernel)
    assert (body["reason"], body["message"]) == ("misconfigured", message)


async def test_behind_a_proxy_the_notebook_pages_address_is_compared(
    browser: Browser, speckle: FakeSpeckle, jp_http_port: int
) -> None:
    """The proxy's headers are not trusted, so the server sees Host 127.0.0.1:<port>; the
    browser is at https://jupyter.example.org, the address the app is registered for."""
    speckle.registered_redirect = "https://jupyter.example.org/a%40b/speckle-nb/callback"
    page = {"Referer": "https://jupyter.example.org/a%40b/lab/tree/x.ipynb"}
    assert (await browser.start(Kernel(), headers=page)).code == 200
    # ... and a notebook page at another address than the registered one is told so
    elsewhere = {"Referer": f"http://localhost:{jp_http_port}/a%40b/lab"}
    response = await browser.start(Kernel(), headers=elsewhere)
    assert response.code == 409
    assert f"http://localhost:{jp_http_port}/a%40b/speckle-nb/callback" in message_of(response.body)
