"""The hub setups of ``speckle_nb.hub.configure``: a real JupyterHub whose config calls it.

``service_hub`` starts a hub with ``configure(c)`` (the speckle-nb service holds the app) and
``login_hub`` one with ``configure(c, login=True)`` (Speckle is the hub's login). Both run next to
the dev server, the same way ``hubkit.Hub`` runs the user-redirect setup.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hubkit import Execution, Hub, HubBrowser, Kernel, Person, RunningCell, free_port, page_text

from speckle_nb.devserver import DevServer

CAROL = Person("carol", "carol@example.org", "carol-pass", "Carol Coder")
SERVICE_PREFIX = "/services/speckle-nb/"

SIGN_IN = (
    "import speckle_nb\n"
    "panel = speckle_nb.sign_in(wait=True, timeout={timeout})\n"
    "print(panel.state, '|', panel.user_name)"
)
#: What a test needs to look for in logs: this kernel's tokens (never printed anywhere else).
TOKENS = (
    "import speckle_nb.session as _s\n"
    "_c = _s.current_session().credentials()\n"
    "print(_c.token, _c.refresh_token or '')"
)
WHO_AM_I = "import speckle_nb\nprint(speckle_nb.client().active_user().name)"


def ensure_person(dev: DevServer, person: Person) -> None:
    if dev.state.user_by_email(person.email) is None:
        dev.state.add_user(person.email, person.password, person.speckle_name)


def service_config(dev_url: str, app: Any, service_port: int, extra: str = "") -> str:
    """The admin's lines: one call, the app's settings passed as keywords."""
    return f"""
from speckle_nb.hub import configure
configure(
    c,
    server_url={dev_url!r},
    app_id={app.id!r},
    app_secret={app.secret!r},
    service_port={service_port},
)
# The hub restarts a managed service that exits, noticed by polling it every 30 s (a value no
# config reaches): every second here, so the restart test need not wait half a minute.
import jupyterhub.services.service as _service
from traitlets import Integer as _Integer

_service._ServiceSpawner = type(
    "_ServiceSpawner", (_service._ServiceSpawner,), {{"poll_interval": _Integer(1)}}
)
{extra}"""


def start_service_hub(root: Path, dev: DevServer) -> tuple[Hub, Any]:
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    app = dev.state.register_app(
        "speckle-nb hub service",
        f"{hub_url}{SERVICE_PREFIX}callback",
        ("profile:read", "profile:email", "streams:read"),
    )
    hub = Hub.start(
        root,
        environment={},
        port=port,
        extra=service_config(dev.url, app, free_port()),
    )
    return hub, app


@dataclass
class ServiceSignIn:
    person: Person
    kernel: Kernel
    start_path: str
    authorize_url: str
    callback_url: str
    delivered: httpx.Response
    cell: Execution
    #: seconds from the browser's callback request to the kernel's cell printing the result
    callback_to_kernel: float


def sign_in_through_service(
    browser: HubBrowser,
    person: Person,
    *,
    together: threading.Barrier | None = None,
    kernel: Kernel | None = None,
) -> ServiceSignIn:
    """A notebook cell runs ``sign_in(wait=True)``; the browser opens the panel's start
    path (relative: it leads to the hub service), signs in on Speckle, delivers."""
    kernel = kernel or browser.start_kernel()
    try:
        cell = RunningCell(kernel, SIGN_IN.format(timeout=120), timeout=150)
        start_path = cell.start_path()
        start = browser.open_start(start_path)
        authorize_url = getattr(start, "next_url", None)
        assert authorize_url, f"start did not go to Speckle: {start.status_code} {page_text(start)}"
        callback_url = browser.authorize_on_speckle(authorize_url, person.email, person.password)
    except BaseException:
        if together is not None:
            together.abort()
        raise
    if together is not None:
        together.wait(timeout=120)
    began = time.monotonic()
    delivered = browser.deliver(callback_url)
    result = cell.result(timeout=150)
    took = time.monotonic() - began
    return ServiceSignIn(
        person, kernel, start_path, authorize_url, callback_url, delivered, result, took
    )


def service_pids(hub: Hub) -> list[int]:
    """The speckle-nb service processes the hub started (its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if b"speckle_nb.hub.service" in cmdline and ppid == hub.proc.pid:
            found.append(int(entry.name))
    return found


def kill_service(hub: Hub) -> int:
    (pid,) = service_pids(hub)
    os.kill(pid, signal.SIGKILL)
    return pid


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def crypt_key() -> str:
    return secrets.token_hex(32)


@dataclass
class LoginSetup:
    """A hub whose login is Speckle (``configure(c, login=True)``), next to its dev server."""

    hub: Hub
    dev: DevServer
    app: Any


def login_config(dev_url: str, app: Any) -> str:
    return f"""
from speckle_nb.hub import configure
configure(c, login=True, server_url={dev_url!r}, app_id={app.id!r}, app_secret={app.secret!r})
c.Authenticator.allow_all = True
"""


def start_login_hub(root: Path, dev: DevServer) -> LoginSetup:
    port = free_port()
    app = dev.state.register_app(
        "JupyterHub login",
        f"http://127.0.0.1:{port}/hub/oauth_callback",
        ("profile:read", "profile:email", "streams:read"),
    )
    hub = Hub.start(
        root,
        environment={},
        port=port,
        extra=login_config(dev.url, app),
        hub_env={"JUPYTERHUB_CRYPT_KEY": crypt_key()},
    )
    return LoginSetup(hub, dev, app)
