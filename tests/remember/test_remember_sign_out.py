"""A remembered token keeps how it was obtained: sign_out() revokes a remembered sign-in token
(the package obtained it) and keeps a remembered personal token (the user brought it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from speckle_nb.credentials import Credentials, Source
from speckle_nb.devserver import DevServer
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
