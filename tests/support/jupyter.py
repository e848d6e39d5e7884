"""Start a real Jupyter server (JupyterLab 4, Notebook 7 or a bare Jupyter server) for a test.

No Playwright here: the kernel-level and hub suites use this module as well.

    with JupyterServer("lab", root_dir=tmp, log_path=artifacts("lab") / "jupyter.log",
                       env={"SPECKLE_SERVER_URL": dev.url}).running() as jp:
        jp.page_url("notebooks/x.ipynb")   # the frontend's URL for a notebook, token included
        jp.api("GET", "api/sessions")      # a REST call with the server's token

The server runs as a subprocess on ``127.0.0.1`` with a free port, a random token, a non-root
base URL (``/a%40b/`` by default, the one pytest-jupyter uses: it catches unescaped base URLs),
``--allow-root`` when we are root, the app exposed as ``window.jupyterapp``, the news toast off,
and its own settings, workspaces, runtime, config and IPython dirs, so nothing from the developer's
home leaks in and parallel runs do not share state. Its stdout and stderr go to ``log_path``,
which stays behind after the test (``artifacts/`` is ignored by git).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Where tests leave screenshots and server logs; ``artifacts/`` is in ``.gitignore``.
ARTIFACTS = Path(os.environ.get("SPECKLE_NB_ARTIFACTS", REPO_ROOT / "artifacts"))

#: The non-root base URL every server gets unless told otherwise (an escaped ``@`` in it).
DEFAULT_BASE_URL = "/a%40b/"

Flavor = Literal["lab", "notebook", "server"]

_MODULES: dict[str, str] = {"lab": "jupyterlab", "notebook": "notebook", "server": "jupyter_server"}
_EXPOSE_APP: dict[str, str] = {
    "lab": "--LabApp.expose_app_in_browser=True",
    "notebook": "--JupyterNotebookApp.expose_app_in_browser=True",
}
# Variables of the developer's shell that would change what the server or its kernels do.
_SCRUBBED_PREFIXES = ("SPECKLE_", "JUPYTERHUB_", "JPY_", "JUPYTER_", "JUPYTERLAB_", "IPYTHONDIR")

#: Frontend settings every server gets (``"package:plugin" -> values``, JupyterLab's format;
#: Notebook 7 reads the same directory).
_DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    # The news toast ("Would you like to receive official Jupyter news?") would sit over the
    # page in screenshots and steal clicks.
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}

T = TypeVar("T")


def artifacts_dir(name: str) -> Path:
    """``artifacts/<name>/``, created; ``name`` is made safe for a path (a pytest node id is fine)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "unnamed"
    path = ARTIFACTS / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; a race with others is possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], T | bool | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something truthy; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class JupyterServer:
    """One Jupyter server subprocess. Use :meth:`running` (or :meth:`start` / :meth:`stop`)."""

    def __init__(
        self,
        flavor: Flavor,
        *,
        root_dir: Path,
        log_path: Path,
        state_dir: Path | None = None,
        base_url: str = DEFAULT_BASE_URL,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if flavor not in _MODULES:
            raise ValueError(
                f"unknown Jupyter flavor {flavor!r}; expected one of {sorted(_MODULES)}"
            )
        if not (base_url.startswith("/") and base_url.endswith("/")):
            raise ValueError(f"base_url must start and end with '/', got {base_url!r}")
        self.flavor: Flavor = flavor
        self.root_dir = Path(root_dir)
        self.log_path = Path(log_path)
        self.state_dir = Path(state_dir) if state_dir else self.log_path.parent / f"{flavor}-state"
        self.base_url = base_url
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.token = secrets.token_hex(24)
        #: The speckle-nb extension takes it from its environment: what its kernels send to
        #: pickup and refresh (a PickupClient in the test process passes it explicitly).
        self.kernel_key = secrets.token_urlsafe(32)
        self.extra_env = dict(env or {})
        self.extra_args = list(extra_args)
        self.settings = {**_DEFAULT_SETTINGS, **(settings or {})}
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The server's root URL, base URL included, ending in ``/``."""
        return f"{self.origin}{self.base_url}"

    def redirect_url(self) -> str:
        """The speckle-nb callback an app must register for this server."""
        return f"{self.url}speckle-nb/callback"

    def page_url(
        self, notebook: str | None = None, *, token: bool = True, workspace: str | None = None
    ) -> str:
        """The frontend's page for ``notebook`` (a path relative to ``root_dir``), or its home.

        ``token=True`` appends ``?token=…``: the first visit of a browser context logs it in
        (the server sets its cookie), later visits may drop it. In JupyterLab, ``workspace``
        names a workspace of its own (default: a new random one), so tabs an earlier test left
        open are not restored next to this one.
        """
        if self.flavor == "lab":
            space = workspace or f"t{secrets.token_hex(4)}"
            path = f"lab/workspaces/{space}" + (f"/tree/{notebook}" if notebook else "")
        elif self.flavor == "notebook":
            path = f"notebooks/{notebook}" if notebook else "tree"
        else:
            raise ValueError("a bare Jupyter server has no frontend page")
        query = f"?token={self.token}" if token else ""
        return f"{self.url}{path}{query}"

    # -- lifecycle ---------------------------------------------------------------------------

    def argv(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            _MODULES[self.flavor],
            "--no-browser",
            f"--ServerApp.ip={self.host}",
            f"--ServerApp.port={self.port}",
            # The registered redirect URL names this port: fail rather than move to another one.
            "--ServerApp.port_retries=0",
            f"--ServerApp.base_url={self.base_url}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
        ]
        if self.flavor in _EXPOSE_APP:
            args.append(_EXPOSE_APP[self.flavor])
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        return args + self.extra_args

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        dirs = {
            "JUPYTERLAB_SETTINGS_DIR": self.state_dir / "settings",
            "JUPYTERLAB_WORKSPACES_DIR": self.state_dir / "workspaces",
            "JUPYTER_RUNTIME_DIR": self.state_dir / "runtime",
            # Keeps ~/.jupyter out; the system config (the extension's enable file) still applies.
            "JUPYTER_CONFIG_DIR": self.state_dir / "config",
            "IPYTHONDIR": self.state_dir / "ipython",
        }
        for name, path in dirs.items():
            path.mkdir(parents=True, exist_ok=True)
            env[name] = str(path)
        env["PYTHONUNBUFFERED"] = "1"
        env["SPECKLE_NB_KERNEL_KEY"] = self.kernel_key
        env.update(self.extra_env)
        return env

    def _write_settings(self, settings_dir: Path) -> None:
        for plugin_id, values in self.settings.items():
            package, _, plugin = plugin_id.partition(":")
            folder = settings_dir / package
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))

    def start(self) -> JupyterServer:
        if self.process is not None:
            raise RuntimeError("server already started")
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = self.environ()
        self._write_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
        self._log_file = self.log_path.open("wb")
        self._log_file.write(f"$ {' '.join(self.argv())}\n".encode())
        self._log_file.flush()
        self.process = subprocess.Popen(
            self.argv(),
            env=env,
            cwd=self.root_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Its own process group, so stop() also reaches kernels a crashed server leaves.
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as http:
            while True:
                assert self.process is not None
                code = self.process.poll()
                if code is not None:
                    raise RuntimeError(
                        f"jupyter {self.flavor} exited with {code} before answering; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    response = http.get(f"{self.url}api/status", headers=self._auth())
                    if response.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"jupyter {self.flavor} did not answer {self.url}api/status within "
                        f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (the server shuts its kernels down), then SIGKILL what is left of the group."""
        process, self.process = self.process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if code is None:
                code = process.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code

    @contextlib.contextmanager
    def running(self) -> Iterator[JupyterServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # -- helpers -----------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One REST call (``path`` relative to the base URL), authenticated with the token."""
        with httpx.Client(timeout=10.0) as http:
            return http.request(method, f"{self.url}{path}", headers=self._auth(), **kwargs)

    def shutdown_kernels(self) -> None:
        """Delete every session (and so its kernel): the next test starts from fresh kernels."""
        with httpx.Client(timeout=10.0, headers=self._auth()) as http:
            for session in http.get(f"{self.url}api/sessions").json():
                http.delete(f"{self.url}api/sessions/{session['id']}")
            for kernel in http.get(f"{self.url}api/kernels").json():
                http.delete(f"{self.url}api/kernels/{kernel['id']}")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self, since: int = 0) -> str:
        if self._log_file is not None:
            self._log_file.flush()
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
