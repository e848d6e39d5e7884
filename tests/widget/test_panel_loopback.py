"""Loopback mode: an app whose redirect URL is http://localhost:<port> — the kernel listens."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import speckle_nb
from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.session import current_session

from .helpers import Wire, assert_nowhere, play_sign_in


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def redirect(kernel_app: Callable[[str], Any]) -> str:
    url = f"http://localhost:{free_port()}/"
    kernel_app(url)
    return url


def waiting_threads() -> list[threading.Thread]:
    """The kernel's background sign-in waits still running (signin.py names them)."""
    return [t for t in threading.enumerate() if t.name == "speckle-nb sign-in" and t.is_alive()]


def listening(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_loopback_completes_in_the_background(dev: DevServer, wire: Wire, redirect: str) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    assert panel.mode == "loopback"
    assert redirect in panel.mode_reason
    url = wire.custom("authorize-url")[-1]["url"]
    assert not listening(redirect)  # a panel on screen holds no port until the click
    panel.handle_message({"type": "opened", "request": panel.request_id})
    until(lambda: listening(redirect), "the kernel to listen")

    landing = play_sign_in(url)
    assert landing.startswith(redirect)
    with BrowserPlayer() as browser:  # the browser follows the redirect to the kernel
        page = browser.open(landing)
    assert page is not None
    assert page.response.status_code == 200
    assert "access_code" not in page.response.text

    until(lambda: panel.state == "signed_in", "the background sign-in")
    assert panel.source == "loopback"
    assert speckle_nb.client().active_user().name == "Demo User"
    creds = current_session().credentials()
    assert creds is not None
    code = landing.split("access_code=")[1]
    assert_nowhere(wire, panel, creds.token, creds.refresh_token, code, url)
    until(lambda: not listening(redirect), "the listener to close")


def test_cancel_stops_listening_and_offers_a_fresh_flow(
    dev: DevServer, wire: Wire, redirect: str
) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    first = panel.request_id
    panel.handle_message({"type": "opened", "request": first})
    until(lambda: listening(redirect), "the kernel to listen")
    assert panel.state == "waiting"

    panel.handle_message({"type": "cancel", "request": first})
    assert panel.state == "idle"
    assert panel.message == "Sign-in cancelled."
    assert panel.request_id != first
    until(lambda: not listening(redirect), "the listener to close")

    # The next click starts listening again for the new flow.
    panel.handle_message({"type": "opened", "request": panel.request_id})
    until(lambda: listening(redirect), "the kernel to listen again")
    assert panel.state == "waiting"


def test_window_closed_keeps_the_flow_and_try_again_reopens_it(
    dev: DevServer, wire: Wire, redirect: str
) -> None:
    panel = speckle_nb.sign_in(timeout=30)
    flow = panel.request_id
    panel.handle_message({"type": "opened", "request": flow})
    panel.handle_message({"type": "window-closed", "request": flow})
    assert panel.state == "error"
    assert panel.error_reason == "window-closed"
    assert panel.message == "The sign-in window was closed before finishing."
    assert "Try again" in panel.next_step
    assert panel.request_id == flow  # still the same sign-in: it may yet finish

    panel.handle_message({"type": "try-again", "request": flow})
    assert panel.state == "waiting"
    url = wire.custom("authorize-url")[-1]["url"]
    landing = play_sign_in(url)
    httpx.get(landing, timeout=10)
    until(lambda: panel.state == "signed_in", "the sign-in after Try again")


def test_a_pasted_address_also_finishes_a_loopback_sign_in(
    dev: DevServer, wire: Wire, redirect: str
) -> None:
    """The browser runs elsewhere (its localhost is not the kernel's): paste instead."""
    panel = speckle_nb.sign_in(timeout=30)
    panel.handle_message({"type": "opened", "request": panel.request_id})
    until(lambda: listening(redirect), "the kernel to listen")
    landing = play_sign_in(wire.custom("authorize-url")[-1]["url"])
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    assert panel.state == "signed_in"
    assert panel.source == "paste"
    until(lambda: not listening(redirect), "the listener to close")
    # The listener's wait ends cancelled; once its thread is done, the panel is still fine.
    until(lambda: not waiting_threads(), "the kernel's wait to end")
    assert panel.state == "signed_in"


def test_timeout_is_an_error_with_a_next_step(dev: DevServer, wire: Wire, redirect: str) -> None:
    panel = speckle_nb.sign_in(timeout=0.5)
    first = panel.request_id
    panel.handle_message({"type": "opened", "request": first})
    until(lambda: panel.state == "error", "the timeout")
    assert panel.error_reason == "timeout"
    assert "timeout" in panel.next_step
    assert panel.request_id != first
