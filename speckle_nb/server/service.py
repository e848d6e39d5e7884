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
from .redirect import RedirectURL, derive_redirect_url, named_server_problem
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

    def redirect_url(self, browser: BrowserRequest) -> RedirectURL:
        s = self.settings
        return derive_redirect_url(
            configured=s.redirect_url, base_url=s.base_url, origin=browser.origin, hub=s.hub
        )

    def problems(self) -> list[str]:
        """What stops a sign-in from working, in words an admin can act on."""
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
            "problems": self.problems(),
        }
