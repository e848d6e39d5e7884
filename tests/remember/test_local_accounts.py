"""Reading the accounts the Speckle desktop manager / connectors / specklepy keep (§8.2)."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from speckle_nb.errors import ConfigurationError
from speckle_nb.local_accounts import account_store_bases, env_credentials, local_accounts

TOKEN_A = "aaaaaaaaaa" + "0123456789abcdef0123456789abcdef"
TOKEN_B = "bbbbbbbbbb" + "0123456789abcdef0123456789abcdef"
TOKEN_C = "cccccccccc" + "0123456789abcdef0123456789abcdef"
REFRESH = "rrrrrrrrrr" + "0123456789abcdef0123456789abcdef"
SECRETS = (TOKEN_A, TOKEN_B, TOKEN_C, REFRESH)


def account(
    token: str, url: str, email: str, *, default: bool = False, name: str = "Ada"
) -> dict[str, Any]:
    """An account as the C# AccountManager writes it (Newtonsoft, camelCase)."""
    return {
        "id": hashlib.md5((email + url).encode()).hexdigest().upper(),  # noqa: S324 - their id
        "token": token,
        "refreshToken": REFRESH,
        "isDefault": default,
        "isOnline": True,
        "serverInfo": {
            "name": "Speckle",
            "company": "Speckle",
            "version": "2.x",
            "url": url,
            "frontend2": True,
            "migration": None,
        },
        "userInfo": {"id": "u-" + email, "name": name, "email": email, "company": None},
    }


def make_db(path: Path, rows: Iterable[tuple[str, Any]]) -> sqlite3.Connection:
    """``Accounts.db`` as the SDKs create it: WAL mode, ``objects(hash, content)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode='wal'")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS objects(hash TEXT PRIMARY KEY, content TEXT) WITHOUT ROWID"
    )
    conn.executemany("INSERT INTO objects VALUES (?, ?)", rows)
    conn.commit()
    return conn


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def userdata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "userdata"
    base.mkdir()
    monkeypatch.setenv("SPECKLE_USERDATA_PATH", str(base))
    return base


def test_reads_the_database_and_json_files_default_first(userdata: Path) -> None:
    a = account(TOKEN_A, "https://app.speckle.systems/", "ada@example.org")
    b = account(TOKEN_B, "https://speckle.example.com", "bob@example.org", default=True)
    make_db(
        userdata / "Speckle" / "Accounts.db", [(a["id"], json.dumps(a)), (b["id"], json.dumps(b))]
    ).close()
    json_dir = userdata / "Speckle" / "Accounts"
    json_dir.mkdir()
    # The hand-written format from the Speckle docs: only token, serverInfo, userInfo.
    (json_dir / "manual.json").write_text(
        json.dumps(
            {
                "token": TOKEN_C,
                "serverInfo": {"name": "Local", "company": "Me", "url": "http://localhost:3000"},
                "userInfo": {"id": "c", "name": "Cy", "email": "cy@example.org"},
            }
        )
    )

    accounts = local_accounts()

    assert [c.token for c in accounts] == [TOKEN_B, TOKEN_A, TOKEN_C]
    first = accounts[0]
    assert first.source == "local"
    assert first.server_url == "https://speckle.example.com"
    assert first.refresh_token == REFRESH
    assert first.user is not None
    assert first.user.email == "bob@example.org"
    assert accounts[1].server_url == "https://app.speckle.systems"  # trailing slash trimmed
    assert accounts[2].user is not None
    assert accounts[2].user.name == "Cy"
    assert accounts[2].refresh_token is None
    for creds in accounts:
        assert creds.token not in repr(creds)


def test_an_account_in_both_places_is_listed_once(userdata: Path) -> None:
    a = account(TOKEN_A, "https://app.speckle.systems", "ada@example.org")
    make_db(userdata / "Speckle" / "Accounts.db", [(a["id"], json.dumps(a))]).close()
    (userdata / "Speckle" / "Accounts").mkdir()
    (userdata / "Speckle" / "Accounts" / "a.json").write_text(json.dumps(a))
    assert [c.token for c in local_accounts()] == [TOKEN_A]


def test_malformed_rows_are_skipped_with_a_debug_line_and_no_secret(
    userdata: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = account(TOKEN_A, "https://app.speckle.systems", "ada@example.org")
    no_url = account(TOKEN_B, "https://x.example", "b@example.org")
    del no_url["serverInfo"]["url"]
    bad_url = account(TOKEN_C, "ftp://nope", "c@example.org")
    no_token = account(TOKEN_C, "https://x.example", "d@example.org")
    no_token["token"] = None
    rows = [
        ("good", json.dumps(good)),
        ("no-url", json.dumps(no_url)),
        ("bad-url", json.dumps(bad_url)),
        ("no-token", json.dumps(no_token)),
        ("not-json", "{" + TOKEN_B),
        ("a-list", json.dumps([TOKEN_C])),
        ("null", None),
        ("blob", b"\xff\xfe" + TOKEN_B.encode()),
    ]
    make_db(userdata / "Speckle" / "Accounts.db", rows).close()
    (userdata / "Speckle" / "Accounts").mkdir()
    (userdata / "Speckle" / "Accounts" / "broken.json").write_text("{" + TOKEN_C)

    with caplog.at_level(logging.DEBUG, logger="speckle_nb.local_accounts"):
        accounts = local_accounts()

    assert [c.token for c in accounts] == [TOKEN_A]
    text = caplog.text
    for key in (
        "no-url",
        "bad-url",
        "no-token",
        "not-json",
        "a-list",
        "null",
        "blob",
        "broken.json",
    ):
        assert key in text
    for secret in SECRETS:
        assert secret not in text


def test_reading_writes_nothing(userdata: Path) -> None:
    a = account(TOKEN_A, "https://app.speckle.systems", "ada@example.org")
    make_db(userdata / "Speckle" / "Accounts.db", [(a["id"], json.dumps(a))]).close()
    before = snapshot(userdata)
    assert set(before) == {"Speckle/Accounts.db"}  # the SDK checkpointed and removed its WAL

    assert len(local_accounts()) == 1

    assert snapshot(userdata) == before  # no -wal / -shm beside it, no Accounts/ folder


def test_reads_committed_rows_while_a_connector_holds_the_database_open(userdata: Path) -> None:
    a = account(TOKEN_A, "https://app.speckle.systems", "ada@example.org")
    writer = make_db(userdata / "Speckle" / "Accounts.db", [(a["id"], json.dumps(a))])
    try:
        b = account(TOKEN_B, "https://app.speckle.systems", "bob@example.org")
        writer.execute("INSERT INTO objects VALUES (?, ?)", (b["id"], json.dumps(b)))
        writer.commit()  # still only in the -wal file: not checkpointed while it is open
        assert (userdata / "Speckle" / "Accounts.db-wal").exists()
        assert {c.token for c in local_accounts()} == {TOKEN_A, TOKEN_B}
    finally:
        writer.close()


def test_a_file_that_is_not_a_database_is_skipped(
    userdata: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (userdata / "Speckle").mkdir()
    (userdata / "Speckle" / "Accounts.db").write_bytes(b"garbage" * 100)
    with caplog.at_level(logging.DEBUG, logger="speckle_nb.local_accounts"):
        assert local_accounts() == []
    assert "Accounts.db" in caplog.text


def test_no_store_means_no_accounts_and_no_folders(userdata: Path) -> None:
    assert local_accounts() == []
    assert list(userdata.iterdir()) == []


def test_base_path_argument_wins_over_the_environment(userdata: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    a = account(TOKEN_A, "https://app.speckle.systems", "ada@example.org")
    make_db(other / "Speckle" / "Accounts.db", [(a["id"], json.dumps(a))]).close()
    assert local_accounts() == []
    assert [c.token for c in local_accounts(other)] == [TOKEN_A]


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {}, [".config"]),
        ("linux", {"XDG_DATA_HOME": "{home}/xdg"}, ["xdg", ".config"]),
        ("darwin", {}, ["Library/Application Support", ".config"]),
        ("win32", {"APPDATA": "{home}/AppData/Roaming"}, ["AppData/Roaming"]),
    ],
)
def test_store_locations_per_os(
    platform: str,
    env: dict[str, str],
    expected: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPECKLE_USERDATA_PATH", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(home=tmp_path))
    monkeypatch.setattr(sys, "platform", platform)
    assert account_store_bases() == [tmp_path / rel for rel in expected]


def test_speckle_userdata_path_is_the_only_place_when_set(userdata: Path) -> None:
    assert account_store_bases() == [userdata]


# --------------------------------------------------------------------------- SPECKLE_TOKEN


def test_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECKLE_TOKEN", raising=False)
    monkeypatch.delenv("SPECKLE_SERVER_URL", raising=False)
    assert env_credentials() is None
    monkeypatch.setenv("SPECKLE_TOKEN", "   ")
    assert env_credentials() is None

    monkeypatch.setenv("SPECKLE_TOKEN", f"  {TOKEN_A}\n")
    creds = env_credentials()
    assert creds is not None
    assert (creds.server_url, creds.token, creds.source) == (
        "https://app.speckle.systems",
        TOKEN_A,
        "env",
    )
    assert creds.user is None  # unvalidated

    monkeypatch.setenv("SPECKLE_SERVER_URL", "http://LOCALHOST:3000/")
    creds = env_credentials()
    assert creds is not None
    assert creds.server_url == "http://localhost:3000"


def test_env_credentials_with_a_bad_server_url_names_the_variable_not_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPECKLE_TOKEN", TOKEN_A)
    monkeypatch.setenv("SPECKLE_SERVER_URL", "ftp://speckle.example")
    with pytest.raises(ConfigurationError, match="SPECKLE_SERVER_URL") as info:
        env_credentials()
    assert TOKEN_A not in str(info.value)
