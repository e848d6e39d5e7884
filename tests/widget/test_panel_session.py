"""The session behind the panels: sign-out everywhere, already signed in, remember me,
switching credentials, what the extension's status teaches the kernel."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import speckle_nb
from speckle_nb.devserver import DevServer
from speckle_nb.remember import recall
from speckle_nb.session import current_session

from .helpers import Wire, assert_nowhere


def test_already_signed_in_shows_who_and_starts_nothing(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    speckle_nb.use_token(pat())
    panel = speckle_nb.sign_in()
    assert panel.state == "signed_in"
    assert panel.message == "Already signed in."
    assert (panel.user_name, panel.user_email, panel.server_url) == (
        "Demo User",
        "demo@example.org",
        dev.url,
    )
    assert panel.request_id == panel.start_path == ""
    assert wire.custom("authorize-url") == []


def test_sign_in_wait_returns_at_once_when_signed_in(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    speckle_nb.use_token(pat())
    panel = speckle_nb.sign_in(wait=True, timeout=1)
    assert panel.state == "signed_in"


def test_sign_out_resets_every_live_panel_and_says_the_token_was_kept(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    token = pat()
    speckle_nb.use_token(token)
    panels = [speckle_nb.sign_in(), speckle_nb.sign_in()]
    old = speckle_nb.client()

    message = speckle_nb.sign_out()

    assert "not revoked" in message
    assert "revoke=True" in message
    assert token not in message
    for panel in panels:
        assert panel.state == "idle"
        assert panel.message == message
        assert panel.user_name == panel.user_email == panel.source == ""
    assert old.closed
    with pytest.raises(speckle_nb.NotSignedInError, match="sign_in"):
        speckle_nb.client()
    # kept at the server: the token still works
    from speckle_nb.graphql import SpeckleClient

    with SpeckleClient(dev.url, token) as probe:
        assert probe.active_user().name == "Demo User"


def test_sign_out_revoke_true_revokes_a_token_the_user_brought(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    token = pat()
    speckle_nb.use_token(token)
    message = speckle_nb.sign_out(revoke=True)
    assert "revoked at the server" in message
    from speckle_nb.graphql import SpeckleClient

    with SpeckleClient(dev.url, token) as probe, pytest.raises(speckle_nb.InvalidTokenError):
        probe.active_user()


def test_closed_panels_are_left_alone(dev: DevServer, wire: Wire, pat: Callable[..., str]) -> None:
    panel = speckle_nb.sign_in()
    panel.close()
    speckle_nb.use_token(pat())
    assert panel.state == "idle"


def test_remember_checkbox_saves_and_forgets(
    dev: DevServer, wire: Wire, pat: Callable[..., str], tmp_path: Path
) -> None:
    token = pat()
    speckle_nb.use_token(token)
    panel = speckle_nb.sign_in()

    panel.set_state({"remember": True})  # what the view's checkbox sends
    assert panel.message.startswith("Saved in ")
    assert "readable only by you" in panel.message
    saved = recall(dev.url)
    assert saved is not None
    assert saved.token == token
    assert_nowhere(wire, panel, token)

    panel.set_state({"remember": False})
    assert panel.message == "No longer remembered on this computer."
    assert recall(dev.url) is None


def test_a_remembered_sign_in_is_used_by_the_next_kernel(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    panel = speckle_nb.sign_in(remember=True)
    panel.handle_message({"type": "token", "token": pat()})
    assert panel.state == "signed_in"
    assert panel.message.startswith("Saved in ")

    current_session().reset()  # a new kernel
    again = speckle_nb.sign_in()
    assert again.state == "signed_in"
    assert again.message == "Signed in with the credentials remembered on this computer."
    assert again.source == "remembered"

    message = speckle_nb.sign_out()
    assert "remembered copy was removed" in message
    assert recall(dev.url) is None


def test_sources_offer_speckle_token_without_revealing_it(
    dev: DevServer, wire: Wire, pat: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = pat()
    monkeypatch.setenv("SPECKLE_TOKEN", token)
    panel = speckle_nb.sign_in()
    assert panel.state == "idle"
    labels = {s["id"]: s["label"] for s in panel.sources}
    assert len(labels) == 1
    ident, label = next(iter(labels.items()))
    assert "SPECKLE_TOKEN" in label
    assert_nowhere(wire, panel, token, token[-6:])

    panel.handle_message({"type": "use-source", "id": ident})
    assert panel.state == "signed_in"
    assert panel.source == "env"
    assert panel.user_name == "Demo User"


def test_an_unknown_source_is_refused(dev: DevServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in()
    panel.handle_message({"type": "use-source", "id": "made-up"})
    assert panel.state == "idle"
    assert "no longer available" in panel.message


def test_speckle_token_is_used_by_client_without_a_sign_in(
    dev: DevServer, pat: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECKLE_TOKEN", pat())
    assert speckle_nb.client().active_user().name == "Demo User"
    creds = current_session().credentials()
    assert creds is not None
    assert creds.source == "env"
    assert "not revoked" in speckle_nb.sign_out()


def test_extension_status_teaches_the_token_server(wire: Wire, dev: DevServer) -> None:
    """Without SPECKLE_SERVER_URL, a token goes to the extension's server once a view said it."""
    import os

    server = os.environ.pop("SPECKLE_SERVER_URL")
    try:
        panel = speckle_nb.sign_in()
        assert current_session().token_server() == "https://app.speckle.systems"
        panel.handle_message(
            {"type": "extension-status", "server_url": server, "redirect_url": "x"}
        )
        assert current_session().token_server() == server
    finally:
        os.environ["SPECKLE_SERVER_URL"] = server


def test_session_repr_is_masked(dev: DevServer, pat: Callable[..., str]) -> None:
    token = pat()
    creds = speckle_nb.use_token(token)
    for text in (repr(current_session()), repr(creds), repr(speckle_nb.client())):
        assert token not in text
        assert token[10:] not in text
    assert "Demo User" in repr(current_session())
    json.dumps(current_session().servers)


def test_a_refused_speckle_token_is_named(dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "0123456789" + "e" * 32
    monkeypatch.setenv("SPECKLE_TOKEN", bad)
    with pytest.raises(speckle_nb.InvalidTokenError, match="SPECKLE_TOKEN") as caught:
        speckle_nb.client()
    assert "Your token is not valid." in str(caught.value)
    assert bad not in str(caught.value)
    assert current_session().servers == []
