"""The issue's "Done when": a kernel started by a Jupyter server with the extension signs in.

The kernel runs ``speckle_nb.sign_in(wait=True)``; meanwhile the test plays the person's
browser: the panel's start URL on the Jupyter server (logged in with the Jupyter token),
sign-in and consent on the dev server, Speckle's redirect to the callback. The cell ends,
and ``speckle_nb.client()`` in the kernel answers as the demo user.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from kernelkit import WebSocketKernel, play_extension_sign_in
from support.jupyter import JupyterServer

from speckle_nb.devserver import DevServer

pytestmark = pytest.mark.kernel


@pytest.fixture
def kernel(jupyter_kernel: WebSocketKernel) -> Iterator[WebSocketKernel]:
    """The module's kernel, signed out again after each test."""
    yield jupyter_kernel
    jupyter_kernel.run("speckle_nb.sign_out(); speckle_nb.SignInPanel.close_all()")


def secrets_of(kernel: WebSocketKernel) -> list[str]:
    """The session's token and refresh token (printed by a test cell, on purpose)."""
    out = kernel.run(
        "from speckle_nb.session import current_session\n"
        "_c = current_session().credentials()\n"
        "print(_c.token); print(_c.refresh_token)"
    ).stdout.split()
    assert len(out) == 2
    return out


def test_sign_in_wait_true_in_a_kernel_of_the_jupyter_server(
    jupyter: JupyterServer, kernel: WebSocketKernel, dev: DevServer
) -> None:
    cell = kernel.start(
        "p = speckle_nb.sign_in(wait=True, timeout=60)\nprint('after:', p.mode, p.state)"
    )
    panel = kernel.panel(cell)
    # busy: the kernel is blocked in wait (the view's button works without it)
    state = kernel.wait_state(panel, lambda s: bool(s.get("start_path") and s.get("busy")))
    assert state["mode"] == "extension"
    assert jupyter.url in state["mode_reason"]
    assert state["state"] == "idle"
    assert state["start_path"].startswith("speckle-nb/start?request=")

    page = play_extension_sign_in(jupyter.url, jupyter.token, state["start_path"])
    assert page.status_code == 200
    assert "Demo User" in page.text

    kernel.finish(cell, timeout=60)
    assert cell.error is None, cell.stderr
    assert "after: extension signed_in" in cell.stdout
    # one panel on screen for the call
    views = [m for m in cell.messages if m["header"]["msg_type"] == "display_data"]
    assert len(views) == 1
    state = kernel.state(panel)
    assert (state["state"], state["user_name"], state["server_url"]) == (
        "signed_in",
        "Demo User",
        dev.url,
    )
    assert state["source"] == "sign-in"
    assert state["busy"] is False

    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"

    wire = kernel.wire_text()
    log = jupyter.log_text()
    for secret in secrets_of(kernel):
        assert secret not in wire, "a token reached the front end"
        assert secret not in log, "a token reached the Jupyter server's log"
    code = re.search(r"access_code=([0-9a-f]+)", str(page.url))
    if code:
        assert code.group(1) not in wire

    signed_out = kernel.run("print(speckle_nb.sign_out())").stdout
    assert "revoked at the server" in signed_out
    assert kernel.state(panel)["state"] == "idle"


def test_background_sign_in_updates_the_panel(
    jupyter: JupyterServer, kernel: WebSocketKernel
) -> None:
    cell = kernel.run("p = speckle_nb.sign_in(timeout=60)\nprint(p.state)")
    assert cell.stdout.strip() == "idle"
    panel = kernel.panel(cell)
    state = kernel.state(panel)
    assert state["busy"] is False

    kernel.send_to_widget(panel, {"type": "opened", "request": state["request_id"]})
    kernel.wait_state(panel, lambda s: s["state"] == "waiting")
    play_extension_sign_in(jupyter.url, jupyter.token, state["start_path"])
    # what the BroadcastChannel message from the callback page makes the view send
    kernel.send_to_widget(panel, {"type": "nudge", "request": state["request_id"]})
    state = kernel.wait_state(panel, lambda s: s["state"] == "signed_in")
    assert state["user_email"] == "demo@example.org"
    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"

    # a second sign_in() shows the signed-in state and starts nothing
    again = kernel.run("q = speckle_nb.sign_in()\nprint(q.state, repr(q.request_id))")
    assert again.stdout.strip() == "signed_in ''"


def test_denied_in_the_browser_raises_and_shows_the_next_step(
    jupyter: JupyterServer, kernel: WebSocketKernel
) -> None:
    cell = kernel.start("speckle_nb.sign_in(wait=True, timeout=60)")
    panel = kernel.panel(cell)
    state = kernel.wait_state(panel, lambda s: bool(s.get("start_path")))
    first = state["request_id"]
    play_extension_sign_in(jupyter.url, jupyter.token, state["start_path"], action="deny")
    kernel.finish(cell, timeout=60)
    assert cell.error is not None
    assert cell.error.startswith("SignInDeniedError")
    state = kernel.state(panel)
    assert state["state"] == "error"
    assert state["error_reason"] == "denied"
    assert "Authorize" in state["next_step"]
    # Try again opens a fresh request at once: the kernel prepared it with the error
    assert state["request_id"] != first
    assert state["start_path"].startswith("speckle-nb/start?request=")


def test_timeout_and_interrupt(jupyter: JupyterServer, kernel: WebSocketKernel) -> None:
    cell = kernel.finish(kernel.start("speckle_nb.sign_in(wait=True, timeout=1)"), timeout=30)
    assert cell.error is not None
    assert cell.error.startswith("SignInTimeoutError")
    state = kernel.state(kernel.panel(cell))
    assert state["error_reason"] == "timeout"

    cell = kernel.start("speckle_nb.sign_in(wait=True, timeout=60)")
    panel = kernel.panel(cell)
    kernel.wait_state(panel, lambda s: bool(s.get("busy")))
    httpx.post(
        f"{jupyter.url}api/kernels/{kernel.kernel_id}/interrupt",
        headers={"Authorization": f"token {jupyter.token}"},
    )
    kernel.finish(cell, timeout=30)
    assert cell.error is not None
    assert cell.error.startswith("KeyboardInterrupt")
    state = kernel.state(panel)
    assert (state["state"], state["message"], state["busy"]) == (
        "idle",
        "Sign-in interrupted.",
        False,
    )


def test_the_view_saying_no_extension_switches_to_the_fallback(kernel: WebSocketKernel) -> None:
    panel = kernel.panel(kernel.run("p = speckle_nb.sign_in()"))
    assert kernel.state(panel)["mode"] == "extension"
    kernel.send_to_widget(
        panel,
        {"type": "no-extension", "why": "this page is not served by a Jupyter server (VS Code)"},
    )
    state = kernel.wait_state(panel, lambda s: s["mode"] != "extension")
    assert "VS Code" in state["mode_reason"]
    assert state["start_path"] == ""
    assert state["state"] == "idle"
    # The kernel inherited the app's id from the server. With its secret too it signs in by
    # pasting; the extension may keep the secret to itself, and then Speckle's built-in app
    # (the Jupyter server is on 127.0.0.1: the browser runs here, so over a listener).
    if state["mode"] == "paste":
        assert kernel.authorize_url(panel).startswith("http://localhost")
    else:
        assert state["mode"] == "loopback"
        assert state["builtin_app"]
        assert "SPECKLE_APP_SECRET" in state["mode_reason"]
        assert "/authn/verify/connectrV3/" in kernel.authorize_url(panel)


def test_an_invalid_token_is_refreshed_through_the_extension(
    jupyter: JupyterServer, kernel: WebSocketKernel, dev: DevServer
) -> None:
    cell = kernel.start("speckle_nb.sign_in(wait=True, timeout=60)")
    state = kernel.wait_state(kernel.panel(cell), lambda s: bool(s.get("start_path")))
    play_extension_sign_in(jupyter.url, jupyter.token, state["start_path"])
    kernel.finish(cell)
    assert cell.error is None
    token, _refresh = secrets_of(kernel)

    dev.state.revoke_user_token(token[:10], dev.demo_user.id)  # the server forgets the token
    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"
    new_token, _ = secrets_of(kernel)
    assert new_token != token
    assert token not in jupyter.log_text()
