"""The sign-in logic of one Jupyter server, without tornado: ``SignInService``.

The handlers in ``handlers.py`` only turn requests into plain values and answers back into
HTTP. The routes' logic lives in one module per group — ``start_route.py``,
``callback_route.py``, ``kernel_routes.py`` — on the shared ``core.py``; this class puts them
together and answers ``status``.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .callback_route import CallbackRoute
from .core import BrowserRequest, Refusal, Settings, not_configured_message
from .kernel_routes import KernelRoutes
from .redirect import named_server_problem
from .registered import MAX_REDIRECT_URL_CHARS, same_redirect, too_long_message
from .start_route import StartResult, StartRoute

__all__ = [
    "BrowserRequest",
    "Refusal",
    "Settings",
    "SignInService",
    "StartResult",
]


class SignInService(StartRoute, CallbackRoute, KernelRoutes):
    """Every route's logic for one Jupyter server (one event loop)."""

    def problems(self, browser: BrowserRequest | None = None) -> list[str]:
        """What stops a sign-in from working, in words an admin can act on (with a
        ``browser``, also what is wrong with the redirect URL its address implies)."""
        s = self.settings
        found: list[str] = []
        if not s.app_id:
            found.append(not_configured_message())
        elif not s.app_secret and self.method_hint(self.default_server()) != "S256":
            found.append(
                "The Speckle app secret is not set: set SPECKLE_APP_SECRET (or "
                "c.SpeckleNB.app_secret). Released Speckle servers need it to exchange codes."
            )
        named = named_server_problem(configured=s.redirect_url, hub=s.hub)
        if named:
            found.append(named)
            return found
        if browser is not None:
            redirect = self.redirect_url(browser).url
            if len(redirect) > MAX_REDIRECT_URL_CHARS:
                found.append(too_long_message(redirect))
            registered = self._registered.get((self.default_server(), s.app_id))
            if (
                registered is not None
                and registered[0].kind == "found"
                and not same_redirect(registered[0].redirect_url, redirect)
            ):
                found.append(
                    f"The Speckle app is registered with the redirect URL "
                    f"{registered[0].redirect_url}, not {redirect}: open Jupyter at the "
                    "registered address, or register this one (or set "
                    "c.SpeckleNB.redirect_url)."
                )
        return found

    def status(self, browser: BrowserRequest) -> dict[str, Any]:
        """What the panel shows. ``redirect_url`` is None where no URL would work (a named
        JupyterHub server without an explicit one); ``problems`` then says why."""
        redirect = self.redirect_url(browser)
        s = self.settings
        unusable = named_server_problem(configured=s.redirect_url, hub=s.hub) is not None
        return {
            "version": __version__,
            "server_url": self.default_server(),
            "allowed_servers": list(self.allowed_servers),
            "app_configured": bool(s.app_id),
            "app_id": s.app_id or None,
            "redirect_url": None if unusable else redirect.url,
            "redirect_url_source": None if unusable else redirect.kind,
            "method_hint": self.method_hint(self.default_server()),
            "problems": self.problems(browser),
        }
