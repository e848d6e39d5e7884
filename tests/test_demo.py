"""`speckle-nb demo` as a person runs it: the dev server and JupyterLab, signed-in flow offline."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from speckle_nb.devserver import BrowserPlayer
from speckle_nb.pickup import KERNEL_KEY_ENV, PickupClient, SignInRequest

KERNEL_KEY = secrets.token_urlsafe(32)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, str]]:
    # The kernel key the demo's JupyterLab adopts: this test plays one of its kernels.
    env = os.environ | {
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        KERNEL_KEY_ENV: KERNEL_KEY,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "speckle_nb", "demo", "--no-browser", "--port", "0",
         "--notebook-dir", str(tmp_path / "nb")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )  # fmt: skip
    assert process.stdout is not None
    printed = ""
    try:
        while "Press Ctrl+C" not in printed:
            line = process.stdout.readline()
            assert line, f"demo exited early:\n{printed}"
            printed += line
        lab = re.search(r"JupyterLab:\s+(http://127\.0\.0\.1:\d+)/\S+\?token=(\S+)", printed)
        speckle = re.search(r"Speckle dev server:\s+(\S+)", printed)
        assert lab, printed
        assert speckle, printed
        info = {"lab": lab.group(1), "token": lab.group(2), "speckle": speckle.group(1)}
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(
                    f"{info['lab']}/api/status", params={"token": info["token"]}
                ).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not come up"
            time.sleep(0.2)
        info["printed"] = printed
        yield info
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


@pytest.mark.slow
def test_demo_signs_in_offline_end_to_end(demo: dict[str, str], tmp_path: Path) -> None:
    headers = {"Authorization": f"token {demo['token']}"}
    status = httpx.get(f"{demo['lab']}/speckle-nb/status", headers=headers).json()
    assert status["app_configured"] is True
    assert status["server_url"] == demo["speckle"]
    assert status["redirect_url"] == f"{demo['lab']}/speckle-nb/callback"
    assert status["problems"] == []
    # The app secret reaches JupyterLab through its environment only, never the terminal.
    assert "secret" not in demo["printed"].lower().replace("speckle-nb demo", "")
    assert (tmp_path / "nb" / "getting-started.ipynb").is_file()

    # A person clicks the button: start → sign in and Authorize on the dev server → callback.
    request = SignInRequest.new()
    with BrowserPlayer(headers_by_origin={demo["lab"]: headers}) as browser:
        start = f"{demo['lab']}/{request.start_path()}"
        callback = f"{demo['lab']}/speckle-nb/callback"
        landed = browser.sign_in_and_consent(
            start, "demo@example.org", "speckle-demo", stop_at_prefix=callback
        )
        assert landed.startswith(f"{callback}?access_code=")
        page = browser.open(landed)
        assert page is not None
        assert "Signed in as Demo User" in page.response.text
    # …and the kernel picks the result up.
    with PickupClient(f"{demo['lab']}/", kernel_key=KERNEL_KEY) as pickup:
        credentials = pickup.wait(request, timeout=30)
    assert credentials.user is not None
    assert credentials.user.name == "Demo User"
