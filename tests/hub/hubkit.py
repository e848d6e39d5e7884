"""A real JupyterHub on loopback for the hub tests: its config, its process, people and kernels.

Nothing here is a mock: ``Hub`` runs ``python -m jupyterhub`` (which starts npm's
``configurable-http-proxy``), DummyAuthenticator and the simple local spawner start real
``jupyterhub-singleuser`` processes, and ``Kernel`` talks to a kernel that the single-user
server started (so it inherits that server's environment, as in real use).

``HubBrowser`` is an HTTP client playing one person's browser at the hub: its own cookie jar,
the ``Sec-Fetch-*`` headers a browser sends (JupyterHub's XSRF rules key on them) and the
``X-XSRFToken`` header for API calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from speckle_nb.devserver import BrowserPlayer, DevServer

#: Every hub user logs in with this password (DummyAuthenticator).
HUB_PASSWORD = "hub-pass"
SERVICE_NAME = "speckle-nb-tests"
PROXY = "configurable-http-proxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proxy_missing_message() -> str | None:
    """Why the hub cannot start here, or None when npm's proxy is on PATH."""
    if shutil.which(PROXY):
        return None
    return (
        f"`{PROXY}` is not on PATH: JupyterHub needs npm's proxy to route /user/<name>/. "
        f"Install it with `npm install -g {PROXY}` (scripts/test.sh does this)."
    )


def hub_config(
    *,
    root: Path,
    port: int,
    hub_port: int,
    proxy_api_port: int,
    service_token: str,
    proxy_token: str,
    environment: Mapping[str, str],
    named_environment: Mapping[str, Mapping[str, str]],
    extra: str = "",
) -> str:
    """A ``jupyterhub_config.py`` for one test hub, everything kept under ``root``.

    ``environment`` goes to every single-user server; ``named_environment[name]`` overrides
    it for the named servers called ``name`` (the per-server-name Speckle app of the guide).
    """
    args = ["--allow-root"] if os.geteuid() == 0 else []
    # The notebook frontends expose the app to the page (the Chromium run waits on its kernel).
    args += ["--LabApp.expose_app_in_browser=True"]
    return f"""\
# Written by tests/hub: a JupyterHub on loopback for speckle-nb's hub tests.
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = {f"sqlite:///{root / 'jupyterhub.sqlite'}"!r}
c.JupyterHub.cookie_secret_file = {str(root / "jupyterhub_cookie_secret")!r}
c.JupyterHub.pid_file = {str(root / "jupyterhub.pid")!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.allow_named_servers = True
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = {proxy_token!r}
c.ConfigurableHTTPProxy.pid_file = {str(root / "proxy.pid")!r}

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {HUB_PASSWORD!r}
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(root / "home" / "{username}")!r}
# The interpreter running the tests, not a `jupyterhub-singleuser` found on PATH (a pyenv
# shim would resolve its version from the user's temporary HOME).
c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60

# Every server gets the Speckle app settings; a named server whose name has its own app
# gets that app's id, secret and redirect URL instead.
_speckle = {dict(environment)!r}
_speckle_by_server_name = {{k: dict(v) for k, v in {dict(named_environment)!r}.items()}}


def _speckle_setting(key):
    def value(spawner):
        return _speckle_by_server_name.get(spawner.name, {{}}).get(key, _speckle.get(key, ""))

    return value


_keys = set(_speckle).union(*_speckle_by_server_name.values())
c.Spawner.environment = {{key: _speckle_setting(key) for key in sorted(_keys)}}

c.JupyterHub.services = [{{"name": {SERVICE_NAME!r}, "api_token": {service_token!r}}}]
c.JupyterHub.load_roles = [
    {{
        "name": {SERVICE_NAME!r},
        "scopes": ["admin:users", "admin:servers", "admin:server_state", "list:users", "tokens"],
        "services": [{SERVICE_NAME!r}],
    }}
]
{extra}"""


@dataclass
class Hub:
    """One running JupyterHub (and its proxy and single-user servers)."""

    root: Path
    url: str
    service_token: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _pids: set[int] = field(default_factory=set)

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        root: Path,
        *,
        environment: Mapping[str, str],
        named_environment: Mapping[str, Mapping[str, str]] | None = None,
        port: int | None = None,
        extra: str = "",
        hub_env: Mapping[str, str] | None = None,
    ) -> Hub:
        root.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        service_token = secrets.token_hex(16)
        config = hub_config(
            root=root,
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            service_token=service_token,
            proxy_token=secrets.token_hex(16),
            environment=environment,
            named_environment=named_environment or {},
            extra=extra,
        )
        (root / "jupyterhub_config.py").write_text(config)
        log_path = root / "hub.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        env.update(hub_env or {})
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(root / "jupyterhub_config.py")],
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        hub = cls(root, f"http://127.0.0.1:{port}", service_token, proc, log_path)
        try:
            hub.wait_healthy()
        except BaseException:
            hub.stop()
            raise
        return hub

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterHub exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"JupyterHub not healthy after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop every single-user server through the API, then the hub; kill leftovers by pid."""
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self._stop_servers()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        pids = set(self._pids)
        with contextlib.suppress(OSError, ValueError):
            pids.add(int((self.root / "proxy.pid").read_text().strip()))
        for pid in pids:
            if _is_ours(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def _stop_servers(self) -> None:
        users = self.api("GET", "/users", params={"include_stopped_servers": "1"}).json()
        paths = []
        for user in users:
            for name, server in user.get("servers", {}).items():
                self.remember_pid(server)
                paths.append(f"/users/{quote(user['name'])}/servers/{quote(name)}")
        # Each DELETE waits for its server to stop (about a second): stop them all at once.
        with ThreadPoolExecutor(max(1, len(paths))) as pool:
            list(pool.map(lambda path: self.api("DELETE", path), paths))
        deadline = time.monotonic() + 15
        while paths and time.monotonic() < deadline:
            users = self.api("GET", "/users").json()
            if not any(u.get("servers") for u in users):
                return
            time.sleep(0.2)

    def remember_pid(self, server: Mapping[str, Any]) -> None:
        pid = (server.get("state") or {}).get("pid")
        if pid:
            self._pids.add(int(pid))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- admin API (the tests' service token) ----------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"token {self.service_token}"}
        response = httpx.request(
            method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs
        )
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise AssertionError(f"{method} /hub/api{path}: {response.status_code} {response.text}")
        return response

    def server_model(self, user: str, server_name: str = "") -> dict[str, Any] | None:
        model = self.api("GET", f"/users/{quote(user)}").json()
        server: dict[str, Any] | None = model.get("servers", {}).get(server_name)
        if server:
            self.remember_pid(server)
        return server

    def wait_ready(self, user: str, server_name: str = "", timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server_model(user, server_name)
            if server and server.get("ready"):
                return server
            time.sleep(0.2)
        raise TimeoutError(f"{user}'s server {server_name!r} not ready:\n{self.log_tail()}")


def _is_ours(pid: int) -> bool:
    """Is ``pid`` still a single-user server or proxy (not a stranger that reused the pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"jupyterhub.singleuser" in cmdline or PROXY.encode() in cmdline


# -- the people and the setup the scenarios share -------------------------------------------
#: Least privilege for "sign in, then read my projects": who am I (name, email), and read
#: access to projects, models and versions. Add streams:write only where notebooks send data.
APP_SCOPES = ("profile:read", "profile:email", "streams:read")
#: The named server with a Speckle app of its own, and one without.
NAMED_WITH_APP = "gpu"
NAMED_WITHOUT_APP = "scratch"


@dataclass(frozen=True)
class Person:
    hub_name: str
    email: str
    password: str
    speckle_name: str


ALICE = Person("alice", "alice@example.org", "alice-pass", "Alice Archer")
BOB = Person("bob", "bob@example.org", "bob-pass", "Bob Builder")


@dataclass
class HubSetup:
    """The running hub, the dev server, and the Speckle apps registered for the hub."""

    hub: Hub
    dev: DevServer
    app: Any
    gpu_app: Any

    @property
    def redirect_url(self) -> str:
        """The redirect URL registered on the hub's app (what the admin guide says)."""
        return f"{self.hub.url}/hub/user-redirect/speckle-nb/callback"


# -- a person's browser at the hub -----------------------------------------------------------
NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"}


def _hidden_xsrf(html: str) -> str:
    match = re.search(r'name="_xsrf"\s+value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"\s+name="_xsrf"', html
    )
    if not match:
        raise AssertionError(f"no _xsrf field in the hub's login page:\n{html[:2000]}")
    return match.group(1)


class HubBrowser:
    """One person's browser at the hub: a cookie jar, logged in as ``name``."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.http = httpx.Client(timeout=30, follow_redirects=False)
        self.prefix = f"/user/{quote(name, safe='@~')}/"  # as JupyterHub escapes it
        #: The same person's browser on the Speckle site (its own cookies for that host).
        self.speckle = BrowserPlayer(honour_refresh_delay=False)

    def close(self) -> None:
        self.http.close()
        self.speckle.close()

    # -- navigation ------------------------------------------------------------------------
    def navigate(
        self, url: str, *, stop: Callable[[str], bool] | None = None, site: str = "none"
    ) -> httpx.Response:
        """GET ``url`` and follow redirects like a browser; stop early where ``stop(url)``.

        ``site`` is the ``Sec-Fetch-Site`` of the first request ("cross-site" when another
        site's redirect brought the browser here). The hops are kept on the response
        (``.history``) so tests can look at them.
        """
        url = urljoin(self.hub.url + "/", url)
        history: list[httpx.Response] = []
        for _ in range(20):
            response = self.http.get(url, headers={**NAVIGATE, "Sec-Fetch-Site": site})
            target = response.headers.get("location") if response.is_redirect else None
            # speckle-nb's start page moves on by a meta refresh (no 302 in any log).
            target = target or _meta_refresh_target(response)
            if not target:
                response.history = history
                return response
            history.append(response)
            url = urljoin(url, target)
            if stop and stop(url):
                response.history = history[:-1]
                response.next_url = url  # type: ignore[attr-defined]
                return response
        raise AssertionError(f"too many redirects from {history[0].url}")

    def login(self) -> None:
        """Log in on the hub's form (login starts the default server)."""
        page = self.http.get(f"{self.hub.url}/hub/login", headers=NAVIGATE)
        assert page.status_code == 200, page.text
        form = {"username": self.name, "password": HUB_PASSWORD, "_xsrf": _hidden_xsrf(page.text)}
        headers = {**NAVIGATE, "Sec-Fetch-Site": "same-origin", "Origin": self.hub.url}
        response = self.http.post(f"{self.hub.url}/hub/login", data=form, headers=headers)
        assert response.is_redirect, f"login as {self.name}: {response.status_code} {response.text}"
        # The browser follows to /hub/spawn, which starts the default server.
        landing = self.navigate(response.headers["location"])
        assert landing.status_code == 200, f"after login: {landing.url} {landing.status_code}"

    def login_only(self) -> None:
        """Log in on the hub's form without following on to the spawn (no server started)."""
        page = self.http.get(f"{self.hub.url}/hub/login", headers=NAVIGATE)
        assert page.status_code == 200, page.text
        form = {"username": self.name, "password": HUB_PASSWORD, "_xsrf": _hidden_xsrf(page.text)}
        headers = {**NAVIGATE, "Sec-Fetch-Site": "same-origin", "Origin": self.hub.url}
        response = self.http.post(f"{self.hub.url}/hub/login", data=form, headers=headers)
        assert response.is_redirect, f"login as {self.name}: {response.status_code} {response.text}"

    def open_server(self, server_name: str = "") -> str:
        """Wait for the server, then open it (the hub's OAuth hop sets its cookies)."""
        self.hub.wait_ready(self.name, server_name)
        prefix = self.server_prefix(server_name)
        # A page view goes through the hub's OAuth hop (the server's login cookie) and sets
        # the single-user server's own `_xsrf` cookie (API calls need both).
        page = self.navigate(f"{prefix}lab")
        assert page.status_code == 200, f"{page.url}: {page.status_code}"
        assert self.xsrf(prefix), "the single-user server set no _xsrf cookie"
        return prefix

    def server_prefix(self, server_name: str = "") -> str:
        return self.prefix + (f"{quote(server_name)}/" if server_name else "")

    def cookies_for(self, path: str) -> dict[str, str]:
        """The cookies the browser sends to ``path`` (per name, the longest cookie path wins)."""
        chosen: dict[str, tuple[int, str]] = {}
        for c in self.http.cookies.jar:
            if c.value is None or not path.startswith(c.path):
                continue
            if c.name not in chosen or len(c.path) > chosen[c.name][0]:
                chosen[c.name] = (len(c.path), c.value)
        return {name: value for name, (_, value) in chosen.items()}

    def xsrf(self, path: str) -> str | None:
        return self.cookies_for(path).get("_xsrf")

    def cookie_header(self, path: str) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies_for(path).items())

    # -- the single-user server's REST API, as the page's fetch() calls it -----------------
    def server_api(
        self, method: str, path: str, *, server_name: str = "", **kwargs: Any
    ) -> httpx.Response:
        prefix = self.server_prefix(server_name)
        headers = {
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Site": "same-origin",
            "X-XSRFToken": self.xsrf(prefix) or "",
            **kwargs.pop("headers", {}),
        }
        return self.http.request(
            method, f"{self.hub.url}{prefix}{path.lstrip('/')}", headers=headers, **kwargs
        )

    # -- signing in to Speckle, as the panel's button and the person do ------------------------
    def open_start(self, start_path: str, server_name: str = "") -> httpx.Response:
        """Open the panel's start URL (``{server prefix}{start_path}``) like the button does.

        Follows redirects while they stay on the hub; ``.next_url`` is then the first URL
        elsewhere (Speckle's authorize page), unless the server answered a page itself.
        """
        url = self.server_prefix(server_name) + start_path
        return self.navigate(url, stop=lambda u: not u.startswith(self.hub.url + "/"))

    def authorize_on_speckle(self, authorize_url: str, email: str, password: str) -> str:
        """Log in on the Speckle site if asked, press Authorize; return the redirect URL
        Speckle sends the browser to (the callback, with ``access_code``), not yet opened."""
        return self.speckle.sign_in_and_consent(authorize_url, email, password)

    def deliver(self, callback_url: str) -> httpx.Response:
        """Follow Speckle's redirect to the callback (a cross-site top-level navigation)."""
        return self.navigate(callback_url, site="cross-site")

    def start_kernel(self, server_name: str = "") -> Kernel:
        response = self.server_api(
            "POST", "api/kernels", server_name=server_name, json={"name": "python3"}
        )
        assert response.status_code == 201, f"start kernel: {response.status_code} {response.text}"
        return Kernel(self, response.json()["id"], server_name)


# -- a kernel, driven over the single-user server's websocket -------------------------------
@dataclass
class Execution:
    """What one cell produced: stdout, the error (``ename: evalue``) and every iopub message."""

    stdout: str = ""
    error: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)

    def comm_opens(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] == "comm_open"]


class Kernel:
    def __init__(self, browser: HubBrowser, kernel_id: str, server_name: str = "") -> None:
        self.browser = browser
        self.id = kernel_id
        self.server_name = server_name
        self.session = uuid.uuid4().hex

    def execute(
        self,
        code: str,
        *,
        timeout: float = 60,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> Execution:
        """Run ``code`` in the kernel; ``on_message`` sees each iopub message as it arrives.

        Blocks the calling thread; the websocket runs on an event loop in a thread of its own
        (the caller's thread may hold another loop: Playwright's), so two people's cells run at
        the same time from two threads.
        """
        with ThreadPoolExecutor(1, thread_name_prefix=f"kernel-{self.browser.name}") as pool:
            return pool.submit(asyncio.run, self._execute(code, timeout, on_message)).result()

    async def _execute(
        self,
        code: str,
        timeout: float,
        on_message: Callable[[dict[str, Any]], None] | None,
    ) -> Execution:
        browser = self.browser
        prefix = browser.server_prefix(self.server_name)
        ws_url = browser.hub.url.replace("http://", "ws://", 1)
        url = f"{ws_url}{prefix}api/kernels/{self.id}/channels?session_id={self.session}"
        request = HTTPRequest(
            url,
            headers={
                "Cookie": browser.cookie_header(prefix),
                "Sec-Fetch-Mode": "websocket",
                "Sec-Fetch-Site": "same-origin",
            },
            request_timeout=timeout,
            connect_timeout=30,
        )
        conn = await websocket_connect(request)
        try:
            msg_id = uuid.uuid4().hex
            conn.write_message(json.dumps(self._execute_request(msg_id, code)))
            result = Execution()
            replied = idle = False
            deadline = asyncio.get_running_loop().time() + timeout
            while not (replied and idle):
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TimeoutError(f"cell did not finish in {timeout} s: {code!r}")
                raw = await asyncio.wait_for(conn.read_message(), remaining)
                if raw is None:
                    raise ConnectionError(f"kernel websocket closed: {conn.close_reason}")
                msg = _decode(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                msg_type = msg["msg_type"]
                if msg["channel"] == "shell" and msg_type == "execute_reply":
                    replied = True
                    continue
                if msg["channel"] != "iopub":
                    continue
                result.messages.append(msg)
                if on_message:
                    on_message(msg)
                content = msg["content"]
                if msg_type == "stream" and content.get("name") == "stdout":
                    result.stdout += content["text"]
                elif msg_type == "error":
                    result.error = f"{content['ename']}: {content['evalue']}"
                elif msg_type == "status" and content.get("execution_state") == "idle":
                    idle = True
            return result
        finally:
            # close() only starts the closing handshake, and it drops conn.protocol: take the
            # stream first and close its socket inside this event loop, which ends with this
            # call (else the socket is left for the GC: a ResourceWarning, an error here).
            stream = conn.protocol.stream if conn.protocol is not None else None
            conn.close()
            if stream is not None:
                stream.close()
            await asyncio.sleep(0)

    def _execute_request(self, msg_id: str, code: str) -> dict[str, Any]:
        return {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": self.browser.name,
                "session": self.session,
                "date": datetime.now(timezone.utc).isoformat(),
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }

    def shutdown(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.browser.server_api(
                "DELETE", f"api/kernels/{self.id}", server_name=self.server_name
            )


def start_path_of(msg: Mapping[str, Any]) -> str | None:
    """The panel's ``start_path`` trait when a widget comm message carries it (non-secret)."""
    if msg.get("msg_type") not in ("comm_open", "comm_msg"):
        return None
    state = (msg["content"].get("data") or {}).get("state") or {}
    path = state.get("start_path")
    return str(path) if path else None


class RunningCell:
    """A cell running in its own thread; the panel's start path is read from its comm traffic."""

    def __init__(self, kernel: Kernel, code: str, *, timeout: float) -> None:
        self._paths: queue.Queue[str] = queue.Queue()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"cell-{kernel.browser.name}")
        self._future = self._pool.submit(
            kernel.execute, code, timeout=timeout, on_message=self._watch
        )
        self._pool.shutdown(wait=False)

    def _watch(self, msg: dict[str, Any]) -> None:
        path = start_path_of(msg)
        if path:
            self._paths.put(path)

    def start_path(self, timeout: float = 30) -> str:
        """The first start path the panel published (raises if the cell failed first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self._paths.get(timeout=0.1)
            except queue.Empty:
                if self._future.done():
                    out = self._future.result()
                    raise AssertionError(
                        f"the cell ended without a start path: {out.error}"
                    ) from None
        raise TimeoutError("the panel published no start path")

    def result(self, timeout: float = 60) -> Execution:
        return self._future.result(timeout)


def page_text(response: httpx.Response) -> str:
    """The visible words of one of the extension's small pages (title and message)."""
    text = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", response.text)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())


def _decode(raw: str | bytes) -> dict[str, Any]:
    """A message in Jupyter's default websocket format (binary frames carry buffers)."""
    if isinstance(raw, str):
        return dict(json.loads(raw))
    nbufs = int.from_bytes(raw[:4], "big")
    offsets = [int.from_bytes(raw[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(nbufs)]
    return dict(json.loads(raw[offsets[0] : offsets[1] if nbufs > 1 else None]))


def hops(response: httpx.Response) -> list[str]:
    """The paths (with query) a navigation went through, for assertions on redirects."""
    urls = [str(r.url) for r in response.history] + [str(response.url)]
    return [urlsplit(u).path + (f"?{urlsplit(u).query}" if urlsplit(u).query else "") for u in urls]


def _meta_refresh_target(response: httpx.Response) -> str | None:
    """The URL of an immediate ``<meta http-equiv="refresh">``, as a browser follows it."""
    if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
        return None
    match = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', response.text)
    return html.unescape(match.group(1)) if match else None
