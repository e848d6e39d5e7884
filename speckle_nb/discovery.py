"""Find the Jupyter server that started this kernel, so the kernel can pick up its sign-in.

In order, each source proves it is *our* server:

1. ``SPECKLE_NB_JUPYTER_URL`` — published by the speckle-nb extension once its server is
   bound, inherited by every kernel the server starts — when ``SPECKLE_NB_JUPYTER_PID`` equals
   ``JPY_PARENT_PID`` (a kernel started by something else may inherit the variables too);
2. the Jupyter runtime files (``jpserver-*.json``): the entry whose ``pid`` is
   ``JPY_PARENT_PID``. ``JPY_PARENT_PID`` alone proves nothing: jupyter_client sets it for every
   kernel it starts, also from VS Code or nbclient;
3. ``JUPYTERHUB_SERVICE_URL``: a JupyterHub single-user server's own internal URL, prefix
   included, which its kernels inherit.

Importing this module imports nothing from Jupyter; ``jupyter_core`` (light) is imported only
when the runtime files are read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ._names import ENV_JUPYTER_PID, ENV_JUPYTER_URL

__all__ = ["ENV_JUPYTER_PID", "ENV_JUPYTER_URL", "JupyterServer", "find_jupyter_server"]

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}  # noqa: S104 - names to replace, not a bind


@dataclass(frozen=True)
class JupyterServer:
    """Where the kernel reaches its Jupyter server: ``url`` includes the base URL and ends
    with ``/``; ``source`` says how it was found ("environment", "runtime-file", "jupyterhub")."""

    url: str
    source: str


def find_jupyter_server(
    environ: Mapping[str, str] | None = None, *, runtime_dir: str | None = None
) -> JupyterServer | None:
    """The Jupyter server that started this kernel, or None (VS Code, Colab, IPython, …)."""
    env = os.environ if environ is None else environ
    parent = env.get("JPY_PARENT_PID", "").strip()
    published = env.get(ENV_JUPYTER_URL, "").strip()
    if published and parent and env.get(ENV_JUPYTER_PID, "").strip() == parent:
        return JupyterServer(_with_slash(published), "environment")
    if parent.isdigit():
        url = _runtime_file_url(int(parent), runtime_dir, env)
        if url:
            return JupyterServer(url, "runtime-file")
    hub = env.get("JUPYTERHUB_SERVICE_URL", "").strip()
    if hub:
        try:
            return JupyterServer(_reachable(hub), "jupyterhub")
        except ValueError:  # not a URL (a bad port, an unclosed IPv6 bracket)
            return None
    return None


def _runtime_file_url(pid: int, runtime_dir: str | None, env: Mapping[str, str]) -> str | None:
    """The ``url`` of the runtime file ``jpserver-*.json`` written by process ``pid``."""
    if runtime_dir is None:
        runtime_dir = env.get("JUPYTER_RUNTIME_DIR") or _default_runtime_dir()
    try:
        candidates = sorted(Path(runtime_dir).glob("jpserver-*.json"))
    except OSError:
        return None
    for path in candidates:
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being written, or not ours to read
        if not isinstance(info, dict) or info.get("pid") != pid:
            continue
        url = info.get("url")
        try:
            if isinstance(url, str) and urlsplit(url).scheme in ("http", "https"):
                return _reachable(url)  # (a UNIX-socket server has an http+unix URL: skipped)
        except ValueError:
            continue
    return None


def _default_runtime_dir() -> str:
    from jupyter_core.paths import jupyter_runtime_dir

    return str(jupyter_runtime_dir())


def _reachable(url: str) -> str:
    """``url`` with a wildcard host (``0.0.0.0``, empty) replaced by the loopback address."""
    parts = urlsplit(url.strip())
    port = parts.port  # raises ValueError for a port that is not a number
    host = parts.hostname or ""
    if host in _WILDCARD_HOSTS:
        loopback = "[::1]" if host == "::" else "127.0.0.1"
        netloc = f"{loopback}:{port}" if port else loopback
        parts = parts._replace(netloc=netloc)
    return _with_slash(urlunsplit(parts))


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
