"""Where remembered credentials go on each OS: the platform's user data directory (platformdirs).

Linux is this machine. macOS and Windows are played by handing platformdirs their classes
(``platformdirs.PlatformDirs`` is what its functions instantiate), so the wiring — app name, no
app author, not roaming — is what is tested, on the paths those systems really use.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
import platformdirs.macos
import platformdirs.windows
import pytest

from speckle_nb.credentials import Credentials
from speckle_nb.remember import data_dir, recall, remember

SERVER = "https://speckle.example.org"
TOKEN = "t" * 42


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SPECKLE_NB_DATA_DIR", "XDG_DATA_HOME", "LOCALAPPDATA", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def as_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.macos.MacOS)


LOCAL_APPDATA = "C:\\Users\\ada\\AppData\\Local"
ROAMING_APPDATA = "C:\\Users\\ada\\AppData\\Roaming"


@pytest.fixture
def as_windows(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platformdirs, "PlatformDirs", platformdirs.windows.Windows)
    # Off Windows there is no shell folder API to ask: platformdirs' documented override
    # stands in for what it would answer (it takes only a Windows path).
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", LOCAL_APPDATA)
    monkeypatch.setenv("WIN_PD_OVERRIDE_APPDATA", ROAMING_APPDATA)


def test_linux_uses_xdg_data_home_else_local_share(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert data_dir() == home / ".local" / "share" / "speckle-nb"
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg"))
    assert data_dir() == home / "xdg" / "speckle-nb"


def test_macos_uses_application_support(home: Path, as_macos: None, no_keyring: None) -> None:
    expected = home / "Library" / "Application Support" / "speckle-nb"
    assert data_dir() == expected
    where = remember(Credentials(server_url=SERVER, token=TOKEN))
    assert where.startswith("~/Library/Application Support/speckle-nb/credentials.json")
    assert (expected / "credentials.json").is_file()
    assert not (home / ".local").exists()


def test_windows_uses_local_appdata_not_roaming(home: Path, as_windows: None) -> None:
    # Local, not Roaming: a roaming profile would copy the tokens to other machines.
    path = data_dir()
    assert path.name == "speckle-nb"
    assert str(path.parent) == LOCAL_APPDATA


def test_a_file_remembered_by_an_older_version_on_macos_is_still_found(
    home: Path, as_macos: None, no_keyring: None
) -> None:
    legacy = home / ".local" / "share" / "speckle-nb"
    remember(Credentials(server_url=SERVER, token=TOKEN), data_dir=legacy)
    assert data_dir() == legacy
    found = recall(SERVER)
    assert found is not None
    assert found.token == TOKEN
    # Once the standard place holds something, it wins.
    standard = home / "Library" / "Application Support" / "speckle-nb"
    standard.mkdir(parents=True)
    assert data_dir() == standard
