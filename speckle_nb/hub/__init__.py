"""speckle-nb on the hub's side (the ``hub`` extra: jupyterhub, oauthenticator).

``configure(c, login=False|True)`` in ``jupyterhub_config.py``; the ``speckle-nb`` service
(``python -m speckle_nb.hub.service``); ``SpeckleOAuthenticator`` (Speckle as the hub's login).
Kernels never import this package: their side is ``speckle_nb.hub_source``.
"""

from __future__ import annotations

from .config import SERVICE_NAME, configure, redirect_url

__all__ = ["SERVICE_NAME", "configure", "redirect_url"]
