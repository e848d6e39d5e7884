"""``stop_tree`` on real process trees shaped like JupyterLab's: a parent in its own session whose
child (a kernel) runs in yet another session, with each of them obeying or ignoring SIGTERM.
The demo test covers the usual path (JupyterLab obeys and shuts its kernels down); these cover
what must happen when something does not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from support.demo import still_running, tree_of

from speckle_nb._children import stop_tree

PARENT = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    if sys.argv[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(
        [sys.executable, "-c", sys.argv[3], sys.argv[2]], start_new_session=True
    )
    print(child.pid, flush=True)
    time.sleep(600)  # its work: stay up until stopped
    """
)
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    if sys.argv[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)  # its work: stay up until stopped
    """
)


@pytest.mark.parametrize("child_on_term", ["obey", "ignore"])
@pytest.mark.parametrize("parent_on_term", ["obey", "ignore"])
def test_the_whole_tree_is_gone(parent_on_term: str, child_on_term: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, parent_on_term, child_on_term, CHILD],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    tree: dict[int, str] = {}
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())  # the child exists once this is printed
        tree = tree_of(parent.pid)
        assert child_pid in tree

        stop_tree(parent, grace=1.0, linger=1.0)

        assert parent.returncode is not None
        assert still_running(tree) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for left in still_running(tree):  # a failed case must not leave its child running
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(left.split(":")[0]), signal.SIGKILL)
        if parent.stdout is not None:
            parent.stdout.close()
