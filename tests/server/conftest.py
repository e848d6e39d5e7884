"""A real Jupyter server (pytest-jupyter, base URL ``/a%40b/``) with speckle_nb enabled.

The Speckle side is ``serverkit.FakeSpeckle`` behind an ``httpx.MockTransport`` injected through
the extension's ``http_transport`` trait; the full flow against the real dev server is in
``test_server_devserver.py``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from serverkit import APP_ID, APP_SECRET, SPECKLE_URL, Browser, FakeClock, FakeSpeckle, Fetch
from traitlets.config import Config

from speckle_nb.server.service import SignInService


@pytest.fixture
def speckle() -> FakeSpeckle:
    return FakeSpeckle()


@pytest.fixture
def speckle_config() -> dict[str, Any]:
    """Per-test overrides of ``c.SpeckleNB`` (override this fixture in a test module); a
    value of None removes the key, so the trait falls back to its default."""
    return {}


@pytest.fixture
def serverapp_config() -> dict[str, Any]:
    """Per-test overrides of ``c.ServerApp``."""
    return {}


@pytest.fixture
def speckle_env() -> dict[str, str]:
    """Environment for the Jupyter server (JupyterHub's variables, SPECKLE_*), per test."""
    return {}


@pytest.fixture
def jp_server_config(
    speckle: FakeSpeckle,
    speckle_config: dict[str, Any],
    speckle_env: dict[str, str],
    serverapp_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    _clean_env: None,
) -> Config:
    for name, value in speckle_env.items():
        monkeypatch.setenv(name, value)
    extension: dict[str, Any] = {
        "server_url": SPECKLE_URL,
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "http_transport": speckle.transport(),
        **speckle_config,
    }
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"speckle_nb": True}, **serverapp_config},
            # a None in speckle_config leaves the trait to its default (environment)
            "SpeckleNB": {k: v for k, v in extension.items() if v is not None},
        }
    )


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SPECKLE_* or JUPYTERHUB_* from the shell changes what the extension does."""
    for name in list(os.environ):
        if name.startswith(("SPECKLE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)


@pytest.fixture
def service(jp_serverapp: Any) -> SignInService:
    svc: SignInService = jp_serverapp.web_app.settings["speckle_nb_service"]
    return svc


@pytest.fixture
def clock(service: SignInService) -> FakeClock:
    fake = FakeClock()
    service.store.clock = fake
    return fake


@pytest.fixture
def browser(jp_fetch: Fetch) -> Browser:
    return Browser(jp_fetch)
