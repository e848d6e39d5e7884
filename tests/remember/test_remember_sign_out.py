"""sign_out(): a remembered token keeps how it was obtained (a remembered sign-in token is
revoked, a remembered personal token kept), and signed out means signed out — SPECKLE_TOKEN is
not taken up again on its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import speckle_nb
from speckle_nb.credentials import Credentials, Source
from speckle_nb.devserver import DevServer
from speckle_nb.errors import NotSignedInError
from speckle_nb.remember import recall, remember
from speckle_nb.session import current_session, sign_out


@pytest.fixture
def session() -> Iterator[None]:
    current_session().reset()
    yield
    current_session().reset()


@pytest.mark.parametrize(("origin", "revoked"), [("sign-in", True), ("magic", False)])
def test_sign_out_revokes_a_remembered_token_only_if_we_obtained_it(
    devserver: DevServer,
    no_keyring: None,
    data_dir: Path,
    session: None,
    origin: Source,
    revoked: bool,
) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])
    remember(Credentials(devserver.url, token, source=origin))

    again = recall(devserver.url)  # as a new kernel finds it
    assert again is not None
    assert again.source == "remembered"
    assert again.origin == origin
    assert again.obtained_by_us is revoked

    current_session().store(again)
    message = sign_out()
    assert ("revoked at the server" in message) is revoked
    assert (devserver.state.validate_token(token) is None) is revoked
    assert token not in message


# --------------------------------------------------------------------------- signed out means signed out

ENV_HINT = (
    "{name} is still set in this kernel's environment, but after `sign_out()` it is not used "
    "on its own. To use it on purpose: `%speckle_token --env {name}` (after `%load_ext "
    "speckle_nb`) or `speckle_nb.use_token(os.environ['{name}'])`."
)


def test_after_sign_out_client_does_not_take_speckle_token_up_again(
    devserver: DevServer, data_dir: Path, session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])
    monkeypatch.setenv("SPECKLE_SERVER_URL", devserver.url)
    monkeypatch.setenv("SPECKLE_TOKEN", token)
    assert speckle_nb.client().active_user().name == "Demo User"  # taken up: nobody signed out

    message = sign_out()
    assert message.endswith(ENV_HINT.format(name="SPECKLE_TOKEN"))
    assert "because you brought it (SPECKLE_TOKEN)" in message
    with pytest.raises(NotSignedInError) as info:
        speckle_nb.client()
    assert str(info.value).endswith(ENV_HINT.format(name="SPECKLE_TOKEN"))
    assert token not in str(info.value) + message
    assert devserver.state.validate_token(token) is not None  # brought by the user: kept

    speckle_nb.use_token(os.environ["SPECKLE_TOKEN"])  # on purpose, as the message says
    assert speckle_nb.client().active_user().name == "Demo User"


def test_sign_out_names_the_variable_the_magic_read(
    devserver: DevServer, data_dir: Path, session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from IPython.testing.globalipapp import get_ipython

    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])
    monkeypatch.setenv("SPECKLE_SERVER_URL", devserver.url)
    monkeypatch.setenv("MY_SPECKLE", token)
    ip = get_ipython()
    ip.run_line_magic("load_ext", "speckle_nb")
    ip.run_line_magic("speckle_token", "--env MY_SPECKLE")
    assert current_session().credentials() is not None

    message = sign_out()
    assert "because you brought it (MY_SPECKLE)" in message
    assert message.endswith(ENV_HINT.format(name="MY_SPECKLE"))
    assert "SPECKLE_TOKEN" not in message
    with pytest.raises(NotSignedInError) as info:
        speckle_nb.client()
    assert "is still set" not in str(info.value)  # SPECKLE_TOKEN is not set here
