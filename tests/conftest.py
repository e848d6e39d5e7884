"""Fixtures every layer may use. Layer-specific fixtures live in each subfolder's conftest."""

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# The plugin line comes first on purpose (every layer's tests rely on it), so the
# imports follow it.
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from speckle_nb.devserver import DevServer  # noqa: E402
from speckle_nb.devserver.state import App  # noqa: E402

DEV_APP_REDIRECT = "http://127.0.0.1:8888/speckle-nb/callback"


@pytest.fixture
def devserver() -> Iterator[DevServer]:
    """A fresh Speckle dev server on ``http://localhost:<port>`` for one test."""
    with DevServer().running() as dev:
        yield dev


@pytest.fixture
def dev_app(devserver: DevServer) -> App:
    """A registered (not trusted) app: consent screen, 10-hex id and secret."""
    return devserver.state.register_app(
        "speckle-nb test app",
        DEV_APP_REDIRECT,
        ["streams:read", "profile:read", "profile:email"],
    )
