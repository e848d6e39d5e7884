"""No setup at all: Speckle's built-in public app (connectrV3, "Desktop Connectors"), the
kernel's listener on 127.0.0.1:29355 or a pasted address, and the panel's server picker."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import speckle_nb
from speckle_nb.devserver import DevServer
from speckle_nb.session import DEFAULT_SERVER_URL, current_session

from .helpers import Wire, assert_nowhere, play_sign_in

BUILTIN_PORT = 29355


def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def connector() -> Iterator[socket.socket]:
    """A desktop connector signing in at this moment: something listens on 29355."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", BUILTIN_PORT))
        sock.listen()
        yield sock


def test_no_app_anywhere_signs_in_with_the_builtin_app_and_says_why(
    dev: DevServer, wire: Wire
) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    assert panel.mode == "loopback"
    assert panel.builtin_app
    assert panel.paste_too  # no Jupyter server: where the browser runs is unknown
    assert panel.server_url == dev.url
    assert "authorize “Desktop Connectors”" in panel.mode_reason  # explained before the page
    assert "no Speckle app is configured for the kernel" in panel.mode_reason
    assert panel.details[0].startswith(
        "Signs in with Speckle's built-in public app “Desktop Connectors” (connectrV3, "
        "redirect http://localhost:29355)"
    )
    assert (
        "Not the Jupyter server's extension: no Jupyter server with the speckle-nb "
        "extension started this kernel (VS Code, Colab, a console or plain IPython)."
    ) in panel.details
    url = wire.custom("authorize-url")[-1]["url"]
    assert url.startswith(f"{dev.url}/authn/verify/connectrV3/")

    landing = play_sign_in(url)
    assert landing.startswith("http://localhost:29355?access_code=")
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    assert panel.state == "signed_in"
    creds = current_session().credentials()
    assert creds is not None
    assert creds.app_id == "connectrV3"
    assert_nowhere(wire, panel, creds.token, creds.refresh_token, landing.split("=")[1], url)


def test_a_busy_port_before_the_click_means_paste_with_a_clear_reason(
    dev: DevServer, wire: Wire, connector: socket.socket
) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    assert panel.mode == "paste"
    assert panel.builtin_app
    assert "http://localhost:29355/?access_code=…" in panel.mode_reason
    assert (
        "Not Speckle's built-in app (connectrV3) over a listener: port 29355 is in use (a "
        "Speckle desktop connector signing in, or another notebook?), so the kernel cannot "
        "listen there."
    ) in panel.details


def test_a_port_taken_at_the_click_goes_on_as_paste_with_the_same_flow(
    dev: DevServer, wire: Wire
) -> None:
    """Production's order: the panel shows (port free), then the port is taken, then the
    click: the error says so, and the address of *that* window's sign-in finishes it."""
    panel = speckle_nb.sign_in(timeout=30)
    assert panel.mode == "loopback"
    flow = panel.request_id
    url = wire.custom("authorize-url")[-1]["url"]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", BUILTIN_PORT))
        sock.listen()
        panel.handle_message({"type": "opened", "request": flow})
        until(lambda: panel.mode == "paste", "the switch to paste")
    assert panel.state == "waiting"
    assert panel.request_id == flow  # the window already open still counts
    assert panel.message.startswith("port 29355 is in use — is a Speckle connector running?")
    assert panel.message.endswith("Paste the address below.")
    landing = play_sign_in(url)
    panel.handle_message({"type": "paste-url", "request": flow, "url": landing})
    assert panel.state == "signed_in"
    assert panel.source == "paste"


def test_a_registered_app_still_wins(
    dev: DevServer, wire: Wire, kernel_app: Callable[[str], Any]
) -> None:
    app = kernel_app("https://notebook.example/landed")
    panel = speckle_nb.sign_in()
    assert panel.mode == "paste"
    assert not panel.builtin_app
    assert panel.details[0] == (
        f"Signs in with the kernel's app {app.id} on {dev.url} (SPECKLE_APP_ID)."
    )
    assert f"/authn/verify/{app.id}/" in wire.custom("authorize-url")[-1]["url"]


def test_the_user_picks_another_server(
    dev: DevServer, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPECKLE_SERVER_URL")  # the default: app.speckle.systems
    with DevServer().running() as company:
        panel = speckle_nb.sign_in(dev.url)  # sign_in("https://…") still names the server
        assert panel.server_url == dev.url
        assert panel.server_choices == [dev.url, DEFAULT_SERVER_URL]

        panel.handle_message({"type": "set-server", "server_url": company.url + "/"})
        assert panel.server_url == company.url
        assert panel.builtin_app
        url = wire.custom("authorize-url")[-1]["url"]
        assert url.startswith(f"{company.url}/authn/verify/connectrV3/")
        landing = play_sign_in(url)
        panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
        assert panel.state == "signed_in"
        assert panel.server_url == company.url

        # A later panel offers the server signed in to before.
        later = speckle_nb.sign_in(dev.url)
        assert company.url in later.server_choices
        later.handle_message({"type": "set-server", "server_url": "ftp://files.example"})
        assert later.message.startswith("That is not a Speckle server address")
        assert later.server_url == dev.url
