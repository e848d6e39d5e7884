"""``configure(c, login=…)``: speckle-nb's part of a ``jupyterhub_config.py`` in one line.

    from speckle_nb.hub import configure
    configure(c)               # the speckle-nb service holds the app secret (hub service setup)
    configure(c, login=True)   # Speckle is the hub's login; kernels read tokens from auth_state

Settings come from keyword arguments, else from the hub's environment (``SPECKLE_SERVER_URL``,
``SPECKLE_APP_ID``, ``SPECKLE_APP_SECRET``). User servers get ``SPECKLE_SERVER_URL`` and how to
reach the hub's side, never the secret. Imports nothing from JupyterHub: the config file may be
read before it is.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from .._names import ENV_APP_ID, ENV_APP_SECRET, ENV_SERVER_URL, env_text, server_url_setting
from ..credentials import normalize_server_url
from ..errors import ConfigurationError

__all__ = ["SERVICE_NAME", "configure", "redirect_url"]

log = logging.getLogger("speckle_nb.hub")

SERVICE_NAME = "speckle-nb"
DEFAULT_SERVICE_PORT = 10111
#: The hub scope a single-user server's token (and so its kernels) needs to read its own
#: user's auth_state (``GET /hub/api/users/<name>``).
AUTH_STATE_SCOPE = "admin:auth_state!user"
#: The default ``server`` role's scopes (jupyterhub/roles.py), kept when we add one.
SERVER_ROLE_SCOPES = ["users:activity!user", "access:servers!server"]


def redirect_url(public_url: str, base_url: str = "/", *, login: bool = False) -> str:
    """The one redirect URL to register on the Speckle app for this setup."""
    base = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    path = "hub/oauth_callback" if login else f"services/{SERVICE_NAME}/callback"
    return public_url.rstrip("/") + base + path


def configure(
    c: Any,
    *,
    login: bool = False,
    server_url: str | None = None,
    app_id: str | None = None,
    app_secret: str | None = None,
    public_url: str | None = None,
    service_url: str | None = None,
    service_port: int = DEFAULT_SERVICE_PORT,
) -> str:
    """Set up speckle-nb on this hub; returns (and logs) the redirect URL to register.

    Args:
        c: the config object of ``jupyterhub_config.py``.
        login: False: the ``speckle-nb`` service signs users in to Speckle from notebooks and
            holds the app secret. True: Speckle is the hub's login (``SpeckleOAuthenticator``);
            tokens live in ``auth_state`` (needs ``JUPYTERHUB_CRYPT_KEY``) and kernels read
            their own user's.
        server_url, app_id, app_secret: the Speckle server and the app registered for this
            setup; default ``SPECKLE_SERVER_URL``, ``SPECKLE_APP_ID``, ``SPECKLE_APP_SECRET``.
        public_url: the hub's public origin, for the logged redirect URL (default
            ``c.JupyterHub.public_url``).
        service_url: where user servers reach the service (default
            ``http://127.0.0.1:<service_port>``; on Kubernetes ``http://hub:<port>``).
    """
    server = normalize_server_url(server_url or server_url_setting())
    app_id = app_id or env_text(ENV_APP_ID)
    app_secret = app_secret or env_text(ENV_APP_SECRET)
    if not app_id or not app_secret:
        raise ConfigurationError(
            "speckle_nb.hub.configure needs the Speckle app's id and secret: set "
            "SPECKLE_APP_ID and SPECKLE_APP_SECRET in the hub's environment, or pass app_id= "
            "and app_secret=."
        )
    hub = c.JupyterHub
    base_url = _get(hub, "base_url", "/") or "/"
    public = public_url or _get(hub, "public_url", "") or "https://<your hub>"
    environment = dict(_get(c.Spawner, "environment", {}) or {})
    # User servers (and their kernels) get no secret, only where to turn.
    environment[ENV_SERVER_URL] = server
    for key in (ENV_APP_ID, ENV_APP_SECRET):
        environment.pop(key, None)

    if login:
        from .authenticator import SpeckleOAuthenticator  # fails early without oauthenticator

        hub.authenticator_class = SpeckleOAuthenticator
        auth = c.SpeckleOAuthenticator
        auth.speckle_server_url = server
        auth.client_id = app_id
        auth.client_secret = app_secret
        auth.enable_auth_state = True
        if not _get(c.Authenticator, "allow_all", False) and not _get(
            c.Authenticator, "allowed_users", None
        ):
            log.warning(
                "speckle-nb: nobody may log in yet: set c.Authenticator.allow_all = True or "
                "c.Authenticator.allowed_users (JupyterHub >= 5 allows no one by default)."
            )
        if not os.environ.get("JUPYTERHUB_CRYPT_KEY"):
            log.error(
                "speckle-nb: Speckle login keeps tokens in auth_state, which needs "
                "JUPYTERHUB_CRYPT_KEY in the hub's environment (`openssl rand -hex 32`)."
            )
        hub.extra_user_scopes = sorted(
            set(_get(hub, "extra_user_scopes", []) or []) | {AUTH_STATE_SCOPE}
        )
        _add_server_scope(hub, AUTH_STATE_SCOPE)
        environment["SPECKLE_NB_HUB_LOGIN"] = "1"
    else:
        url = service_url or f"http://127.0.0.1:{service_port}"
        services = [s for s in (_get(hub, "services", []) or []) if s.get("name") != SERVICE_NAME]
        services.append(
            {
                "name": SERVICE_NAME,
                "url": url,
                "command": [sys.executable, "-m", "speckle_nb.hub.service"],
                "oauth_no_confirm": True,
                "display": False,
                "environment": {
                    ENV_SERVER_URL: server,
                    ENV_APP_ID: app_id,
                    ENV_APP_SECRET: app_secret,
                },
            }
        )
        hub.services = services
        scope = f"access:services!service={SERVICE_NAME}"
        hub.extra_user_scopes = sorted(set(_get(hub, "extra_user_scopes", []) or []) | {scope})
        prefix = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        environment["SPECKLE_NB_HUB_SERVICE_URL"] = (
            url.rstrip("/") + f"{prefix}services/{SERVICE_NAME}/"
        )
    c.Spawner.environment = environment
    redirect = redirect_url(public, base_url, login=login)
    log.warning(
        "speckle-nb: register this redirect URL on the Speckle app %s at %s: %s",
        app_id,
        server,
        redirect,
    )
    return redirect


def _get(section: Any, name: str, default: Any) -> Any:
    """A config value if set (traitlets' ``Config`` makes unset ones empty sections)."""
    value = (
        section.get(name, default) if hasattr(section, "get") else getattr(section, name, default)
    )
    if type(value).__name__ == "LazyConfigValue" or (
        type(value).__name__ == "Config" and not value
    ):
        return default
    return value


def _add_server_scope(hub: Any, scope: str) -> None:
    roles = list(_get(hub, "load_roles", []) or [])
    for role in roles:
        if role.get("name") == "server":
            role["scopes"] = sorted(set(role.get("scopes", SERVER_ROLE_SCOPES)) | {scope})
            break
    else:
        roles.append({"name": "server", "scopes": [*SERVER_ROLE_SCOPES, scope]})
    hub.load_roles = roles
