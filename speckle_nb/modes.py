"""Choosing how this kernel signs in: through the Jupyter server's speckle-nb extension when
the server that started the kernel answers, else down the fallback chain — ``loopback`` (an
app from the environment whose redirect URL is ``http://localhost:<port>``), ``paste`` (an
app with another redirect URL) or ``token`` (no app) — with the reason, in words the panel
shows. ``signin.py`` acts on the choice; nothing here signs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .hub_source import HubService
    from .oauth import App

__all__ = ["Mode", "ModeChoice", "choose_fallback", "choose_mode"]

Mode = Literal["extension", "loopback", "paste", "token"]


@dataclass(frozen=True)
class ModeChoice:
    """How this kernel signs in, and why, in words the panel shows."""

    mode: Mode
    reason: str
    jupyter_url: str | None = None
    app: App | None = None
    redirect_url: str | None = None
    #: Why the extension is not used (fallback modes), to build on when a fallback fails too.
    why: str = ""
    #: The JupyterHub speckle-nb service stands in for the extension (``hub_source``).
    hub_service: HubService | None = None


def choose_mode(server_url: str | None = None) -> ModeChoice:
    """The extension when the Jupyter server that started this kernel answers; else the
    fallback chain: loopback (an app with a localhost redirect), paste (another app),
    token (no app)."""
    from .discovery import find_jupyter_server
    from .hub_source import hub_service_choice

    hub = hub_service_choice()
    if hub is not None:  # on a hub with the speckle-nb service, it alone holds the app
        return hub
    server = find_jupyter_server()
    if server is None:
        why = (
            "no Jupyter server with the speckle-nb extension started this kernel "
            "(VS Code, Colab, a console or plain IPython)"
        )
    elif _extension_answers(server.url):
        return ModeChoice(
            "extension",
            f"Signing in through the Jupyter server at {server.url} "
            f"(its speckle-nb extension answered; found via {server.source}).",
            jupyter_url=server.url,
        )
    else:
        why = f"the Jupyter server at {server.url} has no working speckle-nb extension"
    return choose_fallback(server_url, why)


def _extension_answers(jupyter_url: str) -> bool:
    from .pickup import PickupClient

    with PickupClient(jupyter_url) as probe:  # closed: its connection pool is not reused
        return probe.ping()


def choose_fallback(server_url: str | None, why: str) -> ModeChoice:
    """Loopback, paste or token, for a kernel without the extension (``why`` says so)."""
    from .fallback import is_loopback_redirect, kernel_app_from_env, redirect_url_from_env

    try:
        app = kernel_app_from_env()
    except ConfigurationError as exc:
        return ModeChoice("token", f"Using a personal access token: {why}, and {exc}")
    if app is None:
        return ModeChoice(
            "token",
            f"Using a personal access token: {why}, and no Speckle app is configured for the "
            "kernel (SPECKLE_APP_ID, SPECKLE_APP_SECRET).",
        )
    if server_url is not None and app.server_url != server_url:
        return ModeChoice(
            "token",
            f"Using a personal access token: {why}, and the kernel's app (SPECKLE_APP_ID) "
            f"belongs to {app.server_url}, not {server_url}.",
        )
    redirect = redirect_url_from_env(app.app_id)
    if redirect and is_loopback_redirect(redirect):
        return ModeChoice(
            "loopback",
            f"Signing in with the kernel's app: {why}. Its redirect URL {redirect} is on "
            "this computer, so the kernel listens there for the sign-in.",
            app=app,
            redirect_url=redirect,
            why=why,
        )
    return ModeChoice(
        "paste",
        f"Signing in with the kernel's app: {why}. After signing in, paste the address your "
        "browser lands on.",
        app=app,
        redirect_url=redirect,
        why=why,
    )
