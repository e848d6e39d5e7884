"""The sign-in panel's model, driven as its view would drive it, against the real dev server.

No front end runs here: a ``RecordingComm`` (a ``comm.base_comm.BaseComm``, the comm
package's own extension point, as ipykernel's ``Comm`` is one) records every message the
panel sends, so a test can read what the view would receive, and messages from the view
go through ``SignInPanel.handle_message`` — the entry point of the panel's comm handler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import comm
import ipywidgets
import keyring
import keyring.backends.fail
import pytest
from comm.base_comm import BaseComm

from speckle_nb.devserver import DevServer
from speckle_nb.session import current_session

from .helpers import SCOPES, Sent, Wire


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    """Widgets created from now on send over a recording comm."""
    recorder = Wire()

    class RecordingComm(BaseComm):
        def publish_msg(
            self,
            msg_type: str,
            data: Any = None,
            metadata: Any = None,
            buffers: Any = None,
            **keys: Any,
        ) -> None:
            recorder.sent.append(Sent(msg_type, dict(data or {})))

    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: RecordingComm(**kwargs))
    return recorder


@pytest.fixture(autouse=True)
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SPECKLE_* from the developer's shell, remember-me in a temp dir, no keyring, an
    empty session before and after."""
    import os

    for name in list(os.environ):
        if name.startswith(("SPECKLE_", "JUPYTERHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPECKLE_NB_DATA_DIR", str(tmp_path / "remembered"))
    monkeypatch.setenv("SPECKLE_USERDATA_PATH", str(tmp_path / "no-desktop-accounts"))
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    current_session().reset()
    yield
    ipywidgets.Widget.close_all()
    current_session().reset()
    keyring.set_keyring(previous)


@pytest.fixture
def dev(devserver: DevServer, monkeypatch: pytest.MonkeyPatch) -> DevServer:
    """The dev server as the kernel's Speckle server (``SPECKLE_SERVER_URL``)."""
    monkeypatch.setenv("SPECKLE_SERVER_URL", devserver.url)
    return devserver


@pytest.fixture
def pat(dev: DevServer) -> Callable[..., str]:
    def make(scopes: tuple[str, ...] = SCOPES) -> str:
        return dev.state.create_token(dev.demo_user.id, scopes=scopes)

    return make


@pytest.fixture
def kernel_app(dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """``kernel_app(redirect_url)``: register an app and put it in the kernel's environment."""

    def make(redirect_url: str) -> Any:
        app = dev.state.register_app("notebook app", redirect_url, list(SCOPES))
        monkeypatch.setenv("SPECKLE_APP_ID", app.id)
        monkeypatch.setenv("SPECKLE_APP_SECRET", app.secret)
        monkeypatch.setenv("SPECKLE_REDIRECT_URL", redirect_url)
        return app

    return make
