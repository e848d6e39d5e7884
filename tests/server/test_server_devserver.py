"""The whole flow over real HTTP: a real Jupyter server (pytest-jupyter, on 127.0.0.1), the
real dev server (on localhost: another site), a browser played by ``BrowserPlayer`` (cookie
jar, redirects), and the kernel's real ``discovery`` + ``PickupClient``."""

from __future__ import annotations

import asyncio
import html
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.devrequests import DevRequests

from speckle_nb import errors
from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.player import origin_of
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD
from speckle_nb.devserver.state import App as DevApp
from speckle_nb.discovery import find_jupyter_server
from speckle_nb.graphql import SpeckleClient
from speckle_nb.pickup import PickupClient, SignInRequest


@pytest.fixture
def jupyter_url(jp_http_port: int) -> str:
    return f"http://127.0.0.1:{jp_http_port}/a%40b/"


@pytest.fixture
def serving(jp_serverapp: Any, http_server: Any) -> Any:
    """The Jupyter server, listening (pytest-jupyter's ``http_server`` serves its port)."""
    return jp_serverapp


@pytest.fixture
def app(devserver: DevServer, jupyter_url: str) -> DevApp:
    return devserver.state.register_app(
        "speckle-nb on Jupyter",
        jupyter_url + "speckle-nb/callback",
        ["profile:read", "profile:email", "streams:read"],
    )


@pytest.fixture
def speckle_env(app: DevApp) -> dict[str, str]:
    # The secret comes from the environment, as an admin should set it: a value in the
    # traitlets config would be printed by the server's DEBUG "Config changed" line.
    return {"SPECKLE_APP_SECRET": app.secret}


@pytest.fixture
def speckle_config(devserver: DevServer, app: DevApp) -> dict[str, Any]:
    return {
        "server_url": devserver.url,
        "app_id": app.id,
        "app_secret": None,
        "http_transport": None,  # real network
    }


@pytest.fixture
def player(serving: Any, jupyter_url: str) -> Iterator[BrowserPlayer]:
    """A browser already logged in to Jupyter (its token header goes to Jupyter only)."""
    token = serving.identity_provider.token
    with BrowserPlayer(
        headers_by_origin={jupyter_url: {"Authorization": f"token {token}"}},
        honour_refresh_delay=False,
    ) as browser:
        yield browser


def browse_sign_in(
    player: BrowserPlayer, jupyter_url: str, request: SignInRequest, action: str = "allow"
) -> tuple[str, Any]:
    """Click the button: start → Speckle login and consent → callback. Returns (the URL
    Speckle sent the browser to, the callback page)."""
    started = player.open(
        jupyter_url + request.start_path(),
        stop_when=lambda url: origin_of(url) != origin_of(jupyter_url),
    )
    assert started is None, started  # left Jupyter for Speckle
    assert player.stopped_at is not None
    landed = player.sign_in_and_consent(
        player.stopped_at,
        DEMO_EMAIL,
        DEMO_PASSWORD,
        action=action,
        stop_at_prefix=jupyter_url,
    )
    page = player.open(landed)
    assert page is not None
    return landed, page


def kernel_pickup_client(jp_serverapp: Any) -> PickupClient:
    """Find the server the way a kernel started by it would, and talk to it."""
    env = {"JPY_PARENT_PID": str(os.getpid()), "JUPYTER_RUNTIME_DIR": jp_serverapp.runtime_dir}
    server = find_jupyter_server(env)
    assert server is not None
    assert server.source == "runtime-file"
    return PickupClient(server.url)


@pytest.mark.parametrize("s256", [False, True], ids=["plain", "s256"])
async def test_full_sign_in_then_active_user(
    jp_serverapp: Any,
    devserver: DevServer,
    app: DevApp,
    player: BrowserPlayer,
    jupyter_url: str,
    s256: bool,
) -> None:
    devserver.options.oauth_s256 = s256
    request = SignInRequest.new()
    with kernel_pickup_client(jp_serverapp) as pickup:
        assert await asyncio.to_thread(pickup.ping)
        # the kernel waits (sign_in(wait=True)) before the user clicks
        waiting = asyncio.ensure_future(asyncio.to_thread(pickup.wait, request, timeout=30))
        landed, page = await asyncio.to_thread(browse_sign_in, player, jupyter_url, request)
        credentials = await asyncio.wait_for(waiting, 20)

    assert "access_code=" in landed
    assert page.response.status_code == 200
    assert "Signed in as Demo User — you can close this window." in page.response.text
    assert credentials.user is not None
    assert credentials.user.name == "Demo User"
    assert credentials.server_url == devserver.url
    assert (credentials.source, credentials.app_id) == ("sign-in", app.id)
    assert credentials.refresh_token
    # what the kernel then does with it
    with SpeckleClient(credentials.server_url, credentials.token) as client:
        user = await asyncio.to_thread(client.active_user)
    assert user.email == DEMO_EMAIL
    info = devserver.state.validate_token(credentials.token)
    assert info is not None
    assert info.user_id == devserver.demo_user.id


async def test_deny_reaches_the_waiting_kernel(
    jp_serverapp: Any, player: BrowserPlayer, jupyter_url: str
) -> None:
    request = SignInRequest.new()
    with kernel_pickup_client(jp_serverapp) as pickup:
        waiting = asyncio.ensure_future(asyncio.to_thread(pickup.wait, request, timeout=30))
        landed, page = await asyncio.to_thread(browse_sign_in, player, jupyter_url, request, "deny")
        with pytest.raises(errors.SignInDeniedError, match="chose Deny"):
            await asyncio.wait_for(waiting, 20)
    assert "denied=true" in landed
    assert page.response.status_code == 403


async def test_refresh_through_the_extension(
    jp_serverapp: Any, devserver: DevServer, player: BrowserPlayer, jupyter_url: str
) -> None:
    request = SignInRequest.new()
    with kernel_pickup_client(jp_serverapp) as pickup:
        await asyncio.to_thread(browse_sign_in, player, jupyter_url, request)
        credentials = await asyncio.to_thread(pickup.wait, request, timeout=10)
        assert credentials.refresh_token is not None
        pair = await asyncio.to_thread(
            pickup.refresh, credentials.server_url, credentials.refresh_token
        )
        assert devserver.state.validate_token(pair.token) is not None
        with pytest.raises(errors.TokenExchangeError) as refused:
            await asyncio.to_thread(pickup.refresh, credentials.server_url, "0" * 42)
    assert refused.value.server_message == "Invalid request"


async def test_refresh_without_the_kernel_key_never_reaches_speckle(
    jp_serverapp: Any, devserver: DevServer, player: BrowserPlayer, jupyter_url: str
) -> None:
    """Issue 14: a client with no Jupyter login and no kernel key posts a valid refresh token
    of the app (and a valid pickup secret): refused, and the dev server sees no request."""
    request = SignInRequest.new()
    with kernel_pickup_client(jp_serverapp) as kernel:
        await asyncio.to_thread(browse_sign_in, player, jupyter_url, request)
        credentials = await asyncio.to_thread(kernel.wait, request, timeout=10)
    assert credentials.refresh_token is not None
    pending = SignInRequest.new()
    await asyncio.to_thread(browse_sign_in, player, jupyter_url, pending)  # a result waits

    with DevRequests() as speckle, httpx.Client(base_url=jupyter_url) as stranger:
        refused = await asyncio.to_thread(
            stranger.post,
            "speckle-nb/refresh",
            json={"server_url": devserver.url, "refresh_token": credentials.refresh_token},
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["reason"] == "not-this-servers-kernel"
        for action in ("wait", "cancel"):
            taken = await asyncio.to_thread(
                stranger.post,
                "speckle-nb/pickup",
                json={
                    "request": pending.request_id,
                    "secret": pending.pickup_secret,
                    "hold": 0,
                    "action": action,
                },
            )
            assert taken.status_code == 403, taken.text
            assert "credentials" not in taken.json()
        assert speckle.seen == []  # nothing reached the dev server
        # the refresh token was good: the kernel of this server gets a new pair with it
        with kernel_pickup_client(jp_serverapp) as kernel:
            pair = await asyncio.to_thread(
                kernel.refresh, credentials.server_url, credentials.refresh_token
            )
            assert devserver.state.validate_token(pair.token) is not None
            speckle.wait_for("POST /auth/token")
            # ... and its pending result is still there for it
            picked = await asyncio.to_thread(kernel.wait, pending, timeout=10)
        assert picked.user is not None


async def test_jupyter_opened_at_localhost_for_an_app_registered_at_127_is_told_at_once(
    jp_serverapp: Any, http_server: Any, devserver: DevServer, jp_http_port: int
) -> None:
    """Issue 15: the app is registered for http://127.0.0.1:<port>/…; the user opened
    Jupyter at http://localhost:<port>/…. start names both URLs before anyone signs in, and
    the waiting kernel hears it as something to fix, not to retry."""
    localhost = f"http://localhost:{jp_http_port}/a%40b/"
    token = jp_serverapp.identity_provider.token
    request = SignInRequest.new()
    with BrowserPlayer(
        headers_by_origin={localhost: {"Authorization": f"token {token}"}},
        honour_refresh_delay=False,
    ) as browser:
        page = await asyncio.to_thread(browser.open, localhost + request.start_path())
    assert page is not None
    assert page.response.status_code == 409
    text = html.unescape(page.response.text)
    assert (
        f"sends sign-ins back to http://127.0.0.1:{jp_http_port}/a%40b/speckle-nb/callback" in text
    )
    assert f"{localhost}speckle-nb/callback" in text
    assert (
        f"Open Jupyter at the address the app is registered for (http://127.0.0.1:{jp_http_port})"
        in text
    )
    with (
        kernel_pickup_client(jp_serverapp) as kernel,
        pytest.raises(errors.ConfigurationError, match="sends sign-ins back to"),
    ):
        await asyncio.to_thread(kernel.poll, request, hold=0)
