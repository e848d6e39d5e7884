"""Speckle misbehaving: unreachable, slower than the timeout, 5xx, 429 with ``Retry-After``, a
200 that is not JSON, a dropped connection — at each step that talks to it.

Steps: the start's probe (``GET /oauth/token``), the code exchange (``POST /auth/token``, in
the callback), the ``activeUser`` check (``POST /graphql``, in the callback, after a good
exchange) and ordinary client calls from a kernel (``SpeckleClient`` / ``AsyncSpeckleClient``).
A real Jupyter server with the extension (pytest-jupyter) talks to the real dev server, whose
fault switches are flipped live; the browser is ``BrowserPlayer``, the kernel the real
``PickupClient``. Each case checks that the user gets a clear message — on the browser's page
and, through the pickup, in the kernel — and that nothing waits past the configured timeout
(``c.SpeckleNB.http_timeout`` here 0.5 s; the client's ``timeout``).

Like Speckle (protocol §9), the dev server rate-limits only ``/graphql``, so 429 is exercised
on ``activeUser`` and on client calls; the exchange has no 429 to meet.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from speckle_nb import errors
from speckle_nb.devserver import BrowserPlayer, DevServer, RateLimit
from speckle_nb.devserver.player import origin_of
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD
from speckle_nb.devserver.state import App as DevApp
from speckle_nb.graphql import AsyncSpeckleClient, SpeckleClient
from speckle_nb.pickup import PickupClient, SignInRequest

HTTP_TIMEOUT = 0.5
#: Longer than every timeout here: a "slow" server never answers in time.
SLOW_SECONDS = 4.0
#: What "nothing hangs past the timeout" allows on top: loopback, a loaded 2-core machine.
MARGIN = 1.5

FAULTS = ["unreachable", "slow", "5xx", "malformed", "reset"]
#: The revoker's pauses grow 1, 2, 4 s: within this many seconds of Speckle's recovery the
#: next attempt has run (a "slow" attempt still in flight at recovery takes SLOW_SECONDS).
REVOKE_WITHIN = SLOW_SECONDS + 4 + 2 * MARGIN


@pytest.fixture
def app(devserver: DevServer, jupyter_url: str) -> DevApp:
    return devserver.state.register_app(
        "speckle-nb faults", jupyter_url + "speckle-nb/callback", ["profile:read", "profile:email"]
    )


@pytest.fixture
def speckle_config(
    devserver: DevServer, app: DevApp, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("SPECKLE_APP_SECRET", app.secret)
    devserver.options.slow_seconds = SLOW_SECONDS
    return {
        "server_url": devserver.url,
        "app_id": app.id,
        "app_secret": None,
        "http_transport": None,
        "http_timeout": HTTP_TIMEOUT,
        "pickup_hold": 2.0,
    }


@pytest.fixture
def player(jp_serverapp: Any, jp_fetch: Any, jupyter_url: str) -> Iterator[BrowserPlayer]:
    token = jp_serverapp.identity_provider.token
    with BrowserPlayer(
        headers_by_origin={jupyter_url: {"Authorization": f"token {token}"}},
        honour_refresh_delay=False,
        timeout=30,
    ) as browser:
        yield browser


def break_server(dev: DevServer, fault: str) -> None:
    if fault == "unreachable":
        dev.stop()  # the port is closed: connection refused
    elif fault == "429":
        dev.options.rate_limit = RateLimit(0, per_seconds=5.0)  # every operation refused
    else:
        dev.options.fault = fault  # type: ignore[assignment]


def to_speckle(player: BrowserPlayer, jupyter_url: str, request: SignInRequest) -> str:
    """Click the button and sign in on Speckle; returns the callback URL, not yet fetched."""
    started = player.open(
        jupyter_url + request.start_path(),
        stop_when=lambda url: origin_of(url) != origin_of(jupyter_url),
    )
    assert started is None, "the start did not go to Speckle"
    assert player.stopped_at is not None
    return player.sign_in_and_consent(
        player.stopped_at, DEMO_EMAIL, DEMO_PASSWORD, stop_at_prefix=jupyter_url
    )


def page_message(html: str) -> str:
    match = re.search(r'<p id="message">([^<]*)</p>', html)
    assert match, html[:500]
    return match.group(1)


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - began


async def kernel_hears(jupyter_url: str, request: SignInRequest) -> errors.SignInError:
    """The kernel's pickup of a failed sign-in: the SignInError it raises."""
    with PickupClient(jupyter_url) as pickup, pytest.raises(errors.SignInError) as failure:
        await asyncio.to_thread(pickup.wait, request, timeout=10)
    return failure.value


#: The exact message for each step and fault ({url}: the dev server's). The page and the
#: kernel say the same words; a changed message must change here, on purpose.
_UNREACHABLE = (
    "{url} is unreachable ({exc}). Check the server URL and your network, then try again."
)
_LATE = "{url} did not answer in time (ReadTimeout). Check the server URL and your network, then try again."
_AGAIN = " The sign-in could not be finished; start it again from the notebook."
PROBE_MESSAGES = {
    fault: text + " (The Jupyter server must reach Speckle to finish the sign-in.)"
    for fault, text in {
        "unreachable": _UNREACHABLE.replace("{exc}", "ConnectError"),
        "slow": _LATE,
        "reset": _UNREACHABLE.replace("{exc}", "ReadError"),
    }.items()
}
EXCHANGE_MESSAGES = {
    fault: text + _AGAIN
    for fault, text in {
        "unreachable": _UNREACHABLE.replace("{exc}", "ConnectError"),
        "slow": _LATE,
        "5xx": "{url} had an internal error (HTTP 502). Try again in a moment; if it persists, "
        "the server's administrators need to know.",
        "malformed": "{url} answered the token request without a token. Is this a Speckle server?",
        "reset": _UNREACHABLE.replace("{exc}", "ReadError"),
    }.items()
}
ACTIVE_USER_MESSAGES = {
    fault: text + _AGAIN
    for fault, text in {
        "slow": "Could not reach {url}: no answer in time (ReadTimeout). Check the URL and your "
        "connection.",
        "5xx": "{url} had an internal error (HTTP 502). Try again in a moment; if it persists, "
        "check the server URL or tell the server's administrators.",
        "malformed": "{url} answered HTTP 200 with a body that is not JSON (application/json; "
        "charset=utf-8). Is the URL a Speckle server?",
        "reset": "Could not reach {url}: ReadError. Check the URL and your connection.",
        "429": "{url} is rate limiting this client (HTTP 429); retry after 5 s, or create the "
        "client with rate_limit_retries=N to wait and retry automatically.",
    }.items()
}


def assert_message(message: str, expected: str, url: str) -> None:
    """``message`` (a page's, unescaped, or an error's) is exactly ``expected`` for ``url``."""
    assert html.unescape(message) == expected.format(url=url)


# ------------------------------------------------------------------------------- the probe


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_at_start_probe(
    fault: str,
    devserver: DevServer,
    player: BrowserPlayer,
    jupyter_url: str,
    service: Any,
) -> None:
    break_server(devserver, fault)
    request = SignInRequest.new()
    page, elapsed = await asyncio.to_thread(timed, player.open, jupyter_url + request.start_path())
    assert elapsed < HTTP_TIMEOUT + MARGIN, f"start took {elapsed:.1f} s"
    response = page.response
    if fault in ("5xx", "malformed"):
        # The probe only picks the challenge method ("S256 only for a plain 200", else
        # plain): a server that *answers* is not refused here. The browser goes on to
        # Speckle's page, and the same fault then meets the exchange, reported as in
        # test_fault_during_exchange.
        assert page.kind == "login", response.text[:300]
        assert service.store.counts()["flows"] == 1
        return
    assert response.status_code == 502, response.text[:300]
    assert_message(page_message(response.text), PROBE_MESSAGES[fault], devserver.url)
    error = await kernel_hears(jupyter_url, request)
    assert error.reason == "failed"
    assert_message(str(error), PROBE_MESSAGES[fault], devserver.url)
    assert service.store.counts()["flows"] == 0


# ------------------------------------------------------------------------------- the exchange


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault_during_exchange(
    fault: str,
    devserver: DevServer,
    player: BrowserPlayer,
    jupyter_url: str,
    service: Any,
) -> None:
    request = SignInRequest.new()
    callback = await asyncio.to_thread(to_speckle, player, jupyter_url, request)
    assert "access_code=" in callback
    break_server(devserver, fault)
    page, elapsed = await asyncio.to_thread(timed, player.open, callback)
    assert elapsed < HTTP_TIMEOUT + MARGIN, f"the callback took {elapsed:.1f} s"
    assert page.response.status_code == 502, page.response.text[:300]
    message = page_message(page.response.text)
    assert_message(message, EXCHANGE_MESSAGES[fault], devserver.url)
    error = await kernel_hears(jupyter_url, request)
    assert error.reason == "failed"
    assert_message(str(error), EXCHANGE_MESSAGES[fault], devserver.url)
    flows = list(service.store._flows.values())
    assert [(f.status, f.ended_reason) for f in flows] == [("ended", "failed")]


# ------------------------------------------------------------------------------- activeUser


@pytest.mark.parametrize("fault", ["slow", "5xx", "malformed", "reset", "429"])
async def test_fault_during_active_user(
    fault: str,
    devserver: DevServer,
    player: BrowserPlayer,
    jupyter_url: str,
    service: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exchange succeeds; the server breaks right after it, before ``activeUser``."""
    issued: list[str] = []
    exchange = devserver.state.exchange

    def exchange_then_break(*args: Any, **kwargs: Any) -> Any:
        pair = exchange(*args, **kwargs)
        issued.append(pair.token)
        break_server(devserver, fault)
        return pair

    monkeypatch.setattr(devserver.state, "exchange", exchange_then_break)
    request = SignInRequest.new()
    callback = await asyncio.to_thread(to_speckle, player, jupyter_url, request)
    page, elapsed = await asyncio.to_thread(timed, player.open, callback)
    assert issued, "the exchange did not happen"
    assert elapsed < 2 * HTTP_TIMEOUT + MARGIN, f"the callback took {elapsed:.1f} s"
    assert page.response.status_code == 502, page.response.text[:300]
    assert_message(page_message(page.response.text), ACTIVE_USER_MESSAGES[fault], devserver.url)
    error = await kernel_hears(jupyter_url, request)
    assert error.reason == "failed"
    assert_message(str(error), ACTIVE_USER_MESSAGES[fault], devserver.url)
    if fault == "429":
        assert re.search(r"retry after [0-9.]+ s", str(error)), str(error)
    # The token nobody will receive is revoked once the server answers again, whatever the
    # fault was: the extension keeps trying (1 s, then doubling) until Speckle confirms.
    devserver.options.fault = None
    devserver.options.rate_limit = None
    await wait_until_revoked(devserver, issued[0], within=REVOKE_WITHIN)


# ------------------------------------------------------------------------------- client calls


@pytest.mark.parametrize("fault", [*FAULTS, "429"])
def test_fault_in_client_calls(fault: str, devserver: DevServer) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, scopes=["profile:read"])
    url = devserver.url
    break_server(devserver, fault)
    with SpeckleClient(url, token, timeout=HTTP_TIMEOUT) as client:
        began = time.perf_counter()
        with pytest.raises(errors.SpeckleError) as failure:
            client.active_user()
        elapsed = time.perf_counter() - began
    assert elapsed < HTTP_TIMEOUT + MARGIN, f"the call took {elapsed:.1f} s"
    check_client_error(failure.value, fault, url)


@pytest.mark.parametrize("fault", [*FAULTS, "429"])
async def test_fault_in_async_client_calls(fault: str, devserver: DevServer) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, scopes=["profile:read"])
    url = devserver.url
    break_server(devserver, fault)
    async with AsyncSpeckleClient(url, token, timeout=HTTP_TIMEOUT) as client:
        began = time.perf_counter()
        with pytest.raises(errors.SpeckleError) as failure:
            await client.active_user()
        elapsed = time.perf_counter() - began
    assert elapsed < HTTP_TIMEOUT + MARGIN, f"the call took {elapsed:.1f} s"
    check_client_error(failure.value, fault, url)


async def wait_until_revoked(devserver: DevServer, token: str, *, within: float) -> None:
    """Until the dev server no longer knows ``token`` (its observable state), at most
    ``within`` seconds; fails naming the fault otherwise."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = began + within
    while devserver.state.validate_token(token) is not None:
        if loop.time() > deadline:
            pytest.fail(f"the unclaimed token was still valid {within:g} s after Speckle recovered")
        await asyncio.sleep(0.02)
    print(f"\nunclaimed token revoked {loop.time() - began:.2f} s after Speckle recovered")


def check_client_error(error: errors.SpeckleError, fault: str, url: str) -> None:
    expected: dict[str, type[errors.SpeckleError]] = {
        "unreachable": errors.TransportError,
        "slow": errors.TransportError,
        "reset": errors.TransportError,
        "5xx": errors.ServerError,
        "malformed": errors.ServerError,
        "429": errors.RateLimitedError,
    }
    assert isinstance(error, expected[fault]), (type(error), str(error))
    message = str(error)
    assert len(message) > 30
    assert "Traceback" not in message
    assert url.split("//", 1)[1] in message or "speckle" in message.lower(), message
    if fault == "429":
        assert isinstance(error, errors.RateLimitedError)
        assert error.retry_after is not None
        assert 0 < error.retry_after <= 5.0
        assert "retry" in message.lower()
    if fault == "5xx":
        assert "502" in message
