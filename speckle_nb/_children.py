"""Stop a child process and everything it started (``speckle-nb demo`` stopping JupyterLab).

A JupyterLab child is not one process: jupyter_client starts every kernel in a session of its own
(so that interrupting a kernel reaches its whole group), and a notebook may start processes of
its own. Signalling JupyterLab's process group therefore misses the kernels. So: ask JupyterLab to
stop (SIGTERM: it shuts its kernels down itself), then find whatever of its tree still runs —
read from ``/proc`` where there is one — and end it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, from ``/proc/<pid>/stat``; None if gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text.rsplit(")", 1)[1].split()
    state, ppid, start = fields[0], int(fields[1]), fields[19]
    return None if state in ("Z", "X") else (ppid, start)


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid`` (pid → start time, so a reused pid is not mistaken for
    it later). Empty where there is no ``/proc`` (macOS, Windows)."""
    if not _PROC.is_dir():
        return {}
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child, start in children.get(todo.pop(), []):
            if child not in found:
                found[child] = start
                todo.append(child)
    return found


def alive(processes: dict[int, str]) -> dict[int, str]:
    """Those of ``processes`` (pid → start time) that still run as the same process."""
    left = {}
    for pid, start in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == start:
            left[pid] = start
    return left


def _wait_gone(processes: dict[int, str], timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := alive(processes)) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling /proc: there is no event for "a non-child exited"
    return left


def _signal_all(processes: dict[int, str], signum: int) -> None:
    for pid in alive(processes):
        with contextlib.suppress(ProcessLookupError):  # exited between the check and now
            os.kill(pid, signum)


def stop_tree(
    process: subprocess.Popen[bytes], *, grace: float = 20.0, linger: float = 5.0
) -> None:
    """Stop ``process`` gently, then end whatever of its tree outlived it.

    ``grace``: how long ``process`` may take to stop on SIGTERM before it and its group are
    killed; ``linger``: the same for what it left behind.

    ``process`` must have been started with ``start_new_session=True`` (its own process group),
    so that a terminal's Ctrl+C reaches only us and we decide the order.
    """
    tree = descendants(process.pid)
    if process.poll() is None:
        process.terminate()  # JupyterLab: shuts its kernels down, then exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    if process.poll() is None and sys.platform != "win32":
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait()
    # Kernels it did not shut down, and what they started, in sessions of their own.
    _signal_all(tree, signal.SIGTERM)
    if left := _wait_gone(tree, timeout=linger):
        _signal_all(left, signal.SIGKILL)
        _wait_gone(left, timeout=5.0)
