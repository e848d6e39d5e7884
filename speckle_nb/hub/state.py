"""What one ``speckle-nb`` hub service process holds: its settings and its shared state.

``ServiceSettings.from_env`` reads what JupyterHub gives a managed service (and takes the app
secret out of the environment once read); ``State`` is what every handler of the process
shares: the settings, the sign-ins in flight (``FlowStore``), an instance id, one connection
pool to Speckle. ``service.py`` serves the routes with them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

import httpx

from .. import errors
from .._names import ENV_APP_ID, ENV_APP_SECRET, env_text, server_url_setting
from ..oauth import App
from .flows import FlowStore

__all__ = ["ServiceSettings", "State"]


@dataclass
class ServiceSettings:
    """What the service needs, from JupyterHub's environment for managed services."""

    app: App = field(repr=False)
    prefix: str
    bind_url: str
    api_token: str = field(repr=False)

    @classmethod
    def from_env(cls) -> ServiceSettings:
        secret = os.environ.pop(ENV_APP_SECRET, "").strip()  # read once, gone from the env
        app_id = env_text(ENV_APP_ID)
        if not app_id or not secret:
            raise errors.ConfigurationError(
                "speckle-nb service: SPECKLE_APP_ID and SPECKLE_APP_SECRET must be set in the "
                "service's environment (speckle_nb.hub.configure passes the hub's on)."
            )
        server = server_url_setting()
        return cls(
            app=App(server, app_id, secret),
            prefix=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/speckle-nb/"),
            bind_url=os.environ["JUPYTERHUB_SERVICE_URL"],
            api_token=os.environ["JUPYTERHUB_API_TOKEN"],
        )


class _SharedTransport(httpx.AsyncBaseTransport):
    """One connection pool (and one TLS context) for every call to Speckle: building an
    httpx client costs ~0.1 s of CPU, which 50 sign-ins at once would otherwise queue on."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Kept open when a client using it closes: it lives as long as the process."""


class State:
    """Shared by the handlers of one service process."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.flows = FlowStore()
        self.instance = secrets.token_hex(8)  # a restarted process answers with another
        self.transport = _SharedTransport()

    @property
    def app(self) -> App:
        return self.settings.app
