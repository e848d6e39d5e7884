"""After sign-in, say what is true (issue 15): what a refresh leaves valid at the server,
what the panel shows once the token is dead, and a lapsed workspace SSO session.

Paste mode against the real dev server (its state is in this process, so a test can ask it
what a token can still do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import speckle_nb
from speckle_nb import InvalidTokenError, NotSignedInError, WorkspaceSsoError
from speckle_nb.devserver import DevServer
from speckle_nb.devserver.messages import LogoutError, TokenRequestError
from speckle_nb.session import current_session

from .helpers import Wire, play_sign_in

LANDING = "https://notebook.example/landed"


@pytest.fixture
def paste_app(kernel_app: Callable[[str], Any]) -> Any:
    return kernel_app(LANDING)


def signed_in_by_paste(wire: Wire) -> Any:
    panel = speckle_nb.sign_in()
    messages = [m for m in wire.custom("authorize-url") if m["flow"] == panel.request_id]
    landing = play_sign_in(messages[-1]["url"])
    panel.handle_message({"type": "paste-url", "request": panel.request_id, "url": landing})
    assert panel.state == "signed_in"
    return panel


def test_after_an_automatic_refresh_sign_out_names_the_refresh_token_left_valid(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    signed_in_by_paste(wire)
    before = current_session().credentials()
    assert before is not None
    assert before.refresh_token

    # Someone revokes the access token alone (Developer settings, another tool's logout):
    # the client refreshes by itself and goes on.
    dev.state.revoke_user_token(before.token[:10], dev.demo_user.id)
    assert speckle_nb.client().active_user().name == "Demo User"
    after = current_session().credentials()
    assert after is not None
    assert after.refresh_token
    assert after.refresh_token != before.refresh_token

    # What the server allows now: the old access token is gone, so /auth/logout refuses it
    # and cannot take the old refresh token along; the old refresh token still mints pairs.
    with pytest.raises(LogoutError):
        dev.state.logout(before.token, before.refresh_token)
    assert dev.state.refresh(paste_app.id, paste_app.secret, before.refresh_token).token

    message = speckle_nb.sign_out()
    assert "the token was revoked at the server" in message
    # ... and the message does not stop there, as if nothing were left.
    assert "Still valid at the server: 1 refresh token(s) replaced by an automatic refresh" in (
        message
    )
    assert f"Developer settings on {dev.url}" in message
    assert before.refresh_token not in message
    # The current pair really is revoked; the replaced refresh token really is not.
    with pytest.raises(TokenRequestError):
        dev.state.refresh(paste_app.id, paste_app.secret, after.refresh_token)
    assert dev.state.refresh(paste_app.id, paste_app.secret, before.refresh_token).token


def test_without_a_refresh_sign_out_claims_nothing_extra(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    signed_in_by_paste(wire)
    creds = current_session().credentials()
    assert creds is not None
    assert creds.refresh_token
    message = speckle_nb.sign_out()
    assert "the token was revoked at the server" in message
    assert "Still valid" not in message
    with pytest.raises(TokenRequestError):
        dev.state.refresh(paste_app.id, paste_app.secret, creds.refresh_token)


def test_the_async_client_example_in_usage_md_runs_on_the_session(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    """docs/usage.md's AsyncSpeckleClient example, as written there, on this session."""
    import asyncio
    import re
    from pathlib import Path

    signed_in_by_paste(wire)
    usage = (Path(__file__).resolve().parents[2] / "docs" / "usage.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", usage, re.S) if "async with" in b)
    names: list[str] = []
    body = "\n".join("    " + line for line in example.splitlines())
    body = body.replace('print(project["name"])', 'names.append(project["name"])')
    namespace: dict[str, Any] = {"names": names}
    exec(f"async def example():\n{body}\n    return me, info", namespace)  # noqa: S102
    me, info = asyncio.run(namespace["example"]())
    assert me.name == "Demo User"
    assert info["name"]
    assert len(names) == len(list(speckle_nb.client().projects()))


def test_a_bad_token_gets_one_next_step(dev: DevServer, wire: Wire) -> None:
    panel = speckle_nb.sign_in()
    panel.handle_message({"type": "token", "token": "0123456789" + "f" * 32})
    assert panel.state == "error"
    assert panel.error_reason == "invalid-token"
    assert "Your token is not valid." in panel.message  # the server's words, as the cause
    shown = f"{panel.message} {panel.next_step}"
    # One way on (paste it again), not "sign in again", "set a new token" and "check it".
    assert "sign_in()" not in shown
    assert "Sign in again" not in shown
    assert " or " not in panel.next_step
    assert panel.next_step.count(".") == 1


def test_the_panel_answers_the_views_ping_so_a_restarted_kernel_shows(
    dev: DevServer, wire: Wire
) -> None:
    """The view pings when its kernel connection changes; this kernel still has the panel and
    answers (a new kernel would not, and the view then says the kernel is gone)."""
    panel = speckle_nb.sign_in()
    before = panel.get_state()
    panel._on_custom_msg(panel, {"type": "ping"}, [])
    assert wire.custom("pong") == [{"type": "pong"}]
    assert panel.get_state() == before  # a ping changes nothing


def test_after_a_server_side_revocation_the_panel_no_longer_says_signed_in(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    panel = signed_in_by_paste(wire)
    creds = current_session().credentials()
    assert creds is not None
    assert creds.refresh_token

    # Both tokens revoked at the server (sign-out elsewhere, access revoked): no refresh helps.
    dev.state.logout(creds.token, creds.refresh_token)
    with pytest.raises(InvalidTokenError):
        speckle_nb.client().active_user()

    assert panel.state == "error"
    assert panel.error_reason == "token-dead"
    assert "no longer accepts the token" in panel.message
    assert "Signed in" not in panel.message
    assert panel.next_step == "Click Try again to sign in again."
    assert panel.user_name == ""
    assert "user=" not in repr(panel)
    assert panel.request_id  # Try again opens a new sign-in at once
    for secret in (creds.token, creds.refresh_token):
        assert secret not in panel.message + wire.state_text()
    # The dead token is forgotten: nothing offers it as a sign-in any more.
    with pytest.raises(NotSignedInError):
        speckle_nb.client()
    assert speckle_nb.sign_in().state != "signed_in"


def test_a_revoked_personal_token_asks_for_a_valid_token(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    token = pat()
    speckle_nb.use_token(token)
    panel = speckle_nb.sign_in()
    assert panel.state == "signed_in"

    dev.state.revoke_user_token(token[:10], dev.demo_user.id)
    with pytest.raises(InvalidTokenError):  # a batch meets it as well as a single call
        speckle_nb.client().execute_many(["query { activeUser { id } }"])

    assert panel.state == "error"
    assert panel.error_reason == "invalid-token"
    assert panel.next_step.count(".") == 1

    # The same through `with client.batch()` (a fresh sign-in, a fresh panel).
    other = pat()
    speckle_nb.use_token(other)
    again = speckle_nb.sign_in()
    assert again.state == "signed_in"
    dev.state.revoke_user_token(other[:10], dev.demo_user.id)
    with pytest.raises(InvalidTokenError), speckle_nb.client().batch() as queued:
        queued.execute("query { activeUser { id } }")
    assert again.state == "error"
    assert token not in panel.message + wire.state_text()


def test_a_lapsed_workspace_sso_session_is_told_in_the_panel_and_not_refreshed(
    dev: DevServer, wire: Wire, paste_app: Any
) -> None:
    panel = signed_in_by_paste(wire)
    before = current_session().credentials()
    assert before is not None
    dev.state.seed_sso_workspace()
    inside = [p for p in dev.state.projects_page(dev.demo_user.id, 100).items if p.workspace_id]
    dev.options.sso_session_lapsed = True

    client = speckle_nb.client()
    with pytest.raises(WorkspaceSsoError) as caught:
        client.execute("query($id: String!) { project(id: $id) { id } }", {"id": inside[0].id})

    sso_url = f"{dev.url}/workspaces/acme-sso/sso"
    assert caught.value.workspace_slug == "acme-sso"
    assert caught.value.sso_url == sso_url
    assert current_session().credentials() is before  # no refresh was attempted
    # The token still works elsewhere: the panel stays signed in and says what to do.
    assert panel.state == "signed_in"
    assert sso_url in panel.message
    assert client.active_user().name == "Demo User"


def test_the_remember_box_shows_ticked_for_a_remembered_account(
    dev: DevServer, wire: Wire, pat: Callable[..., str]
) -> None:
    first = speckle_nb.sign_in(remember=True)
    first.handle_message({"type": "token", "token": pat()})
    assert first.message.startswith("Saved in ")
    assert speckle_nb.sign_in().remember  # another panel in this kernel

    current_session().reset()  # a new kernel
    again = speckle_nb.sign_in()
    assert again.source == "remembered"
    assert again.remember  # the box shows what is true ...
    # ... without saving again: the note about where the sign-in came from stays.
    assert again.message == "Signed in with the credentials remembered on this computer."

    again.set_state({"remember": False})  # unticking still forgets it
    assert again.message == "No longer remembered on this computer."
