"""What the widget tests share: the recorded wire, the person's browser, leak checks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import ipywidgets

from speckle_nb.devserver import BrowserPlayer
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD

SCOPES = ("profile:read", "profile:email", "streams:read")


@dataclass
class Sent:
    msg_type: str
    data: dict[str, Any]


class Wire:
    """Everything the kernel side sent over all widget comms in one test."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def custom(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Custom messages (``model.send``) the views would get, oldest first."""
        out = [
            s.data["content"]
            for s in self.sent
            if s.msg_type == "comm_msg" and s.data.get("method") == "custom"
        ]
        return [c for c in out if kind is None or c.get("type") == kind]

    def state_text(self) -> str:
        """Every state the views were sent (comm opens and updates), as one JSON text."""
        return json.dumps(
            [s.data for s in self.sent if s.data.get("method") != "custom"], default=str
        )


def play_sign_in(authorize_url: str, action: str = "allow") -> str:
    """The person's browser: sign in on the dev server and answer consent; returns the URL
    the browser is sent to (not fetched)."""
    with BrowserPlayer() as browser:
        return browser.sign_in_and_consent(authorize_url, DEMO_EMAIL, DEMO_PASSWORD, action)


def manager_state_text() -> str:
    return json.dumps(ipywidgets.Widget.get_manager_state(), default=str)


def assert_nowhere(wire: Wire, panel: Any, *secrets: str | None) -> None:
    """None of ``secrets`` is in the widget state, the panel's state, anything sent to the
    views as state, or the panel's repr (the failure names the place, not the secret)."""
    places = {
        "widget manager state": manager_state_text(),
        "panel state": json.dumps(panel.get_state(), default=str),
        "state sent to the views": wire.state_text(),
        "panel repr": repr(panel),
    }
    for secret in secrets:
        assert secret, "a secret to look for is empty"
        for where, text in places.items():
            assert secret not in text, f"a secret reached the {where}"
