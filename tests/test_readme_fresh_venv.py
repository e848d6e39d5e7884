"""The README's first command, verbatim, in a brand-new venv: what a new user types first.

Read from README.md (the fenced ``bash`` block under "Try it"), so the README cannot drift from
what is tested. In a new ``python -m venv`` with pip as configured on this machine:

1. ``pip install -e .`` alone (no JupyterLab): ``speckle-nb demo`` says in one line what to
   install and exits non-zero — not Jupyter's "command not found" usage dump;
2. the README's install part: then ``speckle-nb demo --no-browser`` prints a JupyterLab link
   that answers (from the venv's JupyterLab, with the extension on) and a dev server that
   answers GraphQL; Ctrl+C stops it, and no process it started is left.

How long each step took is printed (the install dominates; ``.ci/run`` runs this test).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.demo import kernels_in, running_demo, still_running, tree_of
from support.jupyter import REPO_ROOT, wait_until

README = REPO_ROOT / "README.md"


def readme_first_command() -> str:
    """The first command of the first ``bash`` block under the "Try it" heading."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Try it\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Try it' section"
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    assert block, "the 'Try it' section has no ```bash block"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    return lines[0]


def split_command(command: str) -> tuple[list[str], list[str]]:
    """(install commands, the demo's argv) from ``pip install … && speckle-nb demo``."""
    parts = [shlex.split(part) for part in command.split("&&")]
    installs = [part for part in parts if part[:2] == ["pip", "install"]]
    demos = [part for part in parts if part[:2] == ["speckle-nb", "demo"]]
    assert installs, f"no `pip install` in the README's first command: {command!r}"
    assert len(demos) == 1, f"no `speckle-nb demo` in the README's first command: {command!r}"
    assert len(installs) + len(demos) == len(parts), f"unexpected steps in {command!r}"
    return [shlex.join(part) for part in installs], demos[0]


def test_readme_first_command_is_the_one_tested() -> None:
    installs, demo = split_command(readme_first_command())
    assert installs == ["pip install -e '.[demo]'"]  # what the demo extra test below relies on
    assert demo == ["speckle-nb", "demo"]


def venv_environ(env_dir: Path, home: Path) -> dict[str, str]:
    """The environment of a shell with the venv activated; nothing of this test's own Python."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER", "JPY_", "SPECKLE_"))
    }
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    env["JUPYTER_RUNTIME_DIR"] = str(home / "runtime")
    return env


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a fresh install takes minutes on a loaded 2-core machine
def test_readme_first_command_works_in_a_fresh_venv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installs, demo_argv = split_command(readme_first_command())
    env_dir = tmp_path / "venv"
    times: dict[str, float] = {}

    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    times["python -m venv"] = time.monotonic() - began
    env = venv_environ(env_dir, tmp_path)

    def shell(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )

    # 1. The package alone: the demo says what is missing, in one line.
    began = time.monotonic()
    bare = shell("pip install -q -e .")
    times["pip install -e ."] = time.monotonic() - began
    assert bare.returncode == 0, bare.stderr[-3000:]
    missing = shell("speckle-nb demo --no-browser")
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert missing.stdout == ""
    assert missing.stderr == (
        "speckle-nb demo needs JupyterLab and ipykernel, not installed in this Python. Install: "
        'pip install "speckle-nb[demo]" (in a checkout: pip install -e ".[demo]")\n'
    )

    # 2. The README's install part, verbatim.
    for command in installs:
        began = time.monotonic()
        done = shell(command)
        times[command] = time.monotonic() - began
        assert done.returncode == 0, done.stderr[-3000:]

    venv_python = str(env_dir / "bin" / "python")
    argv = [str(env_dir / "bin" / demo_argv[0]), *demo_argv[1:]]
    argv += ["--no-browser", "--port", "0", "--notebook-dir", str(tmp_path / "nb")]
    began = time.monotonic()
    with running_demo(argv, env=env, log=tmp_path / "demo.log", cwd=REPO_ROOT) as demo:
        times["speckle-nb demo: JupyterLab answers"] = time.monotonic() - began
        link = re.search(r"JupyterLab:\s+(\S+)", demo.printed)
        assert link
        page = httpx.get(link.group(1), timeout=30)
        assert page.status_code == 200, page.text[:500]
        assert "jupyter-config-data" in page.text  # JupyterLab's page, not an error page
        status = httpx.get(f"{demo.lab}/speckle-nb/status", headers=demo.headers).json()
        assert status["app_configured"] is True, status  # the extension is on in the venv
        answer = httpx.post(f"{demo.speckle}/graphql", json={"query": "{ serverInfo { name } }"})
        assert answer.status_code == 200, answer.text[:500]
        assert answer.json()["data"]["serverInfo"]["name"], answer.text
        demo.start_kernel()

        def tree_with_kernel() -> dict[int, str] | None:
            tree = tree_of(demo.process.pid)
            return tree if kernels_in(tree) else None

        tree = wait_until(tree_with_kernel, timeout=60, what="the kernel's process")
        # Everything runs from the venv, not from this test's Python.
        commands = [(Path("/proc") / str(pid) / "cmdline").read_bytes() for pid in tree]
        assert all(c.startswith(venv_python.encode()) for c in commands), commands
        assert demo.stop(signal.SIGINT) == 0, demo.output[-2000:]
    assert still_running(tree) == [], demo.output[-2000:]

    with capsys.disabled():
        sys.stdout.write("\nREADME's first command in a fresh venv:\n")
        for step, seconds in times.items():
            sys.stdout.write(f"  {seconds:6.1f} s  {step}\n")
