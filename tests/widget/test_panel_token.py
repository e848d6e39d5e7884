"""Token mode (no extension, no app, the built-in app turned off): the panel's password
field, and what leaks (nothing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import speckle_nb
from speckle_nb.devserver import DevServer
from speckle_nb.errors import NotSignedInError
from speckle_nb.session import current_session

from .helpers import Wire, assert_nowhere, manager_state_text

BAD_TOKEN = "0123456789" + "e" * 32


@pytest.fixture(autouse=True)
def builtin_app_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECKLE_NB_BUILTIN_APP", "off")


def test_no_extension_no_app_picks_token_mode_and_says_why(dev: DevServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in()
    assert panel.mode == "token"
    assert panel.state == "idle"
    assert panel.server_url == dev.url
    assert "personal access token" in panel.mode_reason
    assert "no Speckle app is configured" in panel.mode_reason
    assert "the built-in app is turned off here (SPECKLE_NB_BUILTIN_APP=off)" in panel.mode_reason
    assert panel.request_id == panel.start_path == panel.pickup_hash == ""


def test_token_message_signs_in_and_no_secret_reaches_the_front_end(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    token = pat()
    panel = speckle_nb.sign_in()
    panel.handle_message({"type": "token", "token": token, "request": ""})

    assert panel.state == "signed_in"
    assert panel.user_name == "Demo User"
    assert panel.user_email == "demo@example.org"
    assert panel.server_url == dev.url
    assert panel.source == "token"
    assert speckle_nb.client().active_user().name == "Demo User"
    assert "Demo User" in wire.state_text()  # the wire did carry the new state
    for text in (manager_state_text(), str(panel.get_state()), wire.state_text(), repr(panel)):
        assert token not in text
        assert token[10:] not in text  # not even the secret half
    assert all(token not in str(m) for m in wire.custom())


def test_bad_token_shows_the_servers_reason_and_changes_nothing(dev: DevServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in()
    panel.handle_message({"type": "token", "token": BAD_TOKEN})

    assert panel.state == "error"
    assert panel.error_reason == "invalid-token"
    assert "Your token is not valid." in panel.message
    assert "token" in panel.next_step
    assert BAD_TOKEN not in panel.message + manager_state_text() + wire.state_text()
    assert current_session().servers == []
    with pytest.raises(NotSignedInError):
        speckle_nb.client()

    panel.handle_message({"type": "try-again"})
    assert panel.state == "idle"
    assert panel.error_reason == panel.message == ""


def test_bad_token_keeps_the_signed_in_credentials(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    good = speckle_nb.use_token(pat())
    panel = speckle_nb.sign_in()
    assert panel.state == "signed_in"
    panel.handle_message({"type": "token", "token": BAD_TOKEN})

    assert panel.error_reason == "invalid-token"
    assert current_session().credentials() is good
    assert speckle_nb.client().active_user().name == "Demo User"


def test_empty_or_malformed_messages_are_ignored(dev: DevServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in()
    before = panel.get_state()
    for message in (
        {"type": "token", "token": "   "},
        {"type": "token"},
        {"type": "paste-url", "url": ""},
        {"type": "no-such-message"},
        {"type": "nudge"},
        {"type": "cancel"},
        {"type": "window-closed"},
        {"type": "sign-out"},  # not signed in: nothing to do
    ):
        panel.handle_message(message)
    assert panel.get_state() == before


def test_unreachable_server_is_an_error_with_a_next_step(wire: Wire) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody answers on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    panel = speckle_nb.sign_in(url)
    panel.handle_message({"type": "token", "token": BAD_TOKEN})
    assert panel.state == "error"
    assert panel.error_reason == "unreachable"
    assert url in panel.message
    assert "network" in panel.next_step
    assert current_session().servers == []


def test_use_token_updates_a_live_panel(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    panel = speckle_nb.sign_in()
    assert panel.state == "idle"
    speckle_nb.use_token(pat())
    assert panel.state == "signed_in"
    assert panel.user_name == "Demo User"


def test_use_token_rejects_a_bad_token_with_the_servers_reason(dev: DevServer) -> None:
    with pytest.raises(speckle_nb.InvalidTokenError, match="Your token is not valid"):
        speckle_nb.use_token(BAD_TOKEN)
    assert current_session().servers == []


def test_use_token_without_profile_read_is_kept_without_a_name(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    creds = speckle_nb.use_token(pat(("streams:read",)))
    assert creds.user is None
    panel = speckle_nb.sign_in()
    assert panel.state == "signed_in"
    assert panel.user_name == ""


def test_the_leak_check_catches_a_leak(dev: DevServer, wire: Wire, pat: Callable[..., str]) -> None:
    """``assert_nowhere`` would fail if a token reached a trait (so the tests above mean it)."""
    token = pat()
    panel = speckle_nb.sign_in()
    assert_nowhere(wire, panel, token)
    panel.update(message=f"oops {token}")
    with pytest.raises(AssertionError, match="widget manager state"):
        assert_nowhere(wire, panel, token)
    panel.update(message="")
    with pytest.raises(AssertionError, match="state sent to the views"):
        assert_nowhere(wire, panel, token)  # it went over the wire once: that stays a leak
