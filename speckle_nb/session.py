"""The kernel's sign-in session: one set of credentials per server, one client each, and the
live panels that show them.

    speckle_nb.client()              # the default server's client (the last one signed in to)
    speckle_nb.use_token(token)      # check a personal access token with the server, then use it
    speckle_nb.sign_out()            # forget (and revoke what the package obtained)

Everything lives in this kernel's memory. The credentials are masked in every repr, and no
message here holds a token. Sign-ins and sign-outs anywhere (a panel, ``use_token``, the
magic) reach every live panel through listeners, so no panel shows a stale state.

When a client meets an invalid token and its credentials hold a refresh token, the session
refreshes once, through the Jupyter server extension when one answers (the app secret lives
there) or in the kernel when its environment has the app's secret, stores the new tokens and
retries; otherwise the error says to sign in again.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ._names import DEFAULT_SERVER_URL, ENV_SERVER_URL, ENV_TOKEN, env_text
from .credentials import Credentials, Source, User, normalize_server_url
from .errors import (
    ConfigurationError,
    InvalidTokenError,
    MissingScopeError,
    NotSignedInError,
    SpeckleError,
)
from .revocation import revoke_line

if TYPE_CHECKING:
    from .graphql import SpeckleClient

__all__ = [
    "DEFAULT_SERVER_URL",
    "Session",
    "SessionListener",
    "client",
    "current_session",
    "sign_out",
    "use_token",
]

log = logging.getLogger(__name__)


class SessionListener(Protocol):
    """What the session tells a live panel. Called outside the session's lock."""

    def session_changed(self, server_url: str, creds: Credentials | None, message: str) -> None:
        """``creds`` is the new sign-in for ``server_url``, or ``None`` after a sign-out."""


def _normalize(server_url: str) -> str:
    try:
        return normalize_server_url(server_url)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def env_server_url() -> str | None:
    """``SPECKLE_SERVER_URL``, normalised, or ``None`` when unset."""
    raw = env_text(ENV_SERVER_URL)
    if not raw:
        return None
    try:
        return normalize_server_url(raw)
    except ValueError as exc:
        raise ConfigurationError(f"SPECKLE_SERVER_URL is not a server URL: {exc}") from None


class Session:
    """The credentials of this kernel. Use the module functions; tests may make their own."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._creds: dict[str, Credentials] = {}
        self._clients: dict[str, SpeckleClient] = {}
        self._default: str | None = None
        self._listeners: weakref.WeakSet[SessionListener] = weakref.WeakSet()
        # Servers whose credentials this session saved with remember-me: refreshed tokens
        # are saved again, so the next kernel does not start from a stale pair.
        self._remembered: set[str] = set()
        # When automatic refreshes replaced each server's pair: sign-out names what they left.
        self._replaced: dict[str, list[float]] = {}
        #: Set by ``sign_out()``: from then on ``client()`` no longer takes SPECKLE_TOKEN up
        #: on its own (signed out means signed out); ``use_token`` and the magic still do.
        self._env_token_off = False
        #: server -> the environment variable its token came from (``%speckle_token --env X``).
        self._env_vars: dict[str, str] = {}
        #: The Speckle server the Jupyter server extension is configured for, once a panel's
        #: status probe told us (the kernel cannot ask the Jupyter-authenticated route itself).
        self.extension_server_url: str | None = None

    # ------------------------------------------------------------------ queries

    @property
    def default_server(self) -> str | None:
        """The server ``client()`` uses without an argument: the last one signed in to."""
        return self._default

    @property
    def servers(self) -> list[str]:
        with self._lock:
            return list(self._creds)

    def credentials(self, server_url: str | None = None) -> Credentials | None:
        """The credentials for ``server_url`` (default: the default server), or ``None``."""
        with self._lock:
            url = _normalize(server_url) if server_url else self._default
            return self._creds.get(url) if url else None

    def __repr__(self) -> str:
        with self._lock:
            who = {
                url: f"{c.user.name if c.user else '?'} ({c.source})"
                for url, c in self._creds.items()
            }
        return f"Session(default={self._default!r}, signed_in={who!r})"

    # ------------------------------------------------------------------ listeners (panels)

    def add_listener(self, listener: SessionListener) -> None:
        self._listeners.add(listener)

    def remove_listener(self, listener: SessionListener) -> None:
        self._listeners.discard(listener)

    def _notify(self, server_url: str, creds: Credentials | None, message: str) -> None:
        for listener in list(self._listeners):
            try:
                listener.session_changed(server_url, creds, message)
            except Exception:  # one broken panel must not stop the others
                log.exception("A sign-in panel failed to show the new session state")

    def _failed(self, server_url: str, client: SpeckleClient, error: SpeckleError) -> None:
        """A client of this session met a dead token or a lapsed workspace SSO session: tell
        the panels that listen for it, so none keeps saying all is well. Then a dead token
        (refused even after any refresh) is forgotten, so nothing offers it as a sign-in."""
        for tell in [getattr(x, "session_problem", None) for x in list(self._listeners)]:
            try:
                if tell is not None:
                    tell(server_url, error)
            except Exception:
                log.exception("A sign-in panel failed to show a problem with the sign-in")
        with self._lock:
            current = self._clients.get(server_url) is client  # not replaced meanwhile
        if current and isinstance(error, InvalidTokenError):
            self.forget(server_url)

    # ------------------------------------------------------------------ changes

    def store(self, creds: Credentials, *, remember: bool = False, message: str = "") -> str:
        """Use ``creds`` for its server (and as the default); replaces and closes an older
        client. With ``remember``, also saves them for later kernels. Returns the status
        line the panels show (where the token was saved, or ``message``)."""
        with self._lock:
            old = self._clients.pop(creds.server_url, None)
            self._creds[creds.server_url] = creds
            self._default = creds.server_url
        if old is not None:
            old.close()
        who = creds.user.name if creds.user else "a user the token does not name"
        log.info("speckle-nb: signed in to %s as %s (%s)", creds.server_url, who, creds.source)
        if remember:
            message = self.remember(creds)
        self._notify(creds.server_url, creds, message)
        return message

    def remember(self, creds: Credentials) -> str:
        """Save ``creds`` with remember-me; returns "Saved in …" (or why it could not)."""
        from .remember import remember

        try:
            where = remember(creds)
        except SpeckleError as exc:
            return f"Not remembered: {exc}"
        with self._lock:
            self._remembered.add(creds.server_url)
        return f"Saved in {where}."

    def is_remembered(self, server_url: str) -> bool:
        """Whether this session knows ``server_url``'s credentials are saved with remember-me."""
        with self._lock:
            return server_url in self._remembered

    def mark_remembered(self, server_url: str) -> None:
        """``server_url``'s credentials came from remember-me: save refreshed tokens there too."""
        with self._lock:
            self._remembered.add(server_url)

    def unremember(self, server_url: str) -> str:
        """Remove what remember-me saved for ``server_url``; returns a status line."""
        from .remember import forget

        with self._lock:
            self._remembered.discard(server_url)
        try:
            forget(server_url)
        except SpeckleError as exc:
            return f"Could not remove the remembered credentials: {exc}"
        return "No longer remembered on this computer."

    def forget(self, server_url: str) -> Credentials | None:
        """Drop ``server_url``'s credentials from this kernel and close its client (no
        revocation, no panel update: ``sign_out`` does those)."""
        url = _normalize(server_url)
        with self._lock:
            creds = self._creds.pop(url, None)
            old = self._clients.pop(url, None)
            if self._default == url:
                self._default = next(reversed(self._creds), None)
        if old is not None:
            old.close()
        return creds

    def client(self, server_url: str | None = None) -> SpeckleClient:
        """The client for ``server_url`` (default: the default server), built once and cached.

        Without any sign-in, ``SPECKLE_TOKEN`` is checked with the server and used. Raises
        ``NotSignedInError`` (saying how to sign in) when there is nothing to use.
        """
        from .session_client import SessionClient

        with self._lock:
            url = _normalize(server_url) if server_url else self._default
            creds = self._creds.get(url) if url else None
        if creds is None and not self._env_token_off:
            creds = self._from_env(url)
        if creds is None:
            from .hub_source import hub_login_credentials

            creds = hub_login_credentials(self, url)
        if creds is None:
            raise NotSignedInError(url, note=self._env_note())
        with self._lock:
            current = self._clients.get(creds.server_url)
            if current is None or current.closed:
                current = SessionClient.from_credentials(
                    creds,
                    token_refresher=self._refresher(creds.server_url)
                    if creds.refresh_token
                    else None,
                    on_failure=functools.partial(self._failed, creds.server_url),
                )
                self._clients[creds.server_url] = current
            return current

    def _from_env(self, server_url: str | None) -> Credentials | None:
        from .local_accounts import env_credentials

        creds = env_credentials()
        if creds is None or (server_url is not None and creds.server_url != server_url):
            return None
        try:
            return self.use_token(creds.token, creds.server_url, source="env")
        except InvalidTokenError as exc:
            raise InvalidTokenError(
                f"{creds.server_url} refused the token in SPECKLE_TOKEN "
                f"({exc.server_message or 'invalid token'}). Set a valid one and restart the "
                "kernel, or sign in with `speckle_nb.sign_in()`.",
                server_url=creds.server_url,
                server_message=exc.server_message,
            ) from None

    def use_token(
        self,
        token: str,
        server_url: str | None = None,
        *,
        source: Source = "token",
        env_var: str | None = None,
    ) -> Credentials:
        """Check ``token`` with the server (``activeUser``), then use it. A refused token
        raises ``InvalidTokenError`` with the server's reason and changes nothing.
        ``env_var`` names the environment variable it was read from, for messages."""
        creds = self.validate(
            Credentials(
                server_url=self.token_server(server_url), token=token.strip(), source=source
            )
        )
        with self._lock:
            if source == "env":
                self._env_vars[creds.server_url] = env_var or ENV_TOKEN
            else:
                self._env_vars.pop(creds.server_url, None)
        self.store(creds)
        return creds

    def _env_note(self, variable: str | None = None) -> str:
        """After a sign-out: says that a token variable is still set and how to use it on
        purpose (the variable's value never appears)."""
        name = variable or ENV_TOKEN
        if not self._env_token_off or not env_text(name):
            return ""
        return (
            f"{name} is still set in this kernel's environment, but after `sign_out()` it is "
            f"not used on its own. To use it on purpose: `%speckle_token --env {name}` (after "
            f"`%load_ext speckle_nb`) or `speckle_nb.use_token(os.environ[{name!r}])`."
        )

    def validate(self, creds: Credentials) -> Credentials:
        """``creds`` with the user the server says the token belongs to; raises when refused.

        A token without ``profile:read`` is valid but cannot name its user: it is kept with
        ``user=None``.
        """
        from .graphql import SpeckleClient

        if not creds.token:
            raise ConfigurationError(
                "The token is empty. Paste a personal access token (Developer settings on "
                "your Speckle server), or sign in with the button."
            )
        user: User | None
        with SpeckleClient(creds.server_url, creds.token) as probe:
            try:
                user = probe.active_user()
            except MissingScopeError:
                user = None
        return dataclasses.replace(creds, user=user)

    def token_server(self, server_url: str | None = None) -> str:
        """Where a token goes: the argument, ``SPECKLE_SERVER_URL``, the extension's server
        (when known), else app.speckle.systems."""
        if server_url:
            return _normalize(server_url)
        return env_server_url() or self.extension_server_url or DEFAULT_SERVER_URL

    # ------------------------------------------------------------------ sign-out

    def sign_out(self, revoke: bool | None = None, *, server_url: str | None = None) -> str:
        """Forget the credentials (of ``server_url``, default: every server) and close their
        clients; reset every live panel. Tokens the package obtained are revoked at the
        server by default; tokens the user brought only with ``revoke=True``."""
        with self._lock:
            targets = [_normalize(server_url)] if server_url else list(self._creds)
            self._env_token_off = True
        if not targets:
            note = self._env_note()
            return "Not signed in to any Speckle server; nothing to sign out of." + (
                f" {note}" if note else ""
            )
        lines: list[str] = []
        for url in targets:
            creds = self.forget(url)
            if creds is None:
                lines.append(f"Not signed in to {url}; nothing to sign out of.")
                continue
            forgotten = self._unremember_quietly(url)
            with self._lock:
                variable = self._env_vars.pop(url, None)
            note = self._env_note(variable)
            line = (
                revoke_line(creds, revoke, variable)
                + self._replaced_note(url)
                + forgotten
                + (f" {note}" if note else "")
            )
            lines.append(line)
            self._notify(url, None, line)
        return "\n".join(lines)

    def _unremember_quietly(self, url: str) -> str:
        from .remember import remembered_servers

        try:
            saved = url in remembered_servers()
        except SpeckleError:
            saved = False
        if not saved:
            with self._lock:
                self._remembered.discard(url)
            return ""
        note = self.unremember(url)
        return f" {note}" if note.startswith("Could not") else " The remembered copy was removed."

    def _replaced_note(self, url: str) -> str:
        """What automatic refreshes left valid at the server (nothing, if none happened)."""
        from .renew import left_valid

        with self._lock:
            return left_valid(url, self._replaced.pop(url, []))

    # ------------------------------------------------------------------ refresh

    def _refresher(self, server_url: str) -> Callable[[], str]:
        def refresh() -> str:
            with self._lock:
                creds = self._creds.get(server_url)
            if creds is None or not creds.refresh_token:
                raise NotSignedInError(server_url)
            from .renew import refresh_tokens

            pair = refresh_tokens(creds)
            new = creds.with_tokens(pair.token, pair.refresh_token or creds.refresh_token)
            with self._lock:
                if self._creds.get(server_url) is creds:
                    self._creds[server_url] = new
                remembered = server_url in self._remembered
                self._replaced.setdefault(server_url, []).append(time.time())
            # The old refresh token stays valid and cannot be revoked now (renew.left_valid).
            log.info("speckle-nb: refreshed the token for %s", server_url)
            if remembered:
                self.remember(new)
            return pair.token

        return refresh

    def reset(self) -> None:
        """Forget everything without revoking or touching panels (for tests)."""
        with self._lock:
            clients = list(self._clients.values())
            self._creds.clear()
            self._clients.clear()
            self._default = None
            self._remembered.clear()
            self._replaced.clear()
            self.extension_server_url = None
            self._env_token_off = False
            self._env_vars.clear()
        for old in clients:
            old.close()


# ---------------------------------------------------------------------- the kernel's session

_SESSION = Session()


def current_session() -> Session:
    """This kernel's session (one per process)."""
    return _SESSION


def client(server_url: str | None = None) -> SpeckleClient:
    """The preconfigured GraphQL client for ``server_url`` (default: the last server signed
    in to). Raises ``NotSignedInError``, which says how to sign in."""
    return _SESSION.client(server_url)


def use_token(
    token: str, server_url: str | None = None, *, source: Source = "token"
) -> Credentials:
    """Check a personal access token with the server, then sign in with it.

    ``server_url`` defaults to ``SPECKLE_SERVER_URL``, else the Jupyter server extension's
    server when known, else https://app.speckle.systems. A refused token raises
    ``InvalidTokenError`` with the server's reason and leaves the session as it was.
    """
    return _SESSION.use_token(token, server_url, source=source)


class SignOutMessage(str):
    """What ``sign_out()`` returns: the message, shown as plain text when it is a cell's result."""

    __slots__ = ()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def sign_out(revoke: bool | None = None, *, server_url: str | None = None) -> str:
    """Sign out: forget the credentials here, close the client, reset every panel.

    A token the package obtained (browser sign-in, paste, loopback) is revoked at the server
    (``POST /auth/logout``) unless ``revoke=False``; a token you brought (``use_token``,
    ``SPECKLE_TOKEN``, ``%speckle_token``, a desktop account) only with ``revoke=True``.
    Without ``server_url`` every server is signed out of. Returns the message that says
    which happened (a cell ending in ``sign_out()`` shows it; every live panel shows it too).
    """
    return SignOutMessage(_SESSION.sign_out(revoke, server_url=server_url))
