"""Layer 6: a real JupyterHub (configurable-http-proxy, DummyAuthenticator, the simple local
spawner) on loopback, with the Speckle dev server holding two users.

One hub and one dev server per session. alice and bob log in once, at the same time, and keep
their default servers for the whole session; alice also gets two named servers: ``gpu``, which
has a Speckle app of its own (redirect URL ``/hub/user-redirect/gpu/speckle-nb/callback``), and
``scratch``, which has none. Everything started here is stopped here; when a test failed the
hub's log (single-user servers included) and its config are copied to ``artifacts/hub/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hubkit import (
    ALICE,
    APP_SCOPES,
    BOB,
    NAMED_WITH_APP,
    NAMED_WITHOUT_APP,
    Hub,
    HubBrowser,
    HubSetup,
    free_port,
    proxy_missing_message,
)
from servicekit import LoginSetup, start_login_hub

from speckle_nb.devserver import DevServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "hub"


@pytest.fixture(scope="session")
def hub_setup(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[HubSetup]:
    missing = proxy_missing_message()
    if missing:
        pytest.fail(missing, pytrace=False)
    root = tmp_path_factory.mktemp("hub")
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    with DevServer().running() as dev:
        # What the admin guide says: one app, redirect URL {hub}/hub/user-redirect/speckle-nb/callback.
        app = dev.state.register_app(
            "speckle-nb on JupyterHub",
            f"{hub_url}/hub/user-redirect/speckle-nb/callback",
            APP_SCOPES,
        )
        gpu_redirect = f"{hub_url}/hub/user-redirect/{NAMED_WITH_APP}/speckle-nb/callback"
        gpu_app = dev.state.register_app(
            f"speckle-nb on JupyterHub ({NAMED_WITH_APP} servers)", gpu_redirect, APP_SCOPES
        )
        environment = {
            "SPECKLE_SERVER_URL": dev.url,
            "SPECKLE_APP_ID": app.id,
            "SPECKLE_APP_SECRET": app.secret,
        }
        named = {
            NAMED_WITH_APP: {
                "SPECKLE_APP_ID": gpu_app.id,
                "SPECKLE_APP_SECRET": gpu_app.secret,
                "SPECKLE_REDIRECT_URL": gpu_redirect,
            }
        }
        hub = Hub.start(root, environment=environment, named_environment=named, port=port)
        try:
            yield HubSetup(hub, dev, app, gpu_app)
        finally:
            hub.stop()
            if request.session.testsfailed:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(hub.log_path, ARTIFACTS / "hub.log")
                shutil.copy(root / "jupyterhub_config.py", ARTIFACTS / "jupyterhub_config.py")


@pytest.fixture(scope="session")
def hub(hub_setup: HubSetup) -> Hub:
    return hub_setup.hub


@pytest.fixture(scope="session")
def people(hub: Hub) -> Iterator[dict[str, HubBrowser]]:
    """alice and bob, logged in to the hub at the same time, their servers up and opened.

    alice's two named servers start meanwhile (each spawn takes a few seconds).
    """
    browsers = {p.hub_name: HubBrowser(hub, p.hub_name) for p in (ALICE, BOB)}

    def arrive(browser: HubBrowser) -> None:
        browser.login()
        if browser.name == ALICE.hub_name:
            for server_name in (NAMED_WITH_APP, NAMED_WITHOUT_APP):
                # 201/202: the spawn goes on in the background
                hub.api("POST", f"/users/{ALICE.hub_name}/servers/{server_name}")
        browser.open_server()

    try:
        with ThreadPoolExecutor(len(browsers)) as pool:
            list(pool.map(arrive, browsers.values()))
        yield browsers
    finally:
        for b in browsers.values():
            b.close()


@pytest.fixture(scope="session")
def alice(people: dict[str, HubBrowser]) -> HubBrowser:
    return people[ALICE.hub_name]


@pytest.fixture(scope="session")
def bob(people: dict[str, HubBrowser]) -> HubBrowser:
    return people[BOB.hub_name]


@pytest.fixture(scope="session")
def login_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoginSetup]:
    """A hub whose login is Speckle (``configure(c, login=True)``), with its own dev server."""
    with DevServer().running() as dev:
        setup = start_login_hub(tmp_path_factory.mktemp("login-hub"), dev)
        try:
            yield setup
        finally:
            setup.hub.stop()


# -- pytest-jupyter ------------------------------------------------------------------------------


# pytest-jupyter (loaded by tests/conftest.py) has two autouse fixtures that would adopt a
# running event loop (Playwright's, when the browser layer runs in the same session) and fail
# closing it. This layer runs its servers as subprocesses, and its websockets and Playwright on
# threads of their own: both fixtures are switched off here.
@pytest.fixture
def jp_asyncio_loop() -> None:
    return None


@pytest.fixture
def jp_server_cleanup() -> None:
    return None
