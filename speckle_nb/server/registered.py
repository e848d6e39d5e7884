"""The redirect URL a Speckle app is registered with, and whether a browser's request fits it.

Speckle sends every sign-in of an app to its one registered redirect URL, taken verbatim
(protocol §1.3, §4.1). When the browser opened Jupyter at another address — ``localhost``
while the app is registered for ``127.0.0.1``, another port, another base URL — the sign-in
ends on a page that cannot finish it, and the notebook waits for nothing. Speckle publishes
each app's redirect URL without authentication (``app(id:) { redirectUrl }``), so ``start``
compares before the user signs in and names both URLs. One lookup per app and server, cached
like the method probe; a lookup that fails skips the comparison rather than the sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

import httpx

__all__ = [
    "MAX_REDIRECT_URL_CHARS",
    "Registered",
    "fetch_registered",
    "same_redirect",
    "too_long_message",
]

#: Speckle stores an app's redirect URL in a ``varchar(100)``: a longer one is refused at
#: registration (``appCreate`` fails), never truncated (protocol §4.1, §13.2).
MAX_REDIRECT_URL_CHARS = 100

_QUERY = "query SpeckleNbApp($id: String!) { app(id: $id) { redirectUrl } }"


@dataclass(frozen=True)
class Registered:
    """What Speckle said about the app: its redirect URL, no such app, or nothing usable."""

    kind: Literal["found", "no-app", "unknown"]
    redirect_url: str = ""


async def fetch_registered(http: httpx.AsyncClient, server_url: str, app_id: str) -> Registered:
    """Ask ``server_url`` for the app's redirect URL (one GraphQL request, no token)."""
    try:
        response = await http.post(
            f"{server_url}/graphql",
            json={"query": _QUERY, "variables": {"id": app_id}},
            headers={"Accept": "application/json"},
        )
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return Registered("unknown")
    data = body.get("data") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(data, dict) or "app" not in data:
        return Registered("unknown")
    app = data["app"]
    if app is None:
        return Registered("no-app")
    url = app.get("redirectUrl") if isinstance(app, dict) else None
    return Registered("found", url) if isinstance(url, str) and url else Registered("unknown")


def same_redirect(a: str, b: str) -> bool:
    """Whether two redirect URLs lead the browser to the same place: the host without case,
    a port equal to its scheme's default as none, the path after percent-decoding.

    The scheme is not compared: behind a TLS-terminating proxy whose headers are not trusted
    the server sees ``http`` where the browser uses ``https`` — a wrong guess of ours, not a
    sign-in that cannot work. Host, port and path differences are the ones that break it."""
    na, nb = _normal(a), _normal(b)
    return na == nb if na is not None and nb is not None else a.strip() == b.strip()


def _normal(url: str) -> tuple[str, int | None, str, str] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if port == {"http": 80, "https": 443}.get(parts.scheme.lower()):
        port = None
    return ((parts.hostname or "").lower(), port, unquote(parts.path or "/"), parts.query)


def too_long_message(url: str, *, at_least: int | None = None) -> str:
    """The problem and the fix for a redirect URL Speckle will not store (``at_least``: the
    length of the shortest URL a template ``url`` can become)."""
    length = f"at least {at_least}" if at_least is not None else str(len(url))
    return (
        f"The redirect URL {url} is {length} characters long, and Speckle accepts at most "
        f"{MAX_REDIRECT_URL_CHARS}: it refuses to register an app with it (it does not shorten "
        "it), so sign-in cannot work at this address. Make the address shorter (a shorter host "
        "name or base URL), or have a shorter URL lead to this server's speckle-nb/callback "
        "(e.g. a proxy path), register that one, and set it as c.SpeckleNB.redirect_url "
        "(SPECKLE_REDIRECT_URL)."
    )
