"""Credentials a panel can use without a browser sign-in — remembered by an earlier kernel,
or others to switch to — and the Speckle servers it offers to pick from. Labels go to the
view; tokens stay here, in the kernel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._names import ENV_TOKEN
from .credentials import Credentials
from .errors import SpeckleError
from .session import DEFAULT_SERVER_URL, Session, env_server_url

__all__ = ["Sources", "recall_checked", "server_choices"]

log = logging.getLogger(__name__)

_KIND_WORDS = {
    "env": ENV_TOKEN,
    "local": "Speckle desktop / specklepy account",
    "session": "signed in in this kernel",
}


class Sources:
    """The switcher's candidates of one panel: ``labels()`` for the view, ``get(id)`` here."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._candidates: dict[str, Credentials] = {}

    def get(self, ident: str) -> Credentials | None:
        return self._candidates.get(ident)

    def labels(self, current: Credentials | None) -> list[dict[str, str]]:
        """Other credentials this kernel could switch to (not ``current``)."""
        found = _found(self.session)
        self._candidates = {}
        labels: list[dict[str, str]] = []
        seen: set[tuple[str, str]] = set()
        if current is not None:
            seen.add((current.server_url, current.token))
        for index, (kind, creds) in enumerate(found):
            key = (creds.server_url, creds.token)
            if key in seen:
                continue
            seen.add(key)
            ident = f"{kind}-{index}"
            self._candidates[ident] = creds
            labels.append({"id": ident, "label": _label(kind, creds)})
        return labels


def _found(session: Session) -> list[tuple[str, Credentials]]:
    from .local_accounts import env_credentials, local_accounts

    found: list[tuple[str, Credentials]] = []
    getters: tuple[tuple[str, Callable[[], Credentials | list[Credentials] | None]], ...] = (
        ("env", env_credentials),
        ("local", local_accounts),
    )
    for kind, getter in getters:
        try:
            value = getter()
        except SpeckleError as exc:
            log.info("speckle-nb: skipping %s credentials: %s", kind, exc)
            continue
        items = value if isinstance(value, list) else [value] if value is not None else []
        found.extend((kind, c) for c in items)
    for server in session.servers:
        other = session.credentials(server)
        if other is not None:
            found.append(("session", other))
    return found


def _label(kind: str, creds: Credentials) -> str:
    who = creds.user.name if creds.user and creds.user.name else "token"
    return f"{who} on {creds.server_url} ({_KIND_WORDS.get(kind, kind)})"


def server_choices(session: Session, current: str | None) -> list[str]:
    """The servers the panel's picker offers: ``current``, SPECKLE_SERVER_URL, the servers
    signed in to before (this kernel, remember-me, desktop accounts), app.speckle.systems."""
    from .local_accounts import local_accounts
    from .remember import remembered_servers

    urls: list[str] = [u for u in (current,) if u]
    try:
        env = env_server_url()
    except SpeckleError:
        env = None
    urls += [env] if env else []
    urls += session.servers
    try:
        urls += remembered_servers()
        urls += [c.server_url for c in local_accounts()]
    except SpeckleError as exc:
        log.info("speckle-nb: not offering remembered servers: %s", exc)
    urls.append(DEFAULT_SERVER_URL)
    return list(dict.fromkeys(urls))


def recall_checked(session: Session, server_url: str | None) -> tuple[Credentials | None, str]:
    """Credentials remembered by an earlier kernel, checked with the server and stored."""
    from .remember import recall

    try:
        creds = recall(server_url)
    except SpeckleError as exc:
        return None, f"Remembered credentials were not used: {exc}"
    if creds is None:
        return None, ""
    try:
        checked = session.validate(creds)
    except SpeckleError as exc:
        return (
            None,
            f"The remembered sign-in for {creds.server_url} no longer works ({exc}); sign in again.",
        )
    session.store(checked)
    session.mark_remembered(checked.server_url)
    return checked, "Signed in with the credentials remembered on this computer."
