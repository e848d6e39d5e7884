"""The Jupyter server's log through a full sign-in and every failure path holds no secret:
no app secret, access code, token, refresh token, pickup secret, challenge or flow cookie."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from serverkit import FakeClock
from test_server_devserver import (  # the same real stack: dev server, player, kernel client
    app,
    browse_sign_in,
    jupyter_url,
    kernel_pickup_client,
    player,
    serving,
    speckle_config,
    speckle_env,
)
from tornado.web import create_signed_value

from speckle_nb import errors
from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.player import origin_of
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD
from speckle_nb.devserver.state import App as DevApp
from speckle_nb.pickup import PickupClient, SignInRequest

__all__ = [  # fixtures re-used from test_server_devserver
    "app",
    "jupyter_url",
    "player",
    "serving",
    "speckle_config",
    "speckle_env",
]


class Secrets:
    """Every secret value the scenario handles, to look for in the log afterwards."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, kind: str, value: str | None) -> None:
        if value:
            self.values[f"{kind} #{len(self.values)}"] = value

    def add_landing(self, url: str) -> None:
        for code in parse_qs(urlsplit(url).query).get("access_code", []):
            self.add("access code", code)

    def add_flow(self, browser: BrowserPlayer, verify_url: str) -> str:
        """Record a started flow's challenge and cookie; returns the cookie value."""
        self.add("challenge", urlsplit(verify_url).path.rsplit("/", 1)[-1])
        (value,) = [c.value or "" for c in browser.cookies.jar if c.name == "speckle-nb-flow"]
        self.add("flow cookie", value)
        self.add("flow id", _flow_id_of(value))
        return value


def _flow_id_of(signed: str) -> str:
    """The random flow id inside tornado's signed cookie value (base64 field)."""
    import base64

    match = re.search(r"\|\d+:([A-Za-z0-9+/=]+)\|[0-9a-f]{64}$", signed.strip('"'))
    return base64.b64decode(match.group(1)).decode() if match else ""


def start_only(player: BrowserPlayer, jupyter_url: str, request: SignInRequest) -> str:
    """Open the start URL; stop when the browser is sent to Speckle. Returns that URL."""
    page = player.open(
        jupyter_url + request.start_path(),
        stop_when=lambda url: origin_of(url) != origin_of(jupyter_url),
    )
    assert page is None
    assert player.stopped_at is not None
    return player.stopped_at


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    return caplog


def jupyter_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the Jupyter server logged: everything from the event loop's thread, where tornado
    serves it (its own httpx calls to Speckle included). The browser player and the kernel's
    client run in worker threads, the dev server in a thread of its own: they are the
    browser, the kernel and Speckle, whose logs are not the Jupyter server's."""
    return [r for r in caplog.records if r.threadName == threading.main_thread().name]


async def test_no_secret_reaches_the_server_log(
    serving: Any,
    devserver: DevServer,
    app: DevApp,
    player: BrowserPlayer,
    jupyter_url: str,
    server_log: pytest.LogCaptureFixture,
) -> None:
    found = Secrets()
    found.add("app secret", app.secret)
    service = serving.web_app.settings["speckle_nb_service"]
    found.add("kernel key", service.kernel_key)
    token = serving.identity_provider.token

    def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return asyncio.to_thread(fn, *args, **kwargs)

    def new_request() -> SignInRequest:
        request = SignInRequest.new()
        found.add("pickup secret", request.pickup_secret)
        return request

    with kernel_pickup_client(serving) as pickup:
        # 1. a full sign-in, the kernel's pickup, a refresh
        request = new_request()
        landed, page = await run(browse_sign_in, player, jupyter_url, request)
        found.add_landing(landed)
        assert page.response.status_code == 200
        credentials = await run(pickup.wait, request, timeout=10)
        found.add("token", credentials.token)
        found.add("refresh token", credentials.refresh_token)
        pair = await run(pickup.refresh, credentials.server_url, credentials.refresh_token)
        found.add("token", pair.token)
        found.add("refresh token", pair.refresh_token)
        with pytest.raises(errors.TokenExchangeError):
            await run(pickup.refresh, credentials.server_url, "0" * 42)
        # 2. the callback replayed (the success cleared the cookie: no sign-in in progress)
        assert (await run(player.open, landed)).response.status_code == 400

        # 3. denied
        request = new_request()
        landed, page = await run(browse_sign_in, player, jupyter_url, request, "deny")
        assert page.response.status_code == 403

        # 4. no access code at all; then a code already burned, delivered to a new pending
        #    flow: Speckle refuses it
        request = new_request()
        verify = await run(start_only, player, jupyter_url, request)
        found.add_flow(player, verify)
        assert (
            await run(player.open, landed.replace("denied=true", "x=1"))
        ).response.status_code == 400
        first_code = next(v for k, v in found.values.items() if k.startswith("access code"))
        burned = f"{jupyter_url}speckle-nb/callback?access_code={first_code}"
        request = new_request()
        verify = await run(start_only, player, jupyter_url, request)
        found.add_flow(player, verify)
        assert (await run(player.open, burned)).response.status_code == 502
        with pytest.raises(errors.SignInError, match="Access code not found"):
            await run(pickup.poll, request, hold=0)

        # 5. Speckle unreachable at the exchange
        request = new_request()
        verify = await run(start_only, player, jupyter_url, request)
        failed_flow_cookie = found.add_flow(player, verify)
        landed = await run(
            player.sign_in_and_consent, verify, DEMO_EMAIL, DEMO_PASSWORD, "allow", jupyter_url
        )
        found.add_landing(landed)
        devserver.options.fault = "reset"
        assert (await run(player.open, landed)).response.status_code == 502
        devserver.options.fault = None

        # 6. no cookie, a forged cookie, an unknown flow (all with a live code)
        request = new_request()
        verify = await run(start_only, player, jupyter_url, request)
        found.add_flow(player, verify)
        landed = await run(
            player.sign_in_and_consent, verify, DEMO_EMAIL, DEMO_PASSWORD, "allow", jupyter_url
        )
        found.add_landing(landed)
        auth = {"Authorization": f"token {token}"}
        unknown = create_signed_value(
            serving.web_app.settings["cookie_secret"], "speckle-nb-flow", secrets.token_urlsafe(24)
        ).decode()
        found.add("flow cookie", unknown)
        forged = "2|1:0|10:1|15:speckle-nb-flow|8:Zm9vYmFy|" + "0" * 64
        # ... and the cookie of the flow that failed in step 5: already finished
        for cookie, status in (
            (None, 400),
            (forged, 400),
            (unknown, 400),
            (failed_flow_cookie, 409),
        ):
            jar = {"speckle-nb-flow": cookie} if cookie else {}
            with httpx.Client(headers=auth, cookies=jar) as stranger:
                assert (await run(stranger.get, landed)).status_code == status

        # 7. expiry, the kernel's cancel, a wrong pickup secret
        clock = FakeClock()
        service.store.clock = clock
        request = new_request()
        verify = await run(start_only, player, jupyter_url, request)
        found.add_flow(player, verify)
        clock.advance(601)
        assert (await run(player.open, landed)).response.status_code == 400
        with pytest.raises(errors.SignInExpiredError):
            await run(pickup.poll, request, hold=0)
        request = new_request()
        verify = await run(start_only, player, jupyter_url, request)
        found.add_flow(player, verify)
        await run(pickup.cancel, request)
        thief = SignInRequest(request.request_id, secrets.token_urlsafe(32))
        found.add("pickup secret", thief.pickup_secret)
        with pytest.raises(errors.SignInError, match="wrong pickup secret"):
            await run(pickup.poll, thief, hold=0)

        # 8. pickup and refresh from something that is not a kernel of this server
        with (
            PickupClient(jupyter_url, kernel_key="") as stranger,
            pytest.raises(errors.ConfigurationError),
        ):
            await run(stranger.refresh, credentials.server_url, credentials.refresh_token)
        wrong = secrets.token_urlsafe(32)
        found.add("wrong kernel key", wrong)
        with (
            PickupClient(jupyter_url, kernel_key=wrong) as stranger,
            pytest.raises(errors.ConfigurationError),
        ):
            await run(stranger.poll, new_request(), hold=0)

        # 9. a start from another site, and for a server that is not allowed
        with httpx.Client(headers={**auth, "Sec-Fetch-Site": "cross-site"}) as other:
            assert (
                await run(other.get, jupyter_url + new_request().start_path())
            ).status_code == 403
        elsewhere = SignInRequest.new("https://evil.example")
        assert (
            await run(player.open, jupyter_url + elsewhere.start_path())
        ).response.status_code == 400

    await service.close()
    records = jupyter_records(server_log)
    text = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in records)
    # the capture did see the scenario (our lines, and the access log's masked callback)
    assert "speckle-nb: flow" in text
    assert "callback refused" in text
    assert "refresh refused: no kernel key" in text
    assert "pickup refused: wrong kernel key" in text
    assert "speckle-nb/callback?access_code=[secret]" in text
    assert len(found.values) > 20
    leaked = {
        kind: sorted(
            {f"{r.name}: {r.getMessage()[:160]}" for r in records if value in r.getMessage()}
        )
        for kind, value in found.values.items()
        if value in text
    }
    assert leaked == {}
