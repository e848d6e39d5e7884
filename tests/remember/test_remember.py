"""Remember me: the OS keyring when there is one, else a private file; never a leaked token."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from speckle_nb.credentials import Credentials, User
from speckle_nb.errors import ConfigurationError
from speckle_nb.remember import KEYRING_SERVICE, forget, recall, remember, remembered_servers

TOKEN = "0123456789" + "abcdef0123456789abcdef0123456789"
TOKEN_2 = "9876543210" + "abcdef0123456789abcdef0123456789"
REFRESH = "ffffffffff" + "abcdef0123456789abcdef0123456789"
SERVER = "https://speckle.example.com"
OTHER = "http://localhost:3000"
USER = User(
    id="u1",
    name="Ada Lovelace",
    email="ada@example.org",
    avatar="data:image/png;base64," + "A" * 5000,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def creds(server: str = SERVER, token: str = TOKEN) -> Credentials:
    return Credentials(
        server_url=server,
        token=token,
        user=USER,
        refresh_token=REFRESH,
        scopes=("streams:read", "profile:read"),
        source="sign-in",
        app_id="abc123",
        obtained_at=1_700_000_000.0,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_same_identity(got: Credentials | None, want: Credentials) -> None:
    assert got is not None
    assert got.source == "remembered"
    assert (got.server_url, got.token, got.refresh_token, got.app_id, got.scopes) == (
        want.server_url,
        want.token,
        want.refresh_token,
        want.app_id,
        want.scopes,
    )
    assert got.user is not None
    assert want.user is not None
    assert (got.user.id, got.user.name, got.user.email) == (
        want.user.id,
        want.user.name,
        want.user.email,
    )
    assert got.obtained_at == want.obtained_at


# --------------------------------------------------------------------------- the keyring


def test_keyring_round_trip(memory_keyring: Any, data_dir: Path) -> None:
    where = remember(creds())
    assert where == "the system keyring (conftest MemoryKeyring)"
    assert_same_identity(recall(SERVER), creds())
    assert not data_dir.exists()  # nothing on disk
    stored = memory_keyring.entries[(KEYRING_SERVICE, SERVER)]
    assert "data:image" not in stored  # the avatar stays out (Windows caps entries at 2.5 kB)
    assert len(stored) < 1000


def test_keyring_lists_forgets_and_recalls_the_latest(memory_keyring: Any, data_dir: Path) -> None:
    remember(creds(SERVER, TOKEN))
    remember(creds(OTHER, TOKEN_2))
    assert remembered_servers() == [OTHER, SERVER]
    recalled = recall()
    assert recalled is not None
    assert recalled.token == TOKEN_2

    forget(OTHER + "/")  # any spelling of the URL
    assert remembered_servers() == [SERVER]
    assert recall(OTHER) is None
    assert (KEYRING_SERVICE, OTHER) not in memory_keyring.entries
    forget(OTHER)  # forgetting twice is fine
    forget(SERVER)
    assert remembered_servers() == []
    assert recall() is None


def test_remembering_again_replaces_the_entry(memory_keyring: Any, data_dir: Path) -> None:
    remember(creds(SERVER, TOKEN))
    remember(creds(SERVER, TOKEN_2))
    assert remembered_servers() == [SERVER]
    recalled = recall(SERVER)
    assert recalled is not None
    assert recalled.token == TOKEN_2


def test_a_locked_keyring_falls_back_to_the_file_and_says_so(
    locked_keyring: Any, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="speckle_nb"):
        where = remember(creds())
    assert "credentials.json" in where
    assert "keyring (conftest LockedKeyring) refused" in where
    assert (data_dir / "credentials.json").exists()
    assert_same_identity(recall(SERVER), creds())
    assert "refused" in caplog.text
    assert TOKEN not in caplog.text


def test_remembering_in_the_keyring_drops_an_older_copy_from_the_file(
    use_keyring: Any, new_memory_keyring: Any, data_dir: Path
) -> None:
    import keyring.backends.fail

    use_keyring(keyring.backends.fail.Keyring())
    remember(creds(SERVER, TOKEN))
    use_keyring(new_memory_keyring())
    remember(creds(SERVER, TOKEN_2))
    assert TOKEN not in (data_dir / "credentials.json").read_text()
    recalled = recall(SERVER)
    assert recalled is not None
    assert recalled.token == TOKEN_2


# --------------------------------------------------------------------------- the file


@posix_only
def test_file_round_trip_is_private_and_atomic(no_keyring: None, data_dir: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not loosen the modes
    try:
        where = remember(creds())
    finally:
        os.umask(old_umask)
    path = data_dir / "credentials.json"
    assert where == f"{path} (readable only by you)"
    assert mode(data_dir) == 0o700
    assert mode(path) == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == [".lock", "credentials.json"]
    assert json.loads(path.read_text())["servers"][SERVER]["token"] == TOKEN
    assert_same_identity(recall(SERVER), creds())

    remember(creds(OTHER, TOKEN_2))
    assert remembered_servers() == [OTHER, SERVER]
    assert mode(path) == 0o600
    forget(OTHER)
    assert remembered_servers() == [SERVER]
    assert TOKEN_2 not in path.read_text()
    assert not [p for p in data_dir.iterdir() if p.suffix == ".tmp"]


def test_home_paths_are_shown_with_a_tilde(
    no_keyring: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPECKLE_NB_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    where = remember(creds())
    if os.name == "posix":
        assert where == "~/.local/share/speckle-nb/credentials.json (readable only by you)"
        assert (tmp_path / ".local" / "share" / "speckle-nb" / "credentials.json").exists()


def test_the_data_dir_argument_wins_over_the_environment(
    no_keyring: None, data_dir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    remember(creds(), data_dir=elsewhere)
    assert (elsewhere / "credentials.json").exists()
    assert not data_dir.exists()
    assert recall(SERVER) is None
    assert_same_identity(recall(SERVER, data_dir=elsewhere), creds())
    assert remembered_servers(data_dir=elsewhere) == [SERVER]
    forget(SERVER, data_dir=elsewhere)
    assert recall(SERVER, data_dir=elsewhere) is None


def test_without_the_keyring_package_the_file_is_used(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # `import keyring` now raises ImportError
    assert "credentials.json" in remember(creds())
    assert_same_identity(recall(SERVER), creds())


@posix_only
def test_a_file_others_can_read_is_refused_and_not_read(no_keyring: None, data_dir: Path) -> None:
    remember(creds())
    path = data_dir / "credentials.json"
    path.chmod(0o644)
    with pytest.raises(ConfigurationError) as info:
        recall(SERVER)
    message = str(info.value)
    assert "644" in message
    assert "other users read it" in message
    assert "chmod 600" in message
    assert TOKEN not in message
    with pytest.raises(ConfigurationError):
        remember(creds(OTHER, TOKEN_2))  # nor written to
    assert TOKEN_2 not in path.read_text()


@posix_only
def test_a_directory_others_can_write_is_refused(no_keyring: None, data_dir: Path) -> None:
    remember(creds())
    data_dir.chmod(0o777)
    with pytest.raises(ConfigurationError, match="replace files in it"):
        recall(SERVER)


def test_a_damaged_file_is_ignored_with_a_warning(
    no_keyring: None, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remember(creds())
    (data_dir / "credentials.json").write_text("{" + TOKEN)
    with caplog.at_level(logging.DEBUG, logger="speckle_nb"):
        assert recall(SERVER) is None
    assert "cannot read it" in caplog.text
    assert TOKEN not in caplog.text


def test_nothing_remembered(no_keyring: None, data_dir: Path) -> None:
    assert recall() is None
    assert recall(SERVER) is None
    assert remembered_servers() == []
    forget(SERVER)
    assert not data_dir.exists()


def test_no_log_line_ever_holds_a_secret(
    memory_keyring: Any, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        remember(creds())
        recall(SERVER)
        remembered_servers()
        forget(SERVER)
    for secret in (TOKEN, REFRESH):
        assert secret not in caplog.text


def test_an_unwritable_location_is_a_clear_error(no_keyring: None, tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="SPECKLE_NB_DATA_DIR") as info:
        remember(creds(), data_dir=blocked / "speckle-nb")
    assert TOKEN not in str(info.value)


def test_a_chainer_with_nothing_to_chain_means_no_keyring(use_keyring: Any, data_dir: Path) -> None:
    """keyring's default on a machine without a backend: a chainer over an empty list."""
    import keyring.backends.chainer

    class NothingToChain(keyring.backends.chainer.ChainerBackend):
        backends: ClassVar[list[Any]] = []  # what discovery finds on a bare server
        viable = False  # not for keyring's own discovery

    use_keyring(NothingToChain())
    assert "credentials.json" in remember(creds())
    assert_same_identity(recall(SERVER), creds())
