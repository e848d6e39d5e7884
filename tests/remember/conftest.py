"""Keyring backends for the remember-me tests: a real in-memory one, and "no backend".

The OS keyring is a third-party service; an in-memory ``KeyringBackend`` subclass is the
keyring project's own way to stand in for it. Every test here runs with one of them set,
so no test ever touches the machine's real keyring.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest


class MemoryKeyring(keyring.backend.KeyringBackend):
    """Keeps passwords in a dict, like an unlocked OS keyring."""

    priority = 1  # type: ignore[assignment]
    #: Never chosen by keyring's own discovery (every subclass is registered with it):
    #: only a test that sets it explicitly gets it, so no other test's keyring changes.
    viable = False  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.entries[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError(username) from None


class LockedKeyring(MemoryKeyring):
    """A keyring that refuses to store (a locked login keychain, no D-Bus session, …)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the keyring is locked")


@pytest.fixture
def use_keyring() -> Iterator[object]:
    """``use_keyring(backend)`` for the rest of the test; the previous backend comes back after."""
    previous = keyring.get_keyring()

    def use(backend: keyring.backend.KeyringBackend) -> keyring.backend.KeyringBackend:
        keyring.set_keyring(backend)
        return backend

    yield use
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring(use_keyring: object) -> MemoryKeyring:
    backend = MemoryKeyring()
    use_keyring(backend)  # type: ignore[operator]
    return backend


@pytest.fixture
def locked_keyring(use_keyring: object) -> LockedKeyring:
    backend = LockedKeyring()
    use_keyring(backend)  # type: ignore[operator]
    return backend


@pytest.fixture
def new_memory_keyring() -> type[MemoryKeyring]:
    """The class, for tests that switch backends half-way."""
    return MemoryKeyring


@pytest.fixture
def no_keyring(use_keyring: object) -> None:
    use_keyring(keyring.backends.fail.Keyring())  # type: ignore[operator]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``SPECKLE_NB_DATA_DIR`` for this test (not created: remember() must create it)."""
    path = tmp_path / "speckle-nb-data"
    monkeypatch.setenv("SPECKLE_NB_DATA_DIR", str(path))
    return path
