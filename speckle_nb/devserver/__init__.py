"""A Speckle-compatible server on loopback, for the demo and the tests.

Faithful to ``shared/speckle-protocol.md``: the same routes, status codes and exact
messages as a real Speckle server, with switches (``DevOptions``) for the behaviour a
client must survive (latency, rate limits, faults, the unreleased S256 endpoint).

    with DevServer().running() as dev:
        dev.url, dev.state, dev.options, dev.demo_user

Importing this package is cheap; tornado and graphql-core load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import DevServer
    from .cli import run_devserver_cli
    from .models import FakeClock, TokenInfo, User
    from .options import DevOptions, RateLimit
    from .player import BrowserPlayer
    from .state import DevState

__all__ = [
    "BrowserPlayer",
    "DevOptions",
    "DevServer",
    "DevState",
    "FakeClock",
    "RateLimit",
    "TokenInfo",
    "User",
    "run_devserver_cli",
]

_WHERE = {
    "DevServer": "app",
    "run_devserver_cli": "cli",
    "DevOptions": "options",
    "RateLimit": "options",
    "BrowserPlayer": "player",
    "DevState": "state",
    "FakeClock": "models",
    "TokenInfo": "models",
    "User": "models",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
