"""Sign in to Speckle from a Jupyter notebook and get a ready GraphQL client.

    import speckle_nb
    speckle_nb.sign_in()                 # click "Sign in to Speckle"
    speckle_nb.client().active_user()    # a preconfigured GraphQL client

``import speckle_nb`` runs in every kernel start, so it imports only the error tree and
the value objects; everything heavier (the panel, the server extension, httpx clients,
specklepy) loads on first use through ``__getattr__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .credentials import Credentials, User
from .errors import (
    AuthError,
    ConfigurationError,
    ForbiddenError,
    GraphQLError,
    InvalidTokenError,
    LogoutError,
    MissingScopeError,
    NotSignedInError,
    RateLimitedError,
    ServerError,
    SignInCancelledError,
    SignInDeniedError,
    SignInError,
    SignInExpiredError,
    SignInSupersededError,
    SignInTimeoutError,
    SpeckleError,
    TokenExchangeError,
    TransportError,
    UnauthorizedError,
    WorkspaceSsoError,
)

if TYPE_CHECKING:
    from .graphql import AsyncSpeckleClient, SpeckleClient
    from .session import client, sign_out, use_token
    from .signin import sign_in
    from .widget import SignInPanel

__version__ = "0.1.0"

# name -> module that defines it; imported on first attribute access.
_LAZY = {
    "sign_in": ".signin",
    "client": ".session",
    "use_token": ".session",
    "sign_out": ".session",
    "SpeckleClient": ".graphql",
    "AsyncSpeckleClient": ".graphql",
    "SignInPanel": ".widget",
}

__all__ = [
    "AsyncSpeckleClient",
    "AuthError",
    "ConfigurationError",
    "Credentials",
    "ForbiddenError",
    "GraphQLError",
    "InvalidTokenError",
    "LogoutError",
    "MissingScopeError",
    "NotSignedInError",
    "RateLimitedError",
    "ServerError",
    "SignInCancelledError",
    "SignInDeniedError",
    "SignInError",
    "SignInExpiredError",
    "SignInPanel",
    "SignInSupersededError",
    "SignInTimeoutError",
    "SpeckleClient",
    "SpeckleError",
    "TokenExchangeError",
    "TransportError",
    "UnauthorizedError",
    "User",
    "WorkspaceSsoError",
    "__version__",
    "client",
    "sign_in",
    "sign_out",
    "use_token",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speckle_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Jupyter server asks this to find the extension (enabled by ``jupyter-config/``)."""
    from .server.app import SpeckleNB

    return [{"module": "speckle_nb", "app": SpeckleNB}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext speckle_nb`` registers ``%speckle_token``."""
    from .magics import load_ipython_extension as load

    load(ipython)
