"""Hardening suites (issue 8): bad input, faults, load, restarts and the save-time guard.

In-process tests run a real Jupyter server with the extension through pytest-jupyter (base URL
``/a%40b/``), reached over real loopback HTTP. The Speckle side is either the extension
engineer's ``FakeSpeckle`` (``tests/server/serverkit.py``, through the ``http_transport``
trait) where no exchange may happen at all, or the real dev server. Subprocess tests use the
browser engineer's ``tests/support/jupyter.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

_TESTS = Path(__file__).resolve().parents[1]
for _where in (_TESTS, _TESTS / "server", _TESTS / "kernel"):
    if str(_where) not in sys.path:
        sys.path.insert(0, str(_where))

from serverkit import APP_ID, APP_SECRET, SPECKLE_URL, FakeSpeckle  # noqa: E402

from speckle_nb.server.service import SignInService  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SPECKLE_* or JUPYTERHUB_* from the shell changes what the extension does."""
    for name in list(os.environ):
        if name.startswith(("SPECKLE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)


@pytest.fixture
def speckle() -> FakeSpeckle:
    return FakeSpeckle()


@pytest.fixture
def speckle_config() -> dict[str, Any]:
    """Per-module overrides of ``c.SpeckleNB`` (None: the trait's default)."""
    return {}


@pytest.fixture
def jp_server_config(
    speckle: FakeSpeckle, speckle_config: dict[str, Any], _clean_env: None
) -> Config:
    extension: dict[str, Any] = {
        "server_url": SPECKLE_URL,
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "http_transport": speckle.transport(),
        **speckle_config,
    }
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"speckle_nb": True}},
            "SpeckleNB": {k: v for k, v in extension.items() if v is not None},
        }
    )


@pytest.fixture
def service(jp_serverapp: Any) -> SignInService:
    svc: SignInService = jp_serverapp.web_app.settings["speckle_nb_service"]
    return svc


@pytest.fixture
def jupyter_url(jp_http_port: int) -> str:
    return f"http://127.0.0.1:{jp_http_port}/a%40b/"
