"""Paste mode (no extension, an app in the kernel's environment with a web redirect URL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import speckle_nb
from speckle_nb.devserver import DevServer
from speckle_nb.errors import InvalidTokenError
from speckle_nb.session import current_session

from .helpers import Wire, assert_nowhere, play_sign_in

LANDING = "https://notebook.example/landed"


@pytest.fixture
def paste_app(kernel_app: Callable[[str], Any]) -> Any:
    return kernel_app(LANDING)


def authorize_url(wire: Wire, panel: Any) -> str:
    """The URL the view would open: the last authorize-url message for the panel's flow."""
    messages = [m for m in wire.custom("authorize-url") if m["flow"] == panel.request_id]
    assert messages, "the view never got the authorize URL of the current flow"
    url: str = messages[-1]["url"]
    return url


def test_paste_mode_is_chosen_and_the_authorize_url_is_never_state(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    panel = speckle_nb.sign_in()
    assert panel.mode == "paste"
    assert "paste the address" in panel.mode_reason
    assert panel.redirect_url_hint == LANDING
    url = authorize_url(wire, panel)
    assert url.startswith(f"{dev.url}/authn/verify/{paste_app.id}/")
    challenge = url.rsplit("/", 1)[1].split("?")[0]
    assert_nowhere(wire, panel, url, challenge)

    # A view that renders later asks; the kernel answers with the same URL, again privately.
    count = len(wire.custom("authorize-url"))
    panel.handle_message({"type": "ready"})
    assert len(wire.custom("authorize-url")) == count + 1
    assert authorize_url(wire, panel) == url


def test_paste_url_completes_and_no_secret_is_kept(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    panel = speckle_nb.sign_in()
    url = authorize_url(wire, panel)
    landing = play_sign_in(url)
    code = parse_qs(urlsplit(landing).query)["access_code"][0]

    panel.handle_message({"type": "opened", "request": panel.request_id})
    assert panel.state == "waiting"
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})

    assert panel.state == "signed_in", panel.message
    assert panel.source == "paste"
    assert panel.user_name == "Demo User"
    creds = current_session().credentials()
    assert creds is not None
    assert creds.obtained_by_us
    assert creds.refresh_token
    assert speckle_nb.client().active_user().name == "Demo User"
    challenge = url.rsplit("/", 1)[1]
    assert_nowhere(wire, panel, creds.token, creds.refresh_token, landing, code, challenge)


def test_pasting_text_without_a_code_fails_and_prepares_a_new_flow(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    panel = speckle_nb.sign_in()
    first = panel.request_id
    secretish = "https://notebook.example/landed?nothing=here-but-private"
    panel.handle_message({"type": "paste-url", "request": first, "url": secretish})

    assert panel.state == "error"
    assert "access_code" in panel.message
    assert secretish not in panel.message
    assert panel.request_id != first
    assert authorize_url(wire, panel)  # Try again opens the new flow at once
    panel.handle_message({"type": "try-again", "request": panel.request_id})
    assert panel.state == "waiting"


def test_a_used_code_is_refused_with_the_servers_words(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    panel = speckle_nb.sign_in()
    landing = play_sign_in(authorize_url(wire, panel))
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    assert panel.state == "signed_in"

    speckle_nb.sign_out()
    assert panel.state == "idle"
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    assert panel.state == "error"
    assert "Access code not found." in panel.message or "challenge" in panel.message.lower()
    assert current_session().servers == []


def test_denied_shows_denied_and_the_next_step(dev: DevServer, wire: Wire, paste_app: Any) -> None:
    panel = speckle_nb.sign_in()
    landing = play_sign_in(authorize_url(wire, panel), action="deny")
    assert "denied=true" in landing
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    assert panel.state == "error"
    assert panel.error_reason == "denied"
    assert "Authorize" in panel.next_step  # the consent button's name


def test_a_paste_for_an_old_flow_is_refused_without_spending_anything(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    panel = speckle_nb.sign_in()
    old = panel.request_id
    landing = play_sign_in(authorize_url(wire, panel))
    panel.handle_message({"type": "cancel", "request": old})
    assert panel.state == "idle"
    assert panel.message == "Sign-in cancelled."
    assert panel.request_id != old
    panel.handle_message({"type": "paste-url", "request": old, "url": landing})
    assert panel.state == "error"
    assert "no sign-in waiting" in panel.message
    assert current_session().servers == []


def test_sign_out_revokes_a_pasted_sign_in(dev: DevServer, wire: Wire, paste_app: Any) -> None:
    panel = speckle_nb.sign_in()
    other = speckle_nb.sign_in()  # a second panel for the same server
    landing = play_sign_in(authorize_url(wire, panel))
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    assert panel.state == other.state == "signed_in"
    creds = current_session().credentials()
    assert creds is not None
    old_client = speckle_nb.client()

    other.handle_message({"type": "sign-out"})

    assert panel.state == other.state == "idle"
    assert "revoked at the server" in panel.message
    assert panel.request_id
    assert panel.request_id != other.request_id
    assert old_client.closed
    from speckle_nb.graphql import SpeckleClient

    with SpeckleClient(dev.url, creds.token) as probe, pytest.raises(InvalidTokenError):
        probe.active_user()


def test_a_refused_token_is_refreshed_in_the_kernel(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    """The kernel holds the app secret (paste mode): it refreshes by itself and retries."""
    panel = speckle_nb.sign_in()
    landing = play_sign_in(authorize_url(wire, panel))
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    before = current_session().credentials()
    assert before is not None

    dev.state.revoke_user_token(before.token[:10], dev.demo_user.id)
    assert speckle_nb.client().active_user().name == "Demo User"
    after = current_session().credentials()
    assert after is not None
    assert after.token != before.token
    assert after.user == before.user
    assert panel.state == "signed_in"
    assert_nowhere(wire, panel, after.token)


def test_without_a_way_to_refresh_the_error_says_sign_in_again(
    dev: DevServer, wire: Wire, paste_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = speckle_nb.sign_in()
    landing = play_sign_in(authorize_url(wire, panel))
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    creds = current_session().credentials()
    assert creds is not None
    monkeypatch.delenv("SPECKLE_APP_SECRET")  # e.g. a new kernel without the secret

    dev.state.revoke_user_token(creds.token[:10], dev.demo_user.id)
    with pytest.raises(InvalidTokenError, match=r"sign_in\(\)") as caught:
        speckle_nb.client().active_user()
    assert creds.token not in str(caught.value)
    assert creds.refresh_token is not None
    assert creds.refresh_token not in str(caught.value)


def test_an_unreachable_server_is_shown_and_raised_with_wait(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody answers on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("SPECKLE_SERVER_URL", url)
    monkeypatch.setenv("SPECKLE_APP_ID", "abcdef0123")
    monkeypatch.setenv("SPECKLE_APP_SECRET", "0123abcdef")
    monkeypatch.setenv("SPECKLE_REDIRECT_URL", LANDING)

    panel = speckle_nb.sign_in()
    assert panel.mode == "paste"
    assert panel.state == "error"
    assert panel.error_reason == "unreachable"
    assert url in panel.message
    with pytest.raises(speckle_nb.TransportError):
        speckle_nb.sign_in(wait=True)


def test_an_app_without_its_secret_gives_way_to_the_builtin_app_and_says_why(
    dev: DevServer, wire: Wire, paste_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPECKLE_APP_SECRET")  # e.g. the Jupyter server keeps it to itself
    panel = speckle_nb.sign_in()
    assert panel.builtin_app
    assert panel.state == "idle"
    assert "SPECKLE_APP_SECRET" in panel.mode_reason
    assert "no Jupyter server with the speckle-nb extension" in panel.mode_reason
    assert "/authn/verify/connectrV3/" in wire.custom("authorize-url")[-1]["url"]


def test_an_app_without_its_secret_falls_back_to_a_token_when_the_builtin_app_is_off(
    dev: DevServer, wire: Wire, paste_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPECKLE_APP_SECRET")
    monkeypatch.setenv("SPECKLE_NB_BUILTIN_APP", "off")
    panel = speckle_nb.sign_in()
    assert panel.mode == "token"
    assert panel.state == "idle"
    assert "SPECKLE_APP_SECRET" in panel.mode_reason
    assert "SPECKLE_NB_BUILTIN_APP=off" in panel.mode_reason
    assert wire.custom("authorize-url") == []
