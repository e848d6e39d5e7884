"""Drive a real kernel the way a notebook front end does, and play the person's browser.

Two transports, one interface (``KernelDriver``):

* ``WebSocketKernel`` — a kernel the Jupyter server started (``POST api/kernels``), reached over
  the server's ``api/kernels/<id>/channels`` websocket, as JupyterLab reaches it. Such a kernel
  inherits the server's environment, the way the extension is found in real use.
* ``ZmqKernel`` — a kernel started by ``jupyter_client.KernelManager`` with no Jupyter server
  (like VS Code or nbclient start one).

The driver keeps what a widget manager keeps: each widget's state (from ``comm_open`` and
``update`` messages) and the custom messages sent to it; ``send_to_widget`` sends what a view's
``model.send(...)`` sends. ``stdin`` answers the kernel's ``input_request`` (getpass) in order.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websocket
from jupyter_client.jsonutil import json_default
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

from speckle_nb.devserver import BrowserPlayer
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD

PANEL_ID = "speckle_nb.widget.panel.SignInPanel"


@dataclass
class Execution:
    """What one cell sent: its streams, result, error and every iopub message."""

    msg_id: str
    stdout: str = ""
    stderr: str = ""
    result: str | None = None
    error: str | None = None  # "EName: evalue"
    status: str | None = None  # execute_reply's "ok" / "error"
    idle: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    stdin: list[str] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status is not None and self.idle

    def text(self) -> str:
        """Everything the cell showed, as one JSON text (for leak checks)."""
        return json.dumps(self.messages, default=str)


class KernelDriver:
    def __init__(self) -> None:
        self.session = Session(username="speckle-nb-tests")
        self.executions: dict[str, Execution] = {}
        self.widgets: dict[str, dict[str, Any]] = {}
        self.custom: dict[str, list[dict[str, Any]]] = {}
        self.iopub: list[dict[str, Any]] = []
        self.pending_input: dict[str, Any] | None = None

    # -- transport -----------------------------------------------------------------------

    def _send(self, channel: str, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        """The next message from any channel (with ``"channel"`` set), or None."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- messages ------------------------------------------------------------------------

    def _handle(self, msg: dict[str, Any]) -> None:
        channel = msg["channel"]
        msg_type = msg["header"]["msg_type"]
        parent = (msg.get("parent_header") or {}).get("msg_id")
        execution = self.executions.get(parent) if parent else None
        content = msg["content"]
        if channel == "iopub":
            self.iopub.append(msg)
            self._track_widgets(msg_type, content)
            if execution is not None:
                execution.messages.append(msg)
                if msg_type == "stream":
                    if content["name"] == "stdout":
                        execution.stdout += content["text"]
                    else:
                        execution.stderr += content["text"]
                elif msg_type == "execute_result":
                    execution.result = content["data"].get("text/plain")
                elif msg_type == "error":
                    execution.error = f"{content['ename']}: {content['evalue']}"
                elif msg_type == "status" and content["execution_state"] == "idle":
                    execution.idle = True
        elif channel == "shell" and msg_type == "execute_reply" and execution is not None:
            execution.status = content["status"]
        elif channel == "stdin" and msg_type == "input_request":
            if execution is not None:
                execution.prompts.append(content)
            self.pending_input = msg
            if execution is not None and execution.stdin:
                self.answer(execution.stdin.pop(0))

    def answer(self, value: str) -> None:
        """Type ``value`` into the kernel's pending prompt (getpass/input) and press Enter."""
        request, self.pending_input = self.pending_input, None
        assert request is not None, "the kernel is not asking for input"
        self._send(
            "stdin", self.session.msg("input_reply", {"value": value}, parent=request["header"])
        )

    def _track_widgets(self, msg_type: str, content: dict[str, Any]) -> None:
        if msg_type == "comm_open" and content.get("target_name") == "jupyter.widget":
            self.widgets[content["comm_id"]] = dict(content["data"].get("state") or {})
        elif msg_type == "comm_close":
            self.widgets.pop(content["comm_id"], None)
        elif msg_type == "comm_msg" and content["comm_id"] in self.widgets:
            data = content["data"]
            if data.get("method") == "update":
                self.widgets[content["comm_id"]].update(data.get("state") or {})
            elif data.get("method") == "custom":
                self.custom.setdefault(content["comm_id"], []).append(data["content"])

    def pump(self, until: Callable[[], Any], *, timeout: float, what: str) -> Any:
        """Read messages until ``until()`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = until()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            msg = self._recv(min(remaining, 0.2))
            if msg is not None:
                self._handle(msg)

    # -- cells ---------------------------------------------------------------------------

    def start(
        self, code: str, *, stdin: Iterable[str] = (), allow_stdin: bool | None = None
    ) -> Execution:
        """Send a cell; ``stdin`` answers its prompts in order (more can be ``answer``-ed)."""
        answers = list(stdin)
        msg = self.session.msg(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": bool(answers) if allow_stdin is None else allow_stdin,
                "stop_on_error": True,
            },
        )
        execution = Execution(msg["header"]["msg_id"], stdin=answers)
        self.executions[execution.msg_id] = execution
        self._send("shell", msg)
        return execution

    def finish(self, execution: Execution, *, timeout: float = 60) -> Execution:
        self.pump(lambda: execution.done, timeout=timeout, what="the cell to finish")
        return execution

    def run(self, code: str, *, timeout: float = 60, stdin: Iterable[str] = ()) -> Execution:
        """Run a cell and wait for it; raises if it failed (``check``-style)."""
        execution = self.finish(self.start(code, stdin=stdin), timeout=timeout)
        if execution.error:
            raise AssertionError(f"cell failed: {execution.error}\n{execution.stderr}")
        return execution

    # -- widgets -------------------------------------------------------------------------

    def panels(self) -> list[str]:
        return [cid for cid, s in self.widgets.items() if s.get("_anywidget_id") == PANEL_ID]

    def panel(self, execution: Execution) -> str:
        """The sign-in panel the cell ``execution`` created (waits for it)."""

        def opened() -> str | None:
            for msg in execution.messages:
                content = msg["content"]
                if msg["header"]["msg_type"] == "comm_open" and (
                    (content.get("data") or {}).get("state", {}).get("_anywidget_id") == PANEL_ID
                ):
                    return str(content["comm_id"])
            return None

        comm_id: str = self.pump(opened, timeout=30, what="the cell's sign-in panel")
        return comm_id

    def state(self, comm_id: str) -> dict[str, Any]:
        return self.widgets[comm_id]

    def wait_state(
        self, comm_id: str, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 30
    ) -> dict[str, Any]:
        self.pump(
            lambda: predicate(self.widgets[comm_id]),
            timeout=timeout,
            what=f"the panel to reach a state (now {self.widgets[comm_id].get('state')!r}, "
            f"{self.widgets[comm_id].get('message')!r})",
        )
        return self.widgets[comm_id]

    def send_to_widget(self, comm_id: str, content: dict[str, Any]) -> None:
        """What the view's ``model.send(content)`` puts on the wire."""
        msg = self.session.msg(
            "comm_msg", {"comm_id": comm_id, "data": {"method": "custom", "content": content}}
        )
        self._send("shell", msg)

    def authorize_url(self, comm_id: str, *, timeout: float = 30) -> str:
        """The authorize URL the kernel sent the view privately, for the panel's current flow."""

        def current() -> str | None:
            flow = self.widgets[comm_id].get("request_id")
            urls = [
                m["url"]
                for m in self.custom.get(comm_id, [])
                if m.get("type") == "authorize-url" and m.get("flow") == flow
            ]
            return urls[-1] if urls else None

        url: str = self.pump(current, timeout=timeout, what="the authorize URL")
        return url

    def wire_text(self) -> str:
        """Every iopub message so far (outputs, widget state, custom messages) as JSON."""
        return json.dumps(self.iopub, default=str)


class WebSocketKernel(KernelDriver):
    """A kernel of a running Jupyter server, over its websocket (as JupyterLab talks to it)."""

    def __init__(self, jupyter_url: str, token: str) -> None:
        super().__init__()
        self.jupyter_url = jupyter_url
        self._auth = {"Authorization": f"token {token}"}
        reply = httpx.post(
            f"{jupyter_url}api/kernels", json={"name": "python3"}, headers=self._auth, timeout=30
        )
        assert reply.status_code == 201, reply.text
        self.kernel_id = reply.json()["id"]
        ws_url = jupyter_url.replace("http://", "ws://", 1)
        self._info: dict[str, Any] = {}
        self._info_sent = 0.0
        self._ws = websocket.create_connection(
            f"{ws_url}api/kernels/{self.kernel_id}/channels?session_id={uuid.uuid4().hex}",
            header=[f"{k}: {v}" for k, v in self._auth.items()],
            suppress_origin=True,
            timeout=30,
        )
        self.pump(self._ready, timeout=60, what="the kernel to start")

    def _ready(self) -> bool:
        # kernel_info answers once the kernel runs; ask until it does
        if not self._info_sent or time.monotonic() - self._info_sent > 1:
            self._info = self.session.msg("kernel_info_request", {})
            self._send("shell", self._info)
            self._info_sent = time.monotonic()
        return any(
            m["header"]["msg_type"] == "status"
            and m["parent_header"].get("msg_id") == self._info["header"]["msg_id"]
            and m["content"]["execution_state"] == "idle"
            for m in self.iopub
        )

    def _send(self, channel: str, msg: dict[str, Any]) -> None:
        wire = {**msg, "channel": channel, "buffers": []}
        self._ws.send(json.dumps(wire, default=json_default))

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        self._ws.settimeout(timeout)
        try:
            raw = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        if isinstance(raw, bytes):  # binary frame: offsets, then the JSON message, then buffers
            count = int.from_bytes(raw[:4], "big")
            offsets = [int.from_bytes(raw[4 * (i + 1) : 4 * (i + 2)], "big") for i in range(count)]
            raw = raw[offsets[0] : offsets[1] if count > 1 else None].decode()
        msg: dict[str, Any] = json.loads(raw)
        return msg

    def close(self) -> None:
        self._ws.close()
        httpx.delete(f"{self.jupyter_url}api/kernels/{self.kernel_id}", headers=self._auth)


class ZmqKernel(KernelDriver):
    """A kernel started with ``jupyter_client`` and no Jupyter server."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__()
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.session = self.client.session
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()

    def _send(self, channel: str, msg: dict[str, Any]) -> None:
        getattr(self.client, f"{channel}_channel").send(msg)

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            for name in ("stdin", "shell", "iopub"):
                channel = getattr(self.client, f"{name}_channel")
                if channel.msg_ready():
                    msg: dict[str, Any] = channel.get_msg(timeout=0)
                    msg["channel"] = name
                    return msg
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


# -- the person's browser --------------------------------------------------------------------


def play_extension_sign_in(
    jupyter_url: str, jupyter_token: str, start_path: str, action: str = "allow"
) -> httpx.Response:
    """Open the panel's start URL (logged in to Jupyter), sign in and answer consent on the
    dev server, and follow Speckle's redirect to the callback; returns the callback page."""
    origin = jupyter_url.split("/", 3)[:3]
    with BrowserPlayer(
        headers_by_origin={"/".join(origin): {"Authorization": f"token {jupyter_token}"}}
    ) as browser:
        callback = browser.sign_in_and_consent(
            jupyter_url + start_path,
            DEMO_EMAIL,
            DEMO_PASSWORD,
            action,
            stop_at_prefix=f"{jupyter_url}speckle-nb/callback",
        )
        page = browser.open(callback)
        assert page is not None
        return page.response


def play_speckle_sign_in(authorize_url: str, action: str = "allow") -> str:
    """Sign in on the dev server and answer consent; returns where Speckle sends the browser."""
    with BrowserPlayer() as browser:
        return browser.sign_in_and_consent(authorize_url, DEMO_EMAIL, DEMO_PASSWORD, action)
