"""Opt-in "remember me": keep credentials across kernel restarts, in the OS keyring or a private file.

    where = remember(creds)        # "the system keyring (SecretService Keyring)" or a file path
    creds = recall(server_url)     # Credentials(source="remembered") or None
    forget(server_url)
    remembered_servers()           # ["https://app.speckle.systems", ...], newest first

Where it goes: the OS keyring through the optional ``keyring`` package (service
``speckle-nb``, one entry per server URL plus a non-secret index entry, since keyring cannot
list entries) when it has a usable backend; otherwise ``credentials.json`` in a private
directory: ``SPECKLE_NB_DATA_DIR``, else the platform's user data directory (``platformdirs``):
``$XDG_DATA_HOME/speckle-nb`` or ``~/.local/share/speckle-nb`` on Linux,
``~/Library/Application Support/speckle-nb`` on macOS, ``%LOCALAPPDATA%\\speckle-nb`` on
Windows. The directory is created 0700 and the file 0600, written atomically (temporary file +
``os.replace``) under a lock, and a file other users can read or replace is refused, never read.
Those mode and owner checks are POSIX's; on Windows they are skipped (docs/security.md says why). ``recall`` looks
in the keyring first, then in the file; ``forget`` clears both.

Nothing returns, logs or raises with a token in it: records are JSON strings handed to the
keyring or the file, and messages name only servers, backends and paths.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast, get_args

from ._names import ENV_DATA_DIR
from .credentials import Credentials, Source, User, normalize_server_url
from .errors import ConfigurationError

__all__ = [
    "KEYRING_SERVICE",
    "data_dir",
    "forget",
    "recall",
    "remember",
    "remembered_servers",
]

log = logging.getLogger(__name__)

#: The keyring "service" our entries live under; each entry's "username" is a server URL.
KEYRING_SERVICE = "speckle-nb"
#: The keyring entry that lists the remembered servers (a URL always holds "://", this never).
_INDEX_KEY = "remembered-servers"
_FILE_NAME = "credentials.json"
#: The folder under the platform's user data directory.
_APP_NAME = "speckle-nb"
_FILE_VERSION = 1

PathArg = str | os.PathLike[str] | None
Records = dict[str, dict[str, Any]]


# --------------------------------------------------------------------------- public API


def remember(creds: Credentials, *, data_dir: PathArg = None) -> str:
    """Keep ``creds`` for later kernels. Returns where they went, in words for the user.

    The keyring is used when it has a usable backend; if it refuses (locked, no D-Bus…),
    the private file is used instead and the returned text says so.
    """
    record = _to_record(creds)
    backend = _keyring_backend()
    fallback_note = ""
    if backend is not None:
        try:
            _keyring_put(backend, creds.server_url, record)
        except Exception as exc:  # any backend failure means "use the file"
            log.warning(
                "The system keyring (%s) refused to store credentials for %s (%s); "
                "using a private file instead.",
                _backend_name(backend),
                creds.server_url,
                type(exc).__name__,
            )
            fallback_note = f" — the system keyring ({_backend_name(backend)}) refused"
        else:
            # A copy left in the file from an earlier time would shadow nothing (the keyring
            # is read first) but would keep an old token on disk: drop it.
            if _file_path(data_dir).exists():
                with contextlib.suppress(ConfigurationError, OSError):
                    _file_update(data_dir, lambda entries: entries.pop(creds.server_url, None))
            return f"the system keyring ({_backend_name(backend)})"
    path = _file_update(data_dir, lambda entries: entries.__setitem__(creds.server_url, record))
    private = "readable only by you" if os.name == "posix" else "in your user profile"
    return f"{_display_path(path)} ({private}){fallback_note}"


def recall(server_url: str | None = None, *, data_dir: PathArg = None) -> Credentials | None:
    """The remembered credentials for ``server_url`` (``source="remembered"``), or ``None``.

    Without ``server_url``, the most recently remembered server's. Not validated: the token
    may have been revoked since. Raises ``ConfigurationError`` when the file is readable by
    other users (it is then not read).
    """
    records = _all_records(data_dir)
    if server_url is None:
        if not records:
            return None
        server_url = max(records, key=lambda url: _float(records[url].get("remembered_at")))
    else:
        server_url = _normalize(server_url)
    record = records.get(server_url)
    return None if record is None else _from_record(server_url, record)


def forget(server_url: str, *, data_dir: PathArg = None) -> None:
    """Remove what is remembered for ``server_url`` from the keyring and the file (if any)."""
    url = _normalize(server_url)
    backend = _keyring_backend()
    if backend is not None:
        try:
            _keyring_delete(backend, url)
        except Exception as exc:  # report, then still clear the file
            log.warning(
                "Could not remove %s from the system keyring (%s): %s",
                url,
                _backend_name(backend),
                type(exc).__name__,
            )
    if _file_path(data_dir).exists():
        _file_update(data_dir, lambda entries: entries.pop(url, None))


def remembered_servers(*, data_dir: PathArg = None) -> list[str]:
    """The server URLs with remembered credentials, most recently remembered first."""
    records = _all_records(data_dir)
    return sorted(records, key=lambda url: -_float(records[url].get("remembered_at")))


def data_dir(path: PathArg = None) -> Path:
    """Where the credentials file lives: ``path``, ``SPECKLE_NB_DATA_DIR``, or the platform's
    user data directory (``platformdirs``; not roaming on Windows: tokens stay on this machine)."""
    if path is not None:
        return Path(path)
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override)
    import platformdirs  # only when a file is used: not on the kernel's import path

    standard = platformdirs.user_data_path(_APP_NAME, appauthor=False, roaming=False)
    # speckle-nb 0.1 used ~/.local/share on macOS too: a file remembered there is still found
    # until something is remembered in the standard place.
    legacy = Path.home() / ".local" / "share" / _APP_NAME
    if not standard.exists() and (legacy / _FILE_NAME).is_file():
        return legacy
    return standard


# --------------------------------------------------------------------------- records


def _to_record(creds: Credentials) -> dict[str, Any]:
    user = creds.user
    return {
        "token": creds.token,
        "refresh_token": creds.refresh_token,
        "app_id": creds.app_id,
        # How the token was first obtained (the session may revoke differently by origin).
        "origin": creds.origin or creds.source,
        "scopes": list(creds.scopes),
        # No avatar: it can be a large data URL, and Windows' vault caps an entry at 2.5 kB.
        "user": None
        if user is None
        else {k: v for k, v in user.to_dict().items() if k != "avatar" and v is not None},
        "obtained_at": creds.obtained_at,
        "remembered_at": time.time(),
    }


def _from_record(server_url: str, record: Mapping[str, Any]) -> Credentials | None:
    token = record.get("token")
    if not isinstance(token, str) or not token:
        log.debug("Ignoring the remembered entry for %s: it holds no token", server_url)
        return None
    user_data = record.get("user")
    user = None
    if isinstance(user_data, Mapping) and user_data.get("id"):
        user = User.from_graphql(user_data)
    refresh = record.get("refresh_token")
    app_id = record.get("app_id")
    scopes = record.get("scopes")
    return Credentials(
        server_url=server_url,
        token=token,
        user=user,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        source="remembered",
        obtained_at=_float(record.get("obtained_at")) or time.time(),
        app_id=app_id if isinstance(app_id, str) and app_id else None,
        origin=_origin(record.get("origin")),
    )


def _origin(value: Any) -> Source | None:
    """The stored origin, when it is one we know (records from older versions have none)."""
    return cast("Source", value) if value in get_args(Source) else None


def _all_records(data_dir_arg: PathArg) -> dict[str, dict[str, Any]]:
    """Every remembered record by server URL; the keyring's win over the file's."""
    records = _file_read(data_dir_arg)
    backend = _keyring_backend()
    if backend is not None:
        try:
            records.update(_keyring_records(backend))
        except Exception as exc:  # a locked keyring must not hide the file
            log.warning(
                "Could not read the system keyring (%s): %s",
                _backend_name(backend),
                type(exc).__name__,
            )
    return {url: rec for url, rec in records.items() if isinstance(rec.get("token"), str)}


def _normalize(server_url: str) -> str:
    try:
        return normalize_server_url(server_url)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


# --------------------------------------------------------------------------- keyring


def _keyring_backend() -> Any | None:
    """The active keyring backend, or ``None`` without ``keyring`` or a usable backend."""
    try:
        import keyring
        import keyring.backends.chainer
        import keyring.backends.fail
        import keyring.backends.null
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring config means "no keyring"
        log.debug("keyring has no usable backend: %s", type(exc).__name__)
        return None
    if isinstance(backend, (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)):
        return None
    if isinstance(backend, keyring.backends.chainer.ChainerBackend) and not backend.backends:
        return None
    return backend


def _backend_name(backend: Any) -> str:
    name = getattr(backend, "name", None)
    return name if isinstance(name, str) and name else type(backend).__name__


def _keyring_index(backend: Any) -> list[str]:
    raw = backend.get_password(KEYRING_SERVICE, _INDEX_KEY)
    try:
        index = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [url for url in index if isinstance(url, str)] if isinstance(index, list) else []


def _keyring_records(backend: Any) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for url in _keyring_index(backend):
        raw = backend.get_password(KEYRING_SERVICE, url)
        if not raw:
            continue  # removed by hand: the index is only a hint
        try:
            record = json.loads(raw)
        except ValueError:
            log.debug("Ignoring the keyring entry for %s: not JSON", url)
            continue
        if isinstance(record, dict):
            records[url] = record
    return records


def _keyring_put(backend: Any, url: str, record: dict[str, Any]) -> None:
    backend.set_password(KEYRING_SERVICE, url, json.dumps(record))
    index = _keyring_index(backend)
    if url not in index:
        backend.set_password(KEYRING_SERVICE, _INDEX_KEY, json.dumps([*index, url]))


def _keyring_delete(backend: Any, url: str) -> None:
    import keyring.errors

    index = _keyring_index(backend)
    with contextlib.suppress(keyring.errors.PasswordDeleteError):
        backend.delete_password(KEYRING_SERVICE, url)
    if url in index:
        backend.set_password(
            KEYRING_SERVICE, _INDEX_KEY, json.dumps([u for u in index if u != url])
        )


# --------------------------------------------------------------------------- the file


def _file_path(data_dir_arg: PathArg) -> Path:
    return data_dir(data_dir_arg) / _FILE_NAME


def _display_path(path: Path) -> str:
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


def _check_private(path: Path, *, is_dir: bool) -> None:
    """Refuse a file other users can read (or a directory they can write into)."""
    if os.name != "posix":
        return  # %LOCALAPPDATA% is private to the user by its ACL
    info = path.stat()
    what = "directory" if is_dir else "file"
    if info.st_uid != os.getuid():
        raise ConfigurationError(
            f"Refusing to use the remembered-credentials {what} {path}: it belongs to another "
            f"user. Delete it (or set SPECKLE_NB_DATA_DIR to a directory of yours) and sign in again."
        )
    loose = stat.S_IMODE(info.st_mode) & (0o022 if is_dir else 0o077)
    if loose:
        mode = oct(stat.S_IMODE(info.st_mode))[2:]
        who = "replace files in it" if is_dir else "read it"
        fix = f"chmod 700 {path}" if is_dir else f"chmod 600 {path}"
        raise ConfigurationError(
            f"Refusing to use the remembered-credentials {what} {path}: its permissions "
            f"({mode}) let other users {who}. If you trust its contents run `{fix}`; "
            "otherwise delete it and sign in again."
        )


def _file_read(data_dir_arg: PathArg) -> dict[str, dict[str, Any]]:
    path = _file_path(data_dir_arg)
    if not path.exists():
        return {}
    _check_private(path.parent, is_dir=True)
    _check_private(path, is_dir=False)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("Ignoring %s: cannot read it (%s)", path, type(exc).__name__)
        return {}
    servers = content.get("servers") if isinstance(content, dict) else None
    if not isinstance(servers, dict):
        log.warning("Ignoring %s: not a speckle-nb credentials file", path)
        return {}
    return {url: rec for url, rec in servers.items() if isinstance(rec, dict)}


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock beside the file, so two kernels' read-modify-writes do not interleave."""
    if os.name != "posix":
        yield
        return
    import fcntl

    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _ensure_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        if os.name == "posix":
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask; be exact
    _check_private(directory, is_dir=True)


def _file_update(data_dir_arg: PathArg, change: Callable[[Records], object]) -> Path:
    """Apply ``change(entries)`` to the file's server entries and write it back atomically."""
    path = _file_path(data_dir_arg)
    try:
        return _file_write(path, data_dir_arg, change)
    except OSError as exc:
        raise ConfigurationError(
            f"Could not save the remembered credentials in {path.parent} "
            f"({exc.strerror or type(exc).__name__}). Set SPECKLE_NB_DATA_DIR to a directory "
            "of yours that can be written, or install a keyring backend."
        ) from None


def _file_write(path: Path, data_dir_arg: PathArg, change: Callable[[Records], object]) -> Path:
    _ensure_dir(path.parent)
    with _locked(path.parent):
        entries = _file_read(data_dir_arg)
        change(entries)
        payload = json.dumps({"version": _FILE_VERSION, "servers": entries}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-", suffix=".tmp")
        try:  # mkstemp creates the file 0600
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return path
