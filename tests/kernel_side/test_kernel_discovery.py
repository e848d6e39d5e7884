"""``speckle_nb.discovery``: which Jupyter server started this kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speckle_nb.discovery import JupyterServer, find_jupyter_server


def write_runtime_file(runtime: Path, pid: int, url: str, **extra: object) -> None:
    info = {"pid": pid, "url": url, "base_url": "/a%40b/", "token": "", **extra}
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info))


def test_published_url_when_the_pids_match(tmp_path: Path) -> None:
    env = {
        "JPY_PARENT_PID": "4242",
        "SPECKLE_NB_JUPYTER_URL": "http://127.0.0.1:8888/a%40b",
        "SPECKLE_NB_JUPYTER_PID": "4242",
    }
    assert find_jupyter_server(env, runtime_dir=str(tmp_path)) == JupyterServer(
        "http://127.0.0.1:8888/a%40b/", "environment"
    )


def test_published_url_of_another_process_is_ignored(tmp_path: Path) -> None:
    env = {
        "JPY_PARENT_PID": "4242",  # e.g. VS Code started this kernel from a Jupyter terminal
        "SPECKLE_NB_JUPYTER_URL": "http://127.0.0.1:8888/",
        "SPECKLE_NB_JUPYTER_PID": "1111",
    }
    assert find_jupyter_server(env, runtime_dir=str(tmp_path)) is None


def test_parent_pid_alone_proves_nothing(tmp_path: Path) -> None:
    write_runtime_file(tmp_path, 1111, "http://localhost:8888/")
    assert find_jupyter_server({"JPY_PARENT_PID": "4242"}, runtime_dir=str(tmp_path)) is None
    assert find_jupyter_server({}, runtime_dir=str(tmp_path)) is None


def test_runtime_file_of_the_parent(tmp_path: Path) -> None:
    write_runtime_file(tmp_path, 1111, "http://localhost:9999/")
    write_runtime_file(tmp_path, 4242, "http://0.0.0.0:8888/a%40b/")
    (tmp_path / "jpserver-broken.json").write_text("{not json")
    found = find_jupyter_server({"JPY_PARENT_PID": "4242"}, runtime_dir=str(tmp_path))
    assert found == JupyterServer("http://127.0.0.1:8888/a%40b/", "runtime-file")


def test_runtime_dir_from_the_environment(tmp_path: Path) -> None:
    write_runtime_file(tmp_path, 4242, "http://localhost:8888/")
    env = {"JPY_PARENT_PID": "4242", "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    assert find_jupyter_server(env) == JupyterServer("http://localhost:8888/", "runtime-file")


def test_unix_socket_servers_are_skipped(tmp_path: Path) -> None:
    write_runtime_file(tmp_path, 4242, "http+unix://%2Ftmp%2Fjp.sock/")
    assert find_jupyter_server({"JPY_PARENT_PID": "4242"}, runtime_dir=str(tmp_path)) is None


@pytest.mark.parametrize(
    ("service_url", "expected"),
    [
        ("http://127.0.0.1:54321/user/alice/", "http://127.0.0.1:54321/user/alice/"),
        ("http://:8888/user/alice", "http://127.0.0.1:8888/user/alice/"),
        ("http://0.0.0.0:8888/user/al%40ce/", "http://127.0.0.1:8888/user/al%40ce/"),
        ("http://10.0.3.7:8888/user/bob/gpu/", "http://10.0.3.7:8888/user/bob/gpu/"),
    ],
)
def test_jupyterhub_service_url(tmp_path: Path, service_url: str, expected: str) -> None:
    env = {"JUPYTERHUB_SERVICE_URL": service_url, "JPY_PARENT_PID": "4242"}
    assert find_jupyter_server(env, runtime_dir=str(tmp_path)) == JupyterServer(
        expected, "jupyterhub"
    )


def test_broken_urls_are_skipped(tmp_path: Path) -> None:
    write_runtime_file(tmp_path, 4242, "http://[::1:8888/")
    env = {"JPY_PARENT_PID": "4242", "JUPYTERHUB_SERVICE_URL": "http://host:notaport/"}
    assert find_jupyter_server(env, runtime_dir=str(tmp_path)) is None


def test_kernel_side_modules_import_no_jupyter_or_tornado() -> None:
    code = (
        "import sys, speckle_nb.discovery, speckle_nb.pickup\n"
        "heavy = [m for m in ('jupyter_server', 'tornado', 'jupyter_core', 'traitlets')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECKLE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60, cwd=repo)
