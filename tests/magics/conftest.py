"""The magic runs in a real IPython shell (``IPython.testing.globalipapp``) against the dev server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import IPython
import keyring
import keyring.backends.fail
import pytest
from IPython.testing.globalipapp import start_ipython

from speckle_nb.devserver import DevServer
from speckle_nb.session import current_session


class Typist:
    """The person at the hidden prompt: answers each prompt with the next queued line."""

    def __init__(self) -> None:
        self.answers: list[str | BaseException] = []
        self.prompts: list[str] = []

    def __call__(self, message: str) -> str:
        self.prompts.append(message)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture(scope="session")
def shell() -> Any:
    """The process-wide test shell, with ``%load_ext speckle_nb`` run in it."""
    # start_ipython() returns None when another suite already started the global shell.
    ip = start_ipython() or IPython.get_ipython()
    result = ip.run_cell("%load_ext speckle_nb")
    assert result.success
    return ip


@pytest.fixture
def typist(shell: Any) -> Iterator[Typist]:
    magics = shell.magics_manager.registry["SpeckleMagics"]
    typist = Typist()
    magics.prompt = typist
    yield typist
    magics.prompt = None


@pytest.fixture
def ip(
    shell: Any,
    typist: Typist,
    devserver: DevServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The shell, a clean session, and the dev server as the default Speckle server.

    Remember-me goes to a file in ``tmp_path`` (no keyring backend), never to the machine's.
    """
    monkeypatch.setenv("SPECKLE_SERVER_URL", devserver.url)
    monkeypatch.delenv("SPECKLE_TOKEN", raising=False)
    monkeypatch.setenv("SPECKLE_NB_DATA_DIR", str(tmp_path / "speckle-nb-data"))
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    current_session().reset()
    yield shell
    current_session().reset()
    keyring.set_keyring(previous)


@pytest.fixture
def pat(devserver: DevServer) -> Callable[..., str]:
    """``pat(scopes=...)``: a personal access token of the demo user on the dev server."""

    def make(scopes: tuple[str, ...] = ("profile:read", "profile:email", "streams:read")) -> str:
        return devserver.state.create_token(devserver.demo_user.id, scopes=scopes)

    return make
