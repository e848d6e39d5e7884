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

from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD

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
    kernel.send_to_widget(panel, {"type": "opened", "request": state["request_id"]})  # the click
    kernel.pump(
        lambda: listening(int(redirect.split(":")[2].strip("/"))), timeout=30, what="the listener"
    )
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


# --------------------------------------------------------------------------- no setup at all


def consent_to_desktop_connectors(authorize_url: str) -> str:
    """The person's browser on the dev server: log in, read the consent page (it names the
    built-in app), press Authorize; returns where Speckle sends the browser (not fetched)."""
    with BrowserPlayer(honour_refresh_delay=False) as browser:
        speckle = authorize_url.split("/authn/")[0]

        def leaves_speckle(url: str) -> bool:
            return not url.startswith(speckle)

        page = browser.open(authorize_url, stop_when=leaves_speckle)
        if page is not None and any(f.has_password for f in page.forms):
            page = browser.log_in(DEMO_EMAIL, DEMO_PASSWORD, stop_when=leaves_speckle)
        assert page is not None
        assert "Desktop Connectors" in page.response.text  # the name the panel explained
        assert browser.consent("allow", stop_when=leaves_speckle) is None
        assert browser.stopped_at is not None
        return browser.stopped_at


def test_no_setup_signs_in_with_the_builtin_app_over_the_listener(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    """No SPECKLE_APP_*, no extension: Speckle's built-in connectrV3 app, the kernel's
    one-shot listener on 127.0.0.1:29355, then a working client."""
    kernel = plain_kernel(SPECKLE_SERVER_URL=dev.url)
    panel = kernel.panel(kernel.run("p = speckle_nb.sign_in(timeout=60)"))
    state = kernel.state(panel)
    assert state["mode"] == "loopback"
    assert state["builtin_app"] is True
    assert state["paste_too"] is True  # no Jupyter server says where the browser runs
    assert "Desktop Connectors" in state["mode_reason"]
    assert any("connectrV3" in line for line in state["details"])

    url = kernel.authorize_url(panel)
    assert url.startswith(f"{dev.url}/authn/verify/connectrV3/")
    kernel.send_to_widget(panel, {"type": "opened", "request": state["request_id"]})
    landing = consent_to_desktop_connectors(url)
    assert landing.startswith("http://localhost:29355?access_code=")
    kernel.pump(lambda: listening(29355), timeout=30, what="the kernel to listen on 29355")
    favicon = httpx.get("http://localhost:29355/favicon.ico", timeout=10)  # browsers ask too
    assert favicon.status_code == 404
    page = httpx.get(landing.replace(":29355?", ":29355/?"), timeout=10)  # the browser's slash
    assert page.status_code == 200
    assert "You can close this tab." in page.text
    state = kernel.wait_state(panel, lambda s: s["state"] == "signed_in")
    assert state["source"] == "loopback"
    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"
    kernel.pump(lambda: not listening(29355), timeout=30, what="the listener to close")

    code = landing.split("access_code=")[1]
    assert code not in kernel.wire_text()
    assert url not in str([kernel.state(p) for p in kernel.panels()])
    assert "revoked at the server" in kernel.run("print(speckle_nb.sign_out())").stdout


def test_browser_elsewhere_pastes_the_unreachable_address(
    dev: DevServer, plain_kernel: Callable[..., ZmqKernel]
) -> None:
    """Binder (or a hub, Colab): the panel says before the sign-in where the browser will land
    and asks for that address; it finishes the sign-in with the built-in app."""
    kernel = plain_kernel(SPECKLE_SERVER_URL=dev.url, BINDER_REQUEST="v2/gh/someone/repo/HEAD")
    panel = kernel.panel(kernel.run("p = speckle_nb.sign_in()"))
    state = kernel.state(panel)
    assert state["mode"] == "paste"
    assert state["builtin_app"] is True
    assert "http://localhost:29355/?access_code=…" in state["mode_reason"]
    assert "will not load" in state["mode_reason"]
    assert state["redirect_url_hint"] == "http://localhost:29355"

    landing = consent_to_desktop_connectors(kernel.authorize_url(panel))
    kernel.send_to_widget(
        panel, {"type": "paste-url", "request": state["request_id"], "url": landing}
    )
    state = kernel.wait_state(panel, lambda s: s["state"] == "signed_in")
    assert state["source"] == "paste"
    assert kernel.run("speckle_nb.client().active_user().name").result == "'Demo User'"
    assert landing.split("access_code=")[1] not in kernel.wire_text()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
