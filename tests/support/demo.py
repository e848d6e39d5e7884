"""Running ``speckle-nb demo`` as a person does, and proving afterwards that it left nothing behind.

Shared by tests/test_demo.py (this environment) and tests/test_readme_fresh_venv.py (a new venv).
The demo's output (and JupyterLab's) goes to a file, never an unread pipe that would fill up and
stall JupyterLab mid-test.
The process tree is read from /proc directly, not through ``speckle_nb._children``: the check must
not share a bug with the code it checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.jupyter import wait_until

PROC = Path("/proc")


def proc_stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of ``pid``; None when there is no such process."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), fields[0], fields[19]


def tree_of(root: int) -> dict[int, str]:
    """Every descendant of ``root``: pid → start time."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
            starts[int(entry.name)] = stat[2]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def still_running(processes: dict[int, str]) -> list[str]:
    """Those of ``processes`` that still run (not exited, not a zombie), with their command."""
    left = []
    for pid, start in processes.items():
        stat = proc_stat(pid)
        if stat is not None and stat[2] == start and stat[1] not in ("Z", "X"):
            with contextlib.suppress(OSError):
                command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
                left.append(f"{pid}: {command.decode(errors='replace')[:200]}")
    return left


def command_of(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kernels_in(processes: dict[int, str]) -> list[int]:
    return [pid for pid in processes if "ipykernel" in command_of(pid)]


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    lab: str
    token: str
    speckle: str
    printed: str
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def start_kernel(self) -> str:
        """Start a kernel through JupyterLab's REST API, as opening the notebook does."""
        answer = httpx.post(f"{self.lab}/api/kernels", headers=self.headers, json={}, timeout=60)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def stop(self, signum: int, timeout: float = 90) -> int:
        """Signal the demo as its sender would: a terminal signals its whole foreground group
        (Ctrl+C: SIGINT; closing it: SIGHUP), ``kill`` and supervisors the one process."""
        if signum in (signal.SIGINT, signal.SIGHUP):
            os.killpg(self.process.pid, signum)  # the demo leads its group: see running_demo
        else:
            os.kill(self.process.pid, signum)
        return self.process.wait(timeout=timeout)


def answers(url: str, params: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, params=params, timeout=5).is_success
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def running_demo(
    argv: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[Demo]:
    """Start the demo in a session of its own (as a shell starts a job: its own group), read
    the links it prints, wait until JupyterLab answers. On exit, stop it if the test did not."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(argv),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    def printed() -> str | None:
        text = log.read_text(errors="replace")
        assert "Press Ctrl+C" in text or process.poll() is None, f"demo exited early:\n{text}"
        return text if "Press Ctrl+C" in text else None

    try:
        text = wait_until(printed, timeout=60, what="the demo's links")
        lab = re.search(r"JupyterLab:\s+(http://127\.0\.0\.1:\d+)/\S+\?token=(\S+)", text)
        speckle = re.search(r"Speckle dev server:\s+(\S+)", text)
        assert lab, text
        assert speckle, text
        demo = Demo(process, lab.group(1), lab.group(2), speckle.group(1), text, log)
        wait_until(
            lambda: answers(f"{demo.lab}/api/status", {"token": demo.token}),
            timeout=90,
            what=f"JupyterLab at {demo.lab}",
        )
        yield demo
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)
