"""Restarts in the middle of a sign-in.

**The Jupyter server restarts** between the click and Speckle's redirect back (the user is on
Speckle's consent page). The server keeps its port, token and cookie secret (the same runtime
directory), but its sign-ins were in memory. The kernel — here the real ``PickupClient`` in this
process, a kernel that outlives its server as on a kernel gateway, or the panel's background
wait — must end with a clear ``SignInExpiredError`` ("expired": the panel's Try again state),
not hang until its own timeout or fail with a bare connection error; the browser's callback
page must say the sign-in is gone and to start again; and a new sign-in must then work.

**The kernel restarts** after the click: nobody will pick the sign-in up. Its flow expires at
``flow_lifetime`` (the late callback is told so) or, when the user finished, its result expires
at ``result_lifetime`` and the token nobody received is revoked at Speckle.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.jupyter import JupyterServer, artifacts_dir, free_port

from speckle_nb import errors
from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.player import origin_of
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD
from speckle_nb.devserver.state import App as DevApp
from speckle_nb.pickup import PickupClient, SignInRequest

SCOPES = ["profile:read", "profile:email"]


def to_speckle(player: BrowserPlayer, jupyter_url: str, request: SignInRequest) -> str:
    """Click the button, sign in and Authorize on Speckle; the callback URL, not fetched."""
    started = player.open(
        jupyter_url + request.start_path(),
        stop_when=lambda url: origin_of(url) != origin_of(jupyter_url),
    )
    assert started is None
    assert player.stopped_at is not None
    return player.sign_in_and_consent(
        player.stopped_at, DEMO_EMAIL, DEMO_PASSWORD, stop_at_prefix=jupyter_url
    )


def page_message(html: str) -> str:
    match = re.search(r'<p id="message">([^<]*)</p>', html)
    assert match, html[:400]
    return match.group(1)


# ------------------------------------------------------------------------------- Jupyter restarts


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer().running() as server:
        yield server


@pytest.fixture
def jupyter(dev: DevServer, tmp_path: Path, request: pytest.FixtureRequest) -> JupyterServer:
    """Not started: the test starts, restarts and stops it (same port, token, runtime dir)."""
    server = JupyterServer(
        "server",
        root_dir=tmp_path / "notebooks",
        state_dir=tmp_path / "state",
        log_path=artifacts_dir(f"hardening-{request.node.name}") / "jupyter.log",
        port=free_port(),
    )
    app: DevApp = dev.state.register_app("speckle-nb restart", server.redirect_url(), SCOPES)
    # The server is started with its kernel key (server.kernel_key, in its environment), as an
    # administrator would for kernels that outlive a restart: the restarted server keeps it,
    # so the kernel played here (PickupClient with that key) is still one of its kernels.
    server.extra_env.update(
        SPECKLE_SERVER_URL=dev.url, SPECKLE_APP_ID=app.id, SPECKLE_APP_SECRET=app.secret
    )
    return server


@pytest.mark.slow
def test_jupyter_restart_mid_sign_in_expires_and_try_again_works(
    jupyter: JupyterServer, dev: DevServer
) -> None:
    with jupyter.running():
        headers = {jupyter.origin: {"Authorization": f"token {jupyter.token}"}}
        with BrowserPlayer(headers_by_origin=headers, honour_refresh_delay=False) as player:
            request = SignInRequest.new()
            outcome: dict[str, Any] = {}

            def kernel_waits() -> None:
                began = time.monotonic()
                try:
                    with PickupClient(
                        jupyter.url, hold=2.0, kernel_key=jupyter.kernel_key
                    ) as pickup:
                        outcome["result"] = pickup.wait(request, timeout=45)
                except errors.SpeckleError as exc:
                    outcome["result"] = exc
                outcome["seconds"] = time.monotonic() - began

            waiter = threading.Thread(target=kernel_waits, daemon=True)
            waiter.start()
            callback = to_speckle(player, jupyter.url, request)  # on Speckle's consent page

            jupyter.stop()  # the restart
            jupyter.start()

            page = player.open(callback)  # Speckle's redirect reaches the new server
            assert page is not None
            assert page.response.status_code == 400
            message = page_message(page.response.text)
            assert "restarted" in message or "no longer known" in message, message
            assert "start it again" in message.lower(), message

            waiter.join(60)
            assert not waiter.is_alive(), "the kernel's wait hung"
            result = outcome["result"]
            assert isinstance(result, errors.SignInExpiredError), repr(result)
            assert "expired" in str(result).lower() or "restart" in str(result).lower()
            assert outcome["seconds"] < 20, "the kernel heard it only at its own timeout"

            # Try again: a new sign-in against the restarted server works
            again = SignInRequest.new()
            callback = to_speckle(player, jupyter.url, again)
            page = player.open(callback)
            assert page is not None
            assert page.response.status_code == 200
            with PickupClient(jupyter.url, kernel_key=jupyter.kernel_key) as pickup:
                credentials = pickup.wait(again, timeout=10)
            assert credentials.user is not None
            assert credentials.user.email == DEMO_EMAIL


@pytest.mark.slow
def test_jupyter_restart_mid_sign_in_callback_page_and_new_sign_in(
    jupyter: JupyterServer, dev: DevServer
) -> None:
    """The browser's side of the restart (passes today): a clear page, then a new sign-in."""
    with jupyter.running():
        headers = {jupyter.origin: {"Authorization": f"token {jupyter.token}"}}
        with BrowserPlayer(headers_by_origin=headers, honour_refresh_delay=False) as player:
            callback = to_speckle(player, jupyter.url, SignInRequest.new())
            jupyter.stop()
            jupyter.start()
            page = player.open(callback)
            assert page is not None
            assert page.response.status_code == 400
            message = page_message(page.response.text)
            assert "restarted" in message, message
            assert "start it again" in message.lower(), message
            code = re.search(r"access_code=([0-9a-f]{42})", callback)
            assert code
            assert code.group(1) not in page.response.text

            again = SignInRequest.new()
            page = player.open(to_speckle(player, jupyter.url, again))
            assert page is not None
            assert page.response.status_code == 200
            with PickupClient(jupyter.url, kernel_key=jupyter.kernel_key) as pickup:
                credentials = pickup.wait(again, timeout=10)
            assert credentials.user is not None
            assert credentials.user.email == DEMO_EMAIL


# ------------------------------------------------------------------------------- kernel restarts

FLOW_LIFETIME = 1.0
RESULT_LIFETIME = 1.0


@pytest.fixture
def app(devserver: DevServer, jupyter_url: str) -> DevApp:
    return devserver.state.register_app(
        "speckle-nb kernel restart", jupyter_url + "speckle-nb/callback", SCOPES
    )


@pytest.fixture
def speckle_config(
    devserver: DevServer, app: DevApp, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("SPECKLE_APP_SECRET", app.secret)
    return {
        "server_url": devserver.url,
        "app_id": app.id,
        "app_secret": None,
        "http_transport": None,
        "flow_lifetime": FLOW_LIFETIME,
        "result_lifetime": RESULT_LIFETIME,
    }


@pytest.fixture
def player(jp_serverapp: Any, jp_fetch: Any, jupyter_url: str) -> Iterator[BrowserPlayer]:
    token = jp_serverapp.identity_provider.token
    with BrowserPlayer(
        headers_by_origin={jupyter_url: {"Authorization": f"token {token}"}},
        honour_refresh_delay=False,
    ) as browser:
        yield browser


async def test_kernel_restart_before_the_callback_the_flow_expires_unclaimed(
    player: BrowserPlayer, jupyter_url: str, service: Any, devserver: DevServer
) -> None:
    request = SignInRequest.new()  # the kernel that made it is then restarted: never polls
    callback = await asyncio.to_thread(to_speckle, player, jupyter_url, request)
    await asyncio.sleep(FLOW_LIFETIME + 0.2)
    page = await asyncio.to_thread(player.open, callback)  # the user finishes, too late
    assert page is not None
    assert page.response.status_code == 400
    # the next request that touches the store (another kernel's poll) ends it "expired"
    await poll_as_another_kernel(jupyter_url)
    flows = list(service.store._flows.values())
    assert [(f.status, f.ended_reason) for f in flows] == [("ended", "expired")]
    entry = service.store._entries[request.request_id]
    assert entry.outcome is not None
    assert entry.outcome.reason == "expired"  # what the kernel would have been told
    # nothing was exchanged: the access code is still unused at Speckle
    assert devserver.state.pending_codes() == 1
    # after result_lifetime even that note is gone
    await asyncio.sleep(RESULT_LIFETIME + 0.2)
    await poll_as_another_kernel(jupyter_url)
    assert service.store.counts()["entries"] == 0


async def poll_as_another_kernel(jupyter_url: str) -> None:
    with PickupClient(jupyter_url) as pickup:
        assert await asyncio.to_thread(pickup.poll, SignInRequest.new(), hold=0) is None


async def test_late_callback_after_the_flow_expired_is_told_expired(
    player: BrowserPlayer, jupyter_url: str
) -> None:
    callback = await asyncio.to_thread(to_speckle, player, jupyter_url, SignInRequest.new())
    await asyncio.sleep(FLOW_LIFETIME + 0.2)
    page = await asyncio.to_thread(player.open, callback)
    assert page is not None
    message = page_message(page.response.text).lower()
    assert "expired" in message, message
    assert "again" in message, message


async def test_kernel_restart_after_the_callback_the_result_expires_and_is_revoked(
    player: BrowserPlayer,
    jupyter_url: str,
    service: Any,
    devserver: DevServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued: list[str] = []
    exchange = devserver.state.exchange

    def spy(*args: Any, **kwargs: Any) -> Any:
        pair = exchange(*args, **kwargs)
        issued.append(pair.token)
        return pair

    monkeypatch.setattr(devserver.state, "exchange", spy)
    request = SignInRequest.new()
    callback = await asyncio.to_thread(to_speckle, player, jupyter_url, request)
    page = await asyncio.to_thread(player.open, callback)
    assert page is not None
    assert page.response.status_code == 200
    assert issued
    assert devserver.state.validate_token(issued[0]) is not None

    # The kernel was restarted: nobody picks the result up. Another kernel's poll (any
    # request touching the store) comes after result_lifetime.
    await asyncio.sleep(RESULT_LIFETIME + 0.2)
    await poll_as_another_kernel(jupyter_url)
    assert service.store.counts()["entries"] == 0, "the unclaimed result is still held"
    for _ in range(50):  # revoked in the background
        if devserver.state.validate_token(issued[0]) is None:
            break
        await asyncio.sleep(0.1)
    assert devserver.state.validate_token(issued[0]) is None, "the unclaimed token still works"
    # the restarted kernel, had it kept the old secret, would find nothing either
    with PickupClient(jupyter_url) as pickup:
        assert await asyncio.to_thread(pickup.poll, request, hold=0) is None


async def test_unclaimed_token_is_revoked_without_further_traffic(
    player: BrowserPlayer,
    jupyter_url: str,
    service: Any,
    devserver: DevServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued: list[str] = []
    exchange = devserver.state.exchange

    def spy(*args: Any, **kwargs: Any) -> Any:
        pair = exchange(*args, **kwargs)
        issued.append(pair.token)
        return pair

    monkeypatch.setattr(devserver.state, "exchange", spy)
    callback = await asyncio.to_thread(to_speckle, player, jupyter_url, SignInRequest.new())
    page = await asyncio.to_thread(player.open, callback)
    assert page is not None
    assert page.response.status_code == 200
    token = issued[0]
    for _ in range(int((RESULT_LIFETIME + 5.0) / 0.2)):  # no request touches the store
        if devserver.state.validate_token(token) is None:
            break
        await asyncio.sleep(0.2)
    assert devserver.state.validate_token(token) is None, "the unclaimed token still works"
