"""Extension mode, in this process: the panel as a kernel of a real Jupyter server runs it.

This test process takes the environment a kernel of that server inherits (the URL the
extension publishes, and ``JPY_PARENT_PID``), so discovery, the ping and the pickup are the
real ones; the person's browser is played against the server's start and callback routes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import speckle_nb
from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD
from speckle_nb.session import current_session

from .helpers import SCOPES, Wire, assert_nowhere

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from support.jupyter import JupyterServer, artifacts_dir  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, JupyterServer]]:
    root = tmp_path_factory.mktemp("jupyter")
    with DevServer().running() as dev:
        server = JupyterServer(
            "server", root_dir=root / "nb", log_path=artifacts_dir("widget-extension") / "log"
        )
        app = dev.state.register_app("panel tests", server.redirect_url(), list(SCOPES))
        server.extra_env.update(
            SPECKLE_SERVER_URL=dev.url, SPECKLE_APP_ID=app.id, SPECKLE_APP_SECRET=app.secret
        )
        with server.running():
            yield dev, server


@pytest.fixture
def jupyter(
    stack: tuple[DevServer, JupyterServer], monkeypatch: pytest.MonkeyPatch
) -> JupyterServer:
    """This process, as a kernel of the Jupyter server (what such a kernel inherits)."""
    dev, server = stack
    assert server.process is not None
    pid = str(server.process.pid)
    monkeypatch.setenv("JPY_PARENT_PID", pid)
    monkeypatch.setenv("SPECKLE_NB_JUPYTER_PID", pid)
    monkeypatch.setenv("SPECKLE_NB_JUPYTER_URL", server.url)
    monkeypatch.setenv("SPECKLE_SERVER_URL", dev.url)
    return server


def browser_sign_in(server: JupyterServer, start_path: str, action: str = "allow") -> str:
    """The person: open the start URL, sign in, consent, land on the callback. Returns the
    callback URL (it carried the access code)."""
    with BrowserPlayer(
        headers_by_origin={server.origin: {"Authorization": f"token {server.token}"}}
    ) as browser:
        callback = browser.sign_in_and_consent(
            server.url + start_path,
            DEMO_EMAIL,
            DEMO_PASSWORD,
            action,
            stop_at_prefix=f"{server.url}speckle-nb/callback",
        )
        page = browser.open(callback)
        assert page is not None
        assert page.response.status_code == (200 if action == "allow" else 403)
        return callback


def until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_extension_mode_signs_in_and_keeps_every_secret_in_the_kernel(
    jupyter: JupyterServer, wire: Wire
) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    assert panel.mode == "extension"
    assert "environment" in panel.mode_reason
    assert panel.state == "idle"
    query = parse_qs(urlsplit(panel.start_path).query)
    assert query["request"] == [panel.request_id]
    assert query["pickup"] == [panel.pickup_hash]

    panel.handle_message({"type": "opened", "request": panel.request_id})
    assert panel.state == "waiting"
    callback = browser_sign_in(jupyter, panel.start_path)
    panel.handle_message({"type": "nudge", "request": panel.request_id})  # a waiter has it
    until(lambda: panel.state == "signed_in", "the pickup")

    assert panel.source == "sign-in"
    assert panel.user_name == "Demo User"
    assert panel.request_id == panel.start_path == panel.pickup_hash == ""
    creds = current_session().credentials()
    assert creds is not None
    code = parse_qs(urlsplit(callback).query)["access_code"][0]
    assert_nowhere(wire, panel, creds.token, creds.refresh_token, code)
    assert speckle_nb.client().active_user().name == "Demo User"
    assert "revoked at the server" in speckle_nb.sign_out()
    assert panel.state == "idle"
    assert panel.request_id  # ready for the next sign-in


def test_a_nudge_picks_up_a_result_nobody_waits_for(jupyter: JupyterServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in(timeout=0.3)
    until(lambda: panel.state == "error", "the timeout")
    assert panel.error_reason == "timeout"
    # The error prepared a new request, with no waiter: the callback page's nudge fetches it.
    browser_sign_in(jupyter, panel.start_path)
    panel.handle_message({"type": "nudge", "request": panel.request_id, "result": "signed-in"})
    until(lambda: panel.state == "signed_in", "the nudged pickup")


def test_cancel_ends_the_request_at_the_server(jupyter: JupyterServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    old_path = panel.start_path
    panel.handle_message({"type": "opened", "request": panel.request_id})
    panel.handle_message({"type": "cancel", "request": panel.request_id})
    assert panel.state == "idle"
    assert panel.message == "Sign-in cancelled."
    assert panel.start_path != old_path
    # the new request still works
    panel.handle_message({"type": "opened", "request": panel.request_id})
    browser_sign_in(jupyter, panel.start_path)
    until(lambda: panel.state == "signed_in", "the sign-in after cancel")


def test_denied_is_an_error_and_try_again_starts_over(jupyter: JupyterServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    first = panel.request_id
    browser_sign_in(jupyter, panel.start_path, action="deny")
    until(lambda: panel.state == "error", "the denial")
    assert panel.error_reason == "denied"
    assert panel.request_id != first
    panel.handle_message({"type": "try-again", "request": panel.request_id})
    assert panel.state == "waiting"
    browser_sign_in(jupyter, panel.start_path)
    until(lambda: panel.state == "signed_in", "the second try")


def test_no_extension_from_the_view_switches_to_the_fallback(
    jupyter: JupyterServer, wire: Wire
) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    panel.handle_message({"type": "no-extension", "why": "a VS Code notebook"})
    # this process has no app settings of its own: Speckle's built-in app, listener and paste
    assert panel.mode == "loopback"
    assert panel.builtin_app
    assert not panel.paste_too  # the Jupyter server is on 127.0.0.1: the browser runs here
    assert "a VS Code notebook" in panel.mode_reason
    assert "Desktop Connectors" in panel.mode_reason
    assert panel.start_path == ""
    assert (
        wire.custom("authorize-url")[-1]["url"].split("/authn/verify/")[1].startswith("connectrV3/")
    )
    panel.handle_message({"type": "no-extension", "why": "again"})  # only once
    assert "again" not in panel.mode_reason


def test_two_panels_one_sign_in(jupyter: JupyterServer, wire: Wire) -> None:
    first = speckle_nb.sign_in(timeout=30)
    second = speckle_nb.sign_in(timeout=30)
    assert first.request_id != second.request_id
    browser_sign_in(jupyter, second.start_path)
    until(lambda: first.state == second.state == "signed_in", "both panels")
