"""One error tree for everything speckle-nb raises.

    SpeckleError                      root: catch this to catch everything below
    ├── ConfigurationError            missing or bad settings (app id, server URL, …)
    ├── NotSignedInError              no credentials in this kernel for that server
    ├── TransportError                the server could not be reached, or timed out
    ├── ServerError                   the server answered something we cannot use (5xx, bad JSON)
    ├── RateLimitedError              HTTP 429; carries ``retry_after`` (seconds)
    ├── InvalidTokenError             the server's HTTP 403 "Your token is not valid."
    ├── AuthError                     the auth endpoints refused a request
    │   ├── TokenExchangeError        ``POST /auth/token`` answered 401 {"err": …}
    │   └── LogoutError               ``POST /auth/logout`` refused
    ├── GraphQLError                  ``errors`` in a GraphQL answer; keeps partial ``data``
    │   ├── MissingScopeError         ``FORBIDDEN`` naming a scope the token lacks
    │   ├── ForbiddenError            ``FORBIDDEN`` without a scope (role too low, …)
    │   ├── UnauthorizedError         ``UNAUTHORIZED`` (no token where one is needed)
    │   └── WorkspaceSsoError         ``SSO_SESSION_MISSING_OR_EXPIRED_ERROR``: the workspace's
    │                                 single sign-on session lapsed (no token refresh fixes it)
    └── SignInError                   an interactive sign-in did not complete
        ├── SignInDeniedError         the user pressed Deny
        ├── SignInExpiredError        the flow or the access code outlived its life
        ├── SignInTimeoutError        nobody finished signing in within the timeout
        ├── SignInSupersededError     a newer sign-in started in the same browser
        ├── PortInUseError            the kernel cannot listen: another program has the port
        └── SignInCancelledError      the user cancelled

Every error survives pickling with all its attributes (dask, multiprocessing and ipyparallel
send exceptions between processes): see ``SpeckleError.__reduce__``.

Every message names the cause and the next step. No message, repr or attribute shown
by default ever holds a token, refresh token, app secret, access code or pickup secret:
the server's own words are kept (``server_message``) because they never contain one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AuthError",
    "ConfigurationError",
    "ForbiddenError",
    "GraphQLError",
    "InvalidTokenError",
    "LogoutError",
    "MissingScopeError",
    "NotSignedInError",
    "PortInUseError",
    "RateLimitedError",
    "ServerError",
    "SignInCancelledError",
    "SignInDeniedError",
    "SignInError",
    "SignInExpiredError",
    "SignInSupersededError",
    "SignInTimeoutError",
    "SpeckleError",
    "TokenExchangeError",
    "TransportError",
    "UnauthorizedError",
    "WorkspaceSsoError",
]


class SpeckleError(Exception):
    """Root of every error speckle-nb raises."""

    def __init__(self, message: str, *, server_url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.server_url = server_url

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own pickling calls ``cls(*self.args)``, which breaks every subclass whose
        # ``__init__`` takes keyword-only attributes (``ServerError(message)`` has no
        # ``status_code``: TypeError) or builds its message from other arguments. Rebuilding
        # from the instance's state instead skips ``__init__`` and works for any subclass,
        # including ones added later, without each one having to remember.
        return (_rebuild, (type(self), self.args, self.__dict__.copy()))


class ConfigurationError(SpeckleError):
    """A setting is missing or wrong; the message names the setting."""


class NotSignedInError(SpeckleError):
    """No credentials for the server in this kernel."""

    def __init__(self, server_url: str | None = None, *, note: str = "") -> None:
        where = f" to {server_url}" if server_url else ""
        super().__init__(
            f"Not signed in{where}. Run `speckle_nb.sign_in()` and click "
            "'Sign in to Speckle', or use a personal access token: `%load_ext speckle_nb` "
            "then `%speckle_token set`." + (f" {note}" if note else ""),
            server_url=server_url,
        )


class TransportError(SpeckleError):
    """The server could not be reached or did not answer in time."""


class ServerError(SpeckleError):
    """The server answered, but not with anything we can use."""

    def __init__(self, message: str, *, server_url: str | None = None, status_code: int) -> None:
        super().__init__(message, server_url=server_url)
        self.status_code = status_code


class RateLimitedError(SpeckleError):
    """HTTP 429. ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one."""

    def __init__(
        self, message: str, *, server_url: str | None = None, retry_after: float | None
    ) -> None:
        super().__init__(message, server_url=server_url)
        self.retry_after = retry_after


class InvalidTokenError(SpeckleError):
    """The server refused the token (HTTP 403): it is wrong, revoked or expired."""

    def __init__(
        self, message: str, *, server_url: str | None = None, server_message: str | None = None
    ) -> None:
        super().__init__(message, server_url=server_url)
        self.server_message = server_message


class AuthError(SpeckleError):
    """An auth endpoint refused the request. ``server_message`` holds the server's words."""

    def __init__(
        self,
        message: str,
        *,
        server_url: str | None = None,
        status_code: int | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message, server_url=server_url)
        self.status_code = status_code
        self.server_message = server_message


class TokenExchangeError(AuthError):
    """``/auth/token`` (or ``/oauth/token``) refused a code exchange or a refresh."""


class LogoutError(AuthError):
    """``/auth/logout`` refused to revoke the token (already revoked, or unknown)."""


class GraphQLError(SpeckleError):
    """The answer carried ``errors``. ``data`` keeps whatever partial data came with them."""

    def __init__(
        self,
        message: str,
        *,
        server_url: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, server_url=server_url)
        self.errors: list[Mapping[str, Any]] = list(errors)
        self.data = data

    @property
    def codes(self) -> list[str]:
        """The ``extensions.code`` of every error, in order (``""`` where none)."""
        return [str((e.get("extensions") or {}).get("code", "")) for e in self.errors]


class MissingScopeError(GraphQLError):
    """``FORBIDDEN`` because the token lacks ``scope``."""

    def __init__(
        self,
        message: str,
        *,
        scope: str,
        server_url: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, server_url=server_url, errors=errors, data=data)
        self.scope = scope


class ForbiddenError(GraphQLError):
    """``FORBIDDEN`` for a reason other than a scope (server role, ownership)."""


class UnauthorizedError(GraphQLError):
    """``UNAUTHORIZED``: the field needs a signed-in user."""


class WorkspaceSsoError(GraphQLError):
    """``SSO_SESSION_MISSING_OR_EXPIRED_ERROR``: the user's single sign-on session for a
    workspace is missing or lapsed (7 days by default), so every token stops reaching that
    workspace's projects until the user signs in to the workspace again in a browser.

    ``workspace_slug`` is the workspace when the server named it; ``sso_url`` is where to sign
    in again (``{server}/workspaces/{slug}/sso``), or ``None`` when the slug is unknown.
    """

    CODE = "SSO_SESSION_MISSING_OR_EXPIRED_ERROR"

    def __init__(
        self,
        message: str,
        *,
        workspace_slug: str | None,
        sso_url: str | None,
        server_url: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, server_url=server_url, errors=errors, data=data)
        self.workspace_slug = workspace_slug
        self.sso_url = sso_url

    @classmethod
    def from_error(
        cls,
        error: Mapping[str, Any],
        *,
        server_url: str,
        errors: Sequence[Mapping[str, Any]] = (),
        data: Mapping[str, Any] | None = None,
    ) -> WorkspaceSsoError:
        """The error for one GraphQL error carrying ``CODE``, with the link to sign in again."""
        slug = _sso_slug(error)
        if slug is None:
            where, url = "a workspace", None
            step = f"Open {server_url}/workspaces and sign in to the workspace with single sign-on"
        else:
            where, url = f"the workspace {slug!r}", f"{server_url}/workspaces/{slug}/sso"
            step = f"Sign in to it at {url}"
        return cls(
            f"Your single sign-on session for {where} on {server_url} is missing or has "
            "expired, so its projects are hidden or refused; a new token does not help. "
            f"{step}, then run this again.",
            workspace_slug=slug,
            sso_url=url,
            server_url=server_url,
            errors=errors,
            data=data,
        )


_SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")


def _sso_slug(error: Mapping[str, Any]) -> str | None:
    """The workspace slug: ``extensions.workspaceSlug`` (newer servers put it there), else the
    message when it is a bare slug or ``CODE:slug`` (older servers sent the slug that way)."""
    extensions = error.get("extensions")
    named = extensions.get("workspaceSlug") if isinstance(extensions, Mapping) else None
    for candidate in (named, error.get("message")):
        if isinstance(candidate, str):
            text = candidate.strip().rsplit(":", 1)[-1].strip()
            if _SLUG.fullmatch(text):
                return text
    return None


class SignInError(SpeckleError):
    """An interactive sign-in did not complete. ``reason`` is a short machine-readable word."""

    reason = "failed"

    def __init__(self, message: str, *, server_url: str | None = None) -> None:
        super().__init__(message, server_url=server_url)


class SignInDeniedError(SignInError):
    reason = "denied"


class SignInExpiredError(SignInError):
    reason = "expired"


class SignInTimeoutError(SignInError):
    reason = "timeout"


class PortInUseError(SignInError):
    """The kernel could not listen for the sign-in: another program holds the port."""

    reason = "port-busy"


class SignInSupersededError(SignInError):
    reason = "superseded"


class SignInCancelledError(SignInError):
    reason = "cancelled"


def _rebuild(cls: type[SpeckleError], args: tuple[Any, ...], state: dict[str, Any]) -> SpeckleError:
    """Unpickle a ``SpeckleError``: its args and attributes as they were, ``__init__`` not run."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


_SIGN_IN_ERRORS: dict[str, type[SignInError]] = {
    cls.reason: cls
    for cls in (
        SignInDeniedError,
        SignInExpiredError,
        SignInTimeoutError,
        SignInSupersededError,
        SignInCancelledError,
    )
}


def sign_in_error(reason: str, message: str, *, server_url: str | None = None) -> SignInError:
    """The ``SignInError`` subclass for ``reason`` (a plain ``SignInError`` for unknown ones)."""
    return _SIGN_IN_ERRORS.get(reason, SignInError)(message, server_url=server_url)
