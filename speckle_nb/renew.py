"""Renewing a token with its refresh token: through the Jupyter server's extension (it holds
the app secret) or in the kernel with the app from its environment — whichever serves the app
the credentials belong to. The session calls this when a client meets an invalid token.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .errors import ConfigurationError, InvalidTokenError

if TYPE_CHECKING:
    from .credentials import Credentials
    from .oauth import TokenPair

__all__ = ["left_valid", "refresh_tokens"]


def refresh_tokens(creds: Credentials) -> TokenPair:
    """A new token pair for ``creds``: through the Jupyter server extension (it holds the
    app secret) or in the kernel with the app from its environment, whichever serves the
    app the credentials belong to. Raises ``ConfigurationError`` when neither can."""
    if not creds.refresh_token:
        raise InvalidTokenError(
            f"{creds.server_url} refused the token and there is no refresh token to renew it.",
            server_url=creds.server_url,
        )
    routes = [_refresh_via_extension, _refresh_in_kernel]
    if creds.source != "sign-in":  # obtained in the kernel (paste/loopback): its app is here
        routes.reverse()
    from .hub_source import refresh_via_hub

    routes.insert(0, refresh_via_hub)  # None unless a JupyterHub setup holds the app
    for route in routes:
        pair = route(creds)
        if pair is not None:
            return pair
    raise ConfigurationError(
        f"The token for {creds.server_url} needs renewing, but neither a Jupyter server "
        "extension nor the app's secret (SPECKLE_APP_SECRET) is available to this kernel. "
        "Sign in again with `speckle_nb.sign_in()`.",
        server_url=creds.server_url,
    )


def _refresh_via_extension(creds: Credentials) -> TokenPair | None:
    from .discovery import find_jupyter_server
    from .pickup import PickupClient

    server = find_jupyter_server()
    if server is None:
        return None
    with PickupClient(server.url) as pickup:
        if not pickup.ping():
            return None
        assert creds.refresh_token is not None
        return pickup.refresh(creds.server_url, creds.refresh_token)


def _refresh_in_kernel(creds: Credentials) -> TokenPair | None:
    from .fallback import kernel_app_from_env

    app = kernel_app_from_env()
    if app is None or app.server_url != creds.server_url or not app.app_secret:
        return None
    if creds.app_id is not None and creds.app_id != app.app_id:
        return None
    from .oauth import AuthClient

    assert creds.refresh_token is not None
    with AuthClient() as auth:
        return auth.refresh(app, creds.refresh_token)


def left_valid(url: str, replaced_at: list[float]) -> str:
    """What automatic refreshes (at ``replaced_at``, epoch seconds) left valid at ``url``, for
    the sign-out message; ``""`` when there were none.

    A refresh happens because the server refused the access token, so that token is gone; and
    Speckle neither retires a refresh token when it is used nor revokes one at /auth/logout
    without a live access token beside it. So each refresh leaves the refresh token it used
    valid, and the client cannot end it: say so instead of claiming everything was revoked.
    """
    if not replaced_at:
        return ""
    when = ", ".join(time.strftime("%H:%M", time.localtime(t)) for t in replaced_at)
    return (
        f" Still valid at the server: {len(replaced_at)} refresh token(s) replaced by an "
        f"automatic refresh (at {when}); Speckle revokes a refresh token only beside a live "
        "access token, which a refresh never has. They expire 6 months after they were issued; "
        f"to end them now, revoke this app's access under Developer settings on {url}."
    )
