"""``%speckle_token set`` in a real ipykernel: getpass becomes a *password* input request,
and the token never comes back on any channel the frontend saves."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

from speckle_nb.devserver import DevServer

pytestmark = pytest.mark.kernel


@pytest.fixture
def kernel(devserver: DevServer, tmp_path: Any) -> Iterator[BlockingKernelClient]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECKLE_")}
    env.update(
        SPECKLE_SERVER_URL=devserver.url,
        SPECKLE_NB_DATA_DIR=str(tmp_path / "data"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    km: KernelManager
    km, kc = start_new_kernel(kernel_name="python3", env=env, startup_timeout=60)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(
    kc: BlockingKernelClient, code: str, *, answer: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Execute ``code``; answer one input request with ``answer``. All iopub messages, the request."""
    msg_id = kc.execute(code, allow_stdin=answer is not None)
    request = None
    if answer is not None:
        request = kc.get_stdin_msg(timeout=30)
        kc.input(answer)
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:  # a late kernel_info reply
        reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "ok"
    messages: list[dict[str, Any]] = []
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages, request


def text_of(messages: list[dict[str, Any]]) -> str:
    parts = []
    for msg in messages:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            parts.append(content["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            parts.append(content["data"].get("text/plain", ""))
        elif msg["msg_type"] == "error":
            parts.append("\n".join(content["traceback"]))
    return "".join(parts)


def test_set_through_a_real_kernel_asks_for_a_password_and_never_echoes(
    kernel: BlockingKernelClient, devserver: DevServer
) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, scopes=["profile:read"])

    messages, request = run(kernel, "%load_ext speckle_nb\n%speckle_token set", answer=token)

    assert request is not None
    assert request["content"]["password"] is True  # the frontend shows a password field
    assert devserver.url in request["content"]["prompt"]
    said = text_of(messages)
    assert f"Signed in to {devserver.url} as {devserver.demo_user.name}" in said

    shown, _ = run(kernel, "%speckle_token")
    display = text_of(shown)
    assert "••••••••" + token[-4:] in display
    used, _ = run(kernel, "import speckle_nb\nprint(speckle_nb.client().active_user().name)")
    assert devserver.demo_user.name in text_of(used)

    everything = json.dumps([messages, shown, used, request], ensure_ascii=False, default=str)
    assert token not in everything
