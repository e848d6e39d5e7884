"""Layer 4: real kernels. One dev server and one Jupyter server (with the extension) per module.

The Jupyter server runs as in real use: a subprocess on 127.0.0.1 with a random token, the
non-root base URL ``/a%40b/``, its own runtime directory, and the Speckle app's settings in
its environment only (``SPECKLE_SERVER_URL``, ``SPECKLE_APP_ID``, ``SPECKLE_APP_SECRET``).
Kernels it starts inherit that environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# `support` lives in tests/; make it importable however pytest was started.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from kernelkit import WebSocketKernel, ZmqKernel  # noqa: E402
from support.jupyter import JupyterServer, artifacts_dir  # noqa: E402

from speckle_nb.devserver import DevServer  # noqa: E402

APP_SCOPES = ["profile:read", "profile:email", "streams:read", "streams:write"]

#: Keeps a kernel away from the developer's keyring, remembered tokens and desktop accounts.
_ISOLATION = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def isolated_env(tmp: Path) -> dict[str, str]:
    return {
        **_ISOLATION,
        "SPECKLE_NB_DATA_DIR": str(tmp / "remembered"),
        "SPECKLE_USERDATA_PATH": str(tmp / "desktop-accounts"),
    }


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer().running() as server:
        yield server


@pytest.fixture(scope="module")
def jupyter(
    dev: DevServer, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[JupyterServer]:
    """A Jupyter server with the extension, configured for a dev-server app whose redirect
    URL is this server's callback."""
    root = tmp_path_factory.mktemp("jupyter")
    logs = artifacts_dir(f"kernel-{request.module.__name__}")
    server = JupyterServer("server", root_dir=root / "notebooks", log_path=logs / "jupyter.log")
    app = dev.state.register_app("speckle-nb kernel tests", server.redirect_url(), APP_SCOPES)
    server.extra_env.update(
        {
            "SPECKLE_SERVER_URL": dev.url,
            "SPECKLE_APP_ID": app.id,
            "SPECKLE_APP_SECRET": app.secret,
            **isolated_env(root),
        }
    )
    with server.running():
        yield server


@pytest.fixture(scope="module")
def jupyter_kernel(jupyter: JupyterServer) -> Iterator[WebSocketKernel]:
    """One kernel started by the Jupyter server, shared by the module's tests (each test
    signs out at its end)."""
    kernel = WebSocketKernel(jupyter.url, jupyter.token)
    kernel.run("import speckle_nb")
    yield kernel
    kernel.close()


def plain_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a kernel with no Jupyter server: the test's, minus anything that
    would point it at one or at the developer's Speckle settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPECKLE_", "JPY_", "JUPYTER_", "JUPYTERHUB_"))
    }
    runtime = tmp / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    env.update(isolated_env(tmp), JUPYTER_RUNTIME_DIR=str(runtime), **extra)
    return env


@pytest.fixture
def plain_kernel(tmp_path: Path) -> Iterator[Callable[..., ZmqKernel]]:
    """``plain_kernel(**env)``: a kernel started by jupyter_client alone (as VS Code does)."""
    started: list[ZmqKernel] = []

    def start(**extra: str) -> ZmqKernel:
        kernel = ZmqKernel(plain_env(tmp_path, **extra))
        started.append(kernel)
        kernel.run("import speckle_nb")
        return kernel

    yield start
    for kernel in started:
        kernel.close()
