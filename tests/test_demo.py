"""`speckle-nb demo` as a person runs it: the dev server and JupyterLab, signed-in flow offline."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.demo import Demo, kernels_in, running_demo, still_running, tree_of
from support.jupyter import wait_until

from speckle_nb._names import KERNEL_KEY_ENV
from speckle_nb.devserver import BrowserPlayer
from speckle_nb.pickup import PickupClient, SignInRequest

KERNEL_KEY = secrets.token_urlsafe(32)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    # The kernel key the demo's JupyterLab adopts: this test plays one of its kernels.
    env = os.environ | {
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        KERNEL_KEY_ENV: KERNEL_KEY,
    }
    argv = [sys.executable, "-m", "speckle_nb", "demo", "--no-browser", "--port", "0",
            "--notebook-dir", str(tmp_path / "nb")]  # fmt: skip
    with running_demo(argv, env=env, log=tmp_path / "demo.log") as demo:
        yield demo


# SIGINT is what Ctrl+C in the terminal sends, SIGHUP what closing the terminal sends.
@pytest.mark.slow
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name
)
def test_demo_stops_everything_it_started(demo: Demo, signum: int) -> None:
    demo.start_kernel()  # a kernel runs in a session of its own: a process group kill misses it

    def tree_with_kernel() -> dict[int, str] | None:
        tree = tree_of(demo.process.pid)
        return tree if kernels_in(tree) else None

    tree = wait_until(tree_with_kernel, timeout=60, what="the kernel's process")
    assert len(tree) >= 2, tree  # JupyterLab and the kernel at least

    code = demo.stop(signum)

    assert code == (0 if signum == signal.SIGINT else 128 + signum), demo.output[-2000:]
    assert still_running(tree) == [], demo.output[-2000:]
    assert not httpx_answers(demo.lab), "JupyterLab still answers"
    assert not httpx_answers(demo.speckle), "the dev server still answers"
    assert "stopping JupyterLab and the dev server" in demo.output


def httpx_answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


@pytest.mark.slow
def test_demo_signs_in_offline_end_to_end(demo: Demo, tmp_path: Path) -> None:
    headers = demo.headers
    status = httpx.get(f"{demo.lab}/speckle-nb/status", headers=headers).json()
    assert status["app_configured"] is True
    assert status["server_url"] == demo.speckle
    assert status["redirect_url"] == f"{demo.lab}/speckle-nb/callback"
    assert status["problems"] == []
    # The app secret reaches JupyterLab through its environment only, never the terminal.
    assert "secret" not in demo.printed.lower().replace("speckle-nb demo", "")
    assert (tmp_path / "nb" / "getting-started.ipynb").is_file()

    # A person clicks the button: start → sign in and Authorize on the dev server → callback.
    request = SignInRequest.new()
    with BrowserPlayer(headers_by_origin={demo.lab: headers}) as browser:
        start = f"{demo.lab}/{request.start_path()}"
        callback = f"{demo.lab}/speckle-nb/callback"
        landed = browser.sign_in_and_consent(
            start, "demo@example.org", "speckle-demo", stop_at_prefix=callback
        )
        assert landed.startswith(f"{callback}?access_code=")
        page = browser.open(landed)
        assert page is not None
        assert "Signed in as Demo User" in page.response.text
    # …and the kernel picks the result up.
    with PickupClient(f"{demo.lab}/", kernel_key=KERNEL_KEY) as pickup:
        credentials = pickup.wait(request, timeout=30)
    assert credentials.user is not None
    assert credentials.user.name == "Demo User"
