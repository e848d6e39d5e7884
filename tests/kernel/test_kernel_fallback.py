"""A kernel with no Jupyter server (as VS Code or nbclient start one): the fallback chain.

The view's part is played over the kernel's real channels: the test reads the panel's state
and the private authorize-URL message from iopub, and sends the view's messages as widget
``comm_msg``s on the shell channel.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest
from kernelkit import ZmqKernel, play_speckle_sign_in

from speckle_nb.devserver import DevServer

pytestmark = pytest.mark.kernel

LANDING = "https://notebook.example/landed"
BAD_TOKEN = "0123456789" + "e" * 32
SCOPES = ["profile:read", "profile:email", "streams:read"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_env(dev: DevServer, redirect_url: str) -> dict[str, str]:
    app = dev.state.register_app("notebook app", redirect_url, SCOPES)
    return {
        "SPECKLE_SERVER_URL": dev.url,
        "SPECKLE_APP_ID": app.id,
        "SPECKLE_APP_SECRET": app.secret,
        "SPECKLE_REDIRECT_URL": redirect_url,
    }


def test_token_mode_says_why_and_checks_tokens(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    kernel = plain_kernel(SPECKLE_SERVER_URL=dev.url, SPECKLE_NB_BUILTIN_APP="off")
    cell = kernel.run("p = speckle_nb.sign_in()\np")
    panel = kernel.panel(cell)
    state = kernel.state(panel)
    assert state["mode"] == "token"
    assert (
        "no Jupyter server with the speckle-nb extension started this kernel"
        in (state["mode_reason"])
    )
    assert "SPECKLE_APP_ID" in state["mode_reason"]
    assert "SPECKLE_NB_BUILTIN_APP=off" in state["mode_reason"]
    assert [m["header"]["msg_type"] for m in cell.messages].count("display_data") == 1
    assert cell.result is None  # the panel is not displayed a second time as the result

    kernel.send_to_widget(panel, {"type": "token", "token": BAD_TOKEN})
    state = kernel.wait_state(panel, lambda s: s["state"] == "error")
    assert state["error_reason"] == "invalid-token"
    assert "Your token is not valid." in state["message"]
    assert "Not signed in" in kernel.run("%load_ext speckle_nb\n%speckle_token").stdout

    token = dev.state.create_token(dev.demo_user.id, scopes=SCOPES)
    kernel.send_to_widget(panel, {"type": "token", "token": token})
    state = kernel.wait_state(panel, lambda s: s["state"] == "signed_in")
    assert state["user_name"] == "Demo User"
    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"
    assert token not in kernel.wire_text()
    assert BAD_TOKEN not in kernel.wire_text()


def test_token_mode_with_wait_prompts_for_the_token(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    kernel = plain_kernel(SPECKLE_SERVER_URL=dev.url, SPECKLE_NB_BUILTIN_APP="off")
    cell = kernel.finish(kernel.start("speckle_nb.sign_in(wait=True)", stdin=[BAD_TOKEN]))
    assert cell.prompts
    assert cell.prompts[0]["password"] is True
    assert cell.error is not None
    assert cell.error.startswith("InvalidTokenError")
    assert "Your token is not valid." in cell.error
    assert BAD_TOKEN not in cell.text()

    token = dev.state.create_token(dev.demo_user.id, scopes=SCOPES)
    cell = kernel.finish(
        kernel.start("p = speckle_nb.sign_in(wait=True)\nprint(p.state)", stdin=[token])
    )
    assert cell.error is None, cell.stderr
    assert cell.stdout.strip() == "signed_in"
    assert token not in kernel.wire_text()


def test_paste_mode_completes_against_the_dev_server(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    kernel = plain_kernel(**app_env(dev, LANDING))
    panel = kernel.panel(kernel.run("p = speckle_nb.sign_in()"))
    state = kernel.state(panel)
    assert state["mode"] == "paste"
    assert "paste the address" in state["mode_reason"]

    url = kernel.authorize_url(panel)
    landing = play_speckle_sign_in(url)
    kernel.send_to_widget(panel, {"type": "opened", "request": state["request_id"]})
    kernel.send_to_widget(
        panel, {"type": "paste-url", "request": state["request_id"], "url": landing}
    )
    state = kernel.wait_state(panel, lambda s: s["state"] == "signed_in")
    assert state["source"] == "paste"
    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"

    code = landing.split("access_code=")[1]
    state_text = str([kernel.state(p) for p in kernel.panels()])
    assert code not in kernel.wire_text()
    assert url not in state_text  # the authorize URL went only as a private message
    assert "revoked at the server" in kernel.run("print(speckle_nb.sign_out())").stdout


def test_paste_mode_with_wait_reads_the_address_from_a_hidden_prompt(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    kernel = plain_kernel(**app_env(dev, LANDING))
    cell = kernel.start(
        "p = speckle_nb.sign_in(wait=True)\nprint(p.state, p.source)", allow_stdin=True
    )
    panel = kernel.panel(cell)
    # the kernel is blocked at the prompt, yet the view still gets the authorize URL
    url = kernel.authorize_url(panel)
    kernel.pump(lambda: kernel.pending_input, timeout=30, what="the hidden prompt")
    landing = play_speckle_sign_in(url)
    kernel.answer(landing)
    kernel.finish(cell)
    assert cell.error is None, cell.stderr
    assert cell.stdout.strip() == "signed_in paste"
    assert cell.prompts[0]["password"] is True
    assert landing.split("access_code=")[1] not in kernel.wire_text()


def test_loopback_mode_completes_against_the_dev_server(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    redirect = f"http://localhost:{free_port()}/"
    kernel = plain_kernel(**app_env(dev, redirect))
    panel = kernel.panel(kernel.run("p = speckle_nb.sign_in(timeout=60)"))
    state = kernel.state(panel)
    assert state["mode"] == "loopback"
    assert redirect in state["mode_reason"]

    landing = play_speckle_sign_in(kernel.authorize_url(panel))
    assert landing.startswith(redirect)
    page = httpx.get(landing, timeout=10)  # the browser follows the redirect to the kernel
    assert page.status_code == 200
    state = kernel.wait_state(panel, lambda s: s["state"] == "signed_in")
    assert state["source"] == "loopback"
    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"


def test_loopback_mode_with_wait_blocks_until_the_redirect(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    redirect = f"http://localhost:{free_port()}/"
    kernel = plain_kernel(**app_env(dev, redirect))
    cell = kernel.start("p = speckle_nb.sign_in(wait=True, timeout=60)\nprint(p.state)")
    landing = play_speckle_sign_in(kernel.authorize_url(kernel.panel(cell)))
    httpx.get(landing, timeout=10)
    kernel.finish(cell)
    assert cell.error is None, cell.stderr
    assert cell.stdout.strip() == "signed_in"
