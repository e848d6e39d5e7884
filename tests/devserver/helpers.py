"""Shared helpers for the dev server's own tests (plain httpx, real loopback HTTP)."""

from __future__ import annotations

import re

from speckle_nb.devserver import DevServer
from speckle_nb.devserver.state import App

HEX42 = re.compile(r"^[0-9a-f]{42}$")
CHALLENGE = "Xk3-plain_challenge.0123456789abcdefghijklmnop"


def mint(dev: DevServer, app: App, challenge: str = CHALLENGE) -> str:
    """An access code for the demo user, as if they had just pressed Authorize."""
    return dev.state.mint_access_code(app.id, dev.demo_user.id, challenge)


def exchange_body(app: App, code: str, challenge: str = CHALLENGE) -> dict[str, str]:
    return {"appId": app.id, "appSecret": app.secret, "accessCode": code, "challenge": challenge}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw_http(url: str, request: bytes) -> bytes:
    """Send bytes an HTTP client library would refuse to send (e.g. ``Bearer `` with a
    trailing space) and return the raw answer."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "localhost", parts.port or 80), 5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
