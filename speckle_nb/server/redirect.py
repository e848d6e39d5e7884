"""Which redirect URL the Speckle app must have registered, derived without I/O.

A Speckle app has exactly one redirect URL, and Speckle appends ``?access_code=`` to it. In
order of precedence the extension expects:

1. ``c.SpeckleNB.redirect_url`` (``SPECKLE_REDIRECT_URL``), verbatim;
2. under JupyterHub, ``{public hub URL}user-redirect/speckle-nb/callback``: the hub forwards each
   user's browser to their own server's callback, query string kept. The public origin is
   ``JUPYTERHUB_PUBLIC_HUB_URL`` when the hub sets ``public_url``, else the origin the browser
   used for this request;
3. otherwise ``{origin}{base_url}speckle-nb/callback``.

Only (1), and (2) with a public hub URL, are known before a browser has made a request: start-up
logs a template for the rest and ``GET speckle-nb/status`` answers the exact URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from jupyter_server.utils import url_path_join

__all__ = [
    "CALLBACK_PATH",
    "HubEnv",
    "RedirectURL",
    "derive_redirect_url",
    "hub_env",
    "named_server_problem",
    "request_origin",
    "startup_hint",
]

#: Relative to the Jupyter server's ``base_url`` (and to ``/hub/user-redirect/``).
CALLBACK_PATH = "speckle-nb/callback"


@dataclass(frozen=True)
class HubEnv:
    """What a JupyterHub single-user server learns from its environment."""

    #: The hub's base URL without ``hub/`` (``JUPYTERHUB_BASE_URL``, usually ``/``).
    base_url: str
    #: ``JUPYTERHUB_PUBLIC_HUB_URL`` (``https://hub.example.org/hub/``), usually empty.
    public_hub_url: str
    #: ``JUPYTERHUB_SERVER_NAME``: empty for the user's default server.
    server_name: str


def hub_env(environ: Mapping[str, str]) -> HubEnv | None:
    """The JupyterHub settings of this server, or None outside JupyterHub."""
    if not environ.get("JUPYTERHUB_SERVICE_PREFIX") and not environ.get("JUPYTERHUB_API_URL"):
        return None
    base = environ.get("JUPYTERHUB_BASE_URL") or "/"
    return HubEnv(
        base_url=base if base.endswith("/") else base + "/",
        public_hub_url=environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "").strip(),
        server_name=environ.get("JUPYTERHUB_SERVER_NAME", "").strip(),
    )


def _first(value: str | None) -> str:
    """The client-most entry of a comma-separated forwarded header."""
    return (value or "").split(",")[0].strip()


def _forwarded_pairs(value: str | None) -> dict[str, str]:
    """``Forwarded: for=…;proto=https;host=hub.example.org`` (RFC 7239), first element only."""
    pairs: dict[str, str] = {}
    for part in _first(value).split(";"):
        key, sep, val = part.partition("=")
        if sep:
            pairs[key.strip().lower()] = val.strip().strip('"')
    return pairs


def request_origin(
    protocol: str, host: str, headers: Mapping[str, str], *, trust_forwarded: bool
) -> str:
    """``scheme://host[:port]`` the browser used, honouring proxy headers only when trusted.

    ``protocol`` and ``host`` are tornado's ``request.protocol`` and ``request.host``.
    Forwarded values that do not look like a scheme or a host are ignored.
    """
    scheme, netloc = protocol.lower(), host
    if trust_forwarded:
        fwd = _forwarded_pairs(headers.get("Forwarded"))
        proto = (
            fwd.get("proto")
            or _first(headers.get("X-Forwarded-Proto"))
            or _first(headers.get("X-Scheme"))
        ).lower()
        if proto in ("http", "https"):
            scheme = proto
        forwarded_host = fwd.get("host") or _first(headers.get("X-Forwarded-Host"))
        if forwarded_host and _is_host(forwarded_host):
            netloc = forwarded_host
    if scheme not in ("http", "https"):
        scheme = "http"
    return f"{scheme}://{netloc.lower()}"


def _is_host(value: str) -> bool:
    try:
        parts = urlsplit(f"http://{value}")
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    return bool(parts.hostname) and parts.netloc == value and not parts.path


@dataclass(frozen=True)
class RedirectURL:
    url: str
    #: Where it came from, for the panel and the docs.
    kind: Literal["configured", "jupyterhub", "server"]


def derive_redirect_url(
    *, configured: str, base_url: str, origin: str, hub: HubEnv | None
) -> RedirectURL:
    """The redirect URL a browser request at ``origin`` implies (see the module docstring)."""
    if configured:
        return RedirectURL(configured, "configured")
    if hub is not None:
        if hub.public_hub_url:
            return RedirectURL(_hub_redirect(hub.public_hub_url), "jupyterhub")
        return RedirectURL(
            _hub_redirect(origin + url_path_join(hub.base_url, "hub/")), "jupyterhub"
        )
    return RedirectURL(origin + url_path_join(base_url, CALLBACK_PATH), "server")


def _hub_redirect(hub_url: str) -> str:
    return url_path_join(hub_url, "user-redirect", CALLBACK_PATH)


def startup_hint(*, configured: str, base_url: str, hub: HubEnv | None) -> tuple[str, bool]:
    """``(url or template, exact)`` for the start-up log, before any browser request."""
    if configured or (hub is not None and hub.public_hub_url):
        return derive_redirect_url(
            configured=configured, base_url=base_url, origin="", hub=hub
        ).url, True
    if hub is not None:
        return "https://<your hub's public host>" + _hub_redirect(
            url_path_join(hub.base_url, "hub/")
        ), False
    return "<origin where your browser opens Jupyter>" + url_path_join(
        base_url, CALLBACK_PATH
    ), False


def named_server_problem(*, configured: str, hub: HubEnv | None) -> str | None:
    """Why sign-in cannot work on a named JupyterHub server without an explicit redirect URL."""
    if configured or hub is None or not hub.server_name:
        return None
    return (
        f"This is the named JupyterHub server {hub.server_name!r}. Speckle sends every sign-in "
        "to one registered redirect URL, and JupyterHub's /hub/user-redirect/ forwards it to "
        "the user's *default* server, not this one, so a sign-in started here would end on the "
        "wrong server. Use your default server, or ask the administrator to register one "
        "Speckle app for every user's server of this name, with the redirect URL "
        f"<hub>/hub/user-redirect/{quote(hub.server_name, safe='')}/{CALLBACK_PATH}, and set it "
        "as SPECKLE_REDIRECT_URL (or c.SpeckleNB.redirect_url) for servers of this name."
    )
