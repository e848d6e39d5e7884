"""Accounts other Speckle tools already keep on this machine, and ``SPECKLE_TOKEN``. Read-only.

The desktop manager and connectors (C# SDK) and specklepy share one account store (see
``speckle-protocol.md`` §8.2): ``{base}/Speckle/Accounts.db``, an SQLite table
``objects(hash, content)`` with one account JSON per row, plus hand-written
``{base}/Speckle/Accounts/*.json`` files. ``{base}`` is ``SPECKLE_USERDATA_PATH`` when set,
else ``%APPDATA%`` on Windows, ``~/Library/Application Support`` on macOS (``~/.config``
before specklepy 3), and ``$XDG_DATA_HOME`` or ``~/.config`` on Linux.

These are not our data paths (those go through ``platformdirs``, see ``remember``): they are
where Speckle's own tools write, so they follow specklepy's rules, which differ from
platformdirs' (``~/.config`` rather than ``~/.local/share`` on Linux; no ``XDG_DATA_HOME`` on
macOS).

Nothing here writes: the database is opened with ``mode=ro`` (and ``immutable=1`` when no
write-ahead log is present, so SQLite creates no ``-wal``/``-shm`` files beside it), and no
directory is created. The C# SDK *deletes* rows it finds incomplete, one more reason to
stay out of that file. Malformed rows and files are skipped with a debug line that names
the row or file, never its content.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._names import DEFAULT_SERVER_URL, ENV_TOKEN, ENV_USERDATA_PATH, env_text, server_url_setting
from .credentials import Credentials, User, normalize_server_url
from .errors import ConfigurationError

__all__ = [
    "DEFAULT_SERVER_URL",
    "account_store_bases",
    "env_credentials",
    "local_accounts",
]

log = logging.getLogger(__name__)


_APP_FOLDER = "Speckle"


def account_store_bases(base_path: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories that may hold a ``Speckle/`` account store, most likely first.

    ``base_path`` (like specklepy's ``get_local_accounts(base_path)``) or
    ``SPECKLE_USERDATA_PATH`` names exactly one. Otherwise every place a current or older
    Speckle tool uses on this OS is listed, since reading more places costs nothing.
    """
    if base_path is not None:
        return [Path(base_path)]
    override = os.environ.get(ENV_USERDATA_PATH)
    if override:
        return [Path(override)]
    home = Path.home()
    candidates: list[Path] = []
    if sys.platform.startswith("win"):
        appdata = os.environ.get("APPDATA")
        candidates.append(Path(appdata) if appdata else home / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        # specklepy ≥ 3 and .NET use Application Support; older specklepy used ~/.config.
        candidates += [home / "Library" / "Application Support", home / ".config"]
    else:
        # specklepy honours XDG_DATA_HOME; .NET's ApplicationData is ~/.config regardless.
        xdg = os.environ.get("XDG_DATA_HOME")
        if xdg:
            candidates.append(Path(xdg))
        candidates.append(home / ".config")
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def local_accounts(base_path: str | os.PathLike[str] | None = None) -> list[Credentials]:
    """Every usable account in the local Speckle account store(s), default account first.

    Each is ``Credentials(source="local")``, *not* validated against its server (the
    desktop manager may hold a revoked token). An account present in several places
    (database and JSON, or two base directories) is listed once.
    """
    found: list[tuple[bool, Credentials]] = []
    seen: set[tuple[str, str]] = set()
    for base in account_store_bases(base_path):
        folder = base / _APP_FOLDER
        for where, content in _rows(folder / "Accounts.db"):
            _collect(where, content, found, seen)
        for where, content in _json_files(folder / "Accounts"):
            _collect(where, content, found, seen)
    # Stable sort: the default account(s) first, otherwise the stores' order.
    return [creds for _, creds in sorted(found, key=lambda item: not item[0])]


def env_credentials() -> Credentials | None:
    """``SPECKLE_TOKEN`` (for ``SPECKLE_SERVER_URL``, default app.speckle.systems), unvalidated.

    ``None`` when ``SPECKLE_TOKEN`` is unset or blank. A malformed ``SPECKLE_SERVER_URL``
    raises ``ConfigurationError`` naming the variable (never the token).
    """
    token = env_text(ENV_TOKEN)
    if not token:
        return None
    raw_server = server_url_setting()
    try:
        server_url = normalize_server_url(raw_server)
    except ValueError as exc:
        raise ConfigurationError(
            f"SPECKLE_SERVER_URL is not a server URL: {exc}. Set it to e.g. {DEFAULT_SERVER_URL}."
        ) from None
    return Credentials(server_url=server_url, token=token, source="env")


# --------------------------------------------------------------------------- reading


def _rows(db_path: Path) -> Iterator[tuple[str, str]]:
    """``(where, content)`` for each row of an ``Accounts.db``; nothing if it is unreadable."""
    if not db_path.is_file():
        return
    # Without a -wal file the database is fully checkpointed: ``immutable=1`` then reads it
    # without creating -wal/-shm files. With one, another process may be mid-write, so read
    # through SQLite's normal (read-only) locking to see its committed rows.
    has_wal = db_path.with_name(db_path.name + "-wal").exists()
    uri = db_path.resolve().as_uri() + ("?mode=ro" if has_wal else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        log.debug("Skipping %s: cannot open it read-only (%s)", db_path, exc)
        return
    try:
        rows = conn.execute("SELECT hash, content FROM objects").fetchall()
    except sqlite3.Error as exc:
        log.debug("Skipping %s: cannot read its accounts table (%s)", db_path, exc)
        return
    finally:
        conn.close()
    for key, content in rows:
        where = f"{db_path} row {key!r}"
        if isinstance(content, bytes):
            try:
                content = content.decode("utf-8")
            except UnicodeDecodeError:
                log.debug("Skipping %s: not UTF-8 text", where)
                continue
        if not isinstance(content, str):
            log.debug("Skipping %s: its content is not text", where)
            continue
        yield where, content


def _json_files(folder: Path) -> Iterator[tuple[str, str]]:
    if not folder.is_dir():
        return
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json")
    except OSError as exc:
        log.debug("Skipping %s: cannot list it (%s)", folder, exc)
        return
    for path in paths:
        try:
            yield str(path), path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            log.debug("Skipping %s: cannot read it (%s)", path, type(exc).__name__)


def _collect(
    where: str,
    content: str,
    found: list[tuple[bool, Credentials]],
    seen: set[tuple[str, str]],
) -> None:
    try:
        data = json.loads(content)
    except ValueError:
        log.debug("Skipping %s: not JSON", where)
        return
    parsed = _account(where, data)
    if parsed is None:
        return
    is_default, creds = parsed
    key = (creds.server_url, creds.token)
    if key not in seen:
        seen.add(key)
        found.append((is_default, creds))


def _account(where: str, data: Any) -> tuple[bool, Credentials] | None:
    """An account JSON (C# ``Account`` / specklepy ``Account``, camelCase) → Credentials."""
    if not isinstance(data, Mapping):
        log.debug("Skipping %s: not a JSON object", where)
        return None
    token = data.get("token")
    if not isinstance(token, str) or not token.strip():
        log.debug("Skipping %s: no token", where)
        return None
    server_info = data.get("serverInfo")
    raw_url = server_info.get("url") if isinstance(server_info, Mapping) else None
    if not isinstance(raw_url, str) or not raw_url.strip():
        log.debug("Skipping %s: no serverInfo.url", where)
        return None
    try:
        server_url = normalize_server_url(raw_url)
    except ValueError:
        log.debug("Skipping %s: serverInfo.url is not a server URL", where)
        return None
    refresh = data.get("refreshToken")
    return bool(data.get("isDefault")), Credentials(
        server_url=server_url,
        token=token.strip(),
        user=_user(data.get("userInfo")),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        source="local",
    )


def _user(info: Any) -> User | None:
    if not isinstance(info, Mapping) or not info.get("id"):
        return None

    def text(key: str) -> str | None:
        value = info.get(key)
        return value if isinstance(value, str) and value else None

    return User(
        id=str(info["id"]),
        name=text("name") or "",
        email=text("email"),
        avatar=text("avatar"),
        company=text("company"),
    )
