"""Signing out at the server: revoke the token when it should be, and say what became of it.

``revoke_line`` is what ``Session.sign_out`` says for one server: the token the package
obtained is revoked (``POST /auth/logout``), a token the user brought stays valid unless asked,
and a hub login's token is the hub's to end. No line holds a token.
"""

from __future__ import annotations

from ._names import ENV_TOKEN
from .credentials import Credentials
from .errors import LogoutError, SpeckleError

__all__ = ["revoke_line"]


def revoke_line(creds: Credentials, revoke: bool | None, variable: str | None = None) -> str:
    """Revoke ``creds``' token at the server if ``revoke`` (default: if the package obtained
    it) says so; returns the sign-out line. ``variable`` names the environment variable the
    token came from, for the line."""
    url = creds.server_url
    if creds.source == "hub":  # the hub's login holds it: never revoked from a kernel
        from .hub_source import sign_out_line

        return sign_out_line(creds)
    should = creds.obtained_by_us if revoke is None else revoke
    if not should:
        brought = variable or _SOURCE_WORDS.get(creds.source, creds.source)
        why = (
            "as asked (revoke=False)" if revoke is False else f"because you brought it ({brought})"
        )
        return (
            f"Signed out of {url}: forgotten in this kernel. The token was not revoked "
            f"{why} and stays valid; revoke it under Developer settings on {url}, or pass "
            "`revoke=True` to `speckle_nb.sign_out()`."
        )
    from .oauth import AuthClient

    try:
        with AuthClient() as auth:
            auth.logout(url, creds.token, creds.refresh_token)
    except LogoutError as exc:
        return (
            f"Signed out of {url}: forgotten in this kernel. The server did not revoke the "
            f"token ({exc.server_message}): it may have been revoked already, and its refresh "
            "token, not revoked now, may still be valid. To be sure, revoke this app's access "
            f"under Developer settings on {url}."
        )
    except SpeckleError as exc:
        return (
            f"Signed out of {url}: forgotten in this kernel, but the token could not be "
            f"revoked ({exc}). Revoke it under Developer settings on {url}."
        )
    return f"Signed out of {url}: the token was revoked at the server and forgotten here."


#: How a sign-out line names where a token the user brought came from.
_SOURCE_WORDS = {
    "token": "use_token or the panel's token field",
    "env": ENV_TOKEN,
    "magic": "%speckle_token",
    "remembered": "remembered on this computer",
    "local": "a Speckle desktop/specklepy account",
}
