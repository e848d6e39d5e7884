"""The hub itself, before any sign-in: spawn, a kernel over the websocket, user-redirect."""

from __future__ import annotations

import pytest
from hubkit import Hub, HubBrowser, hops

pytestmark = pytest.mark.hub


def test_each_kernel_runs_in_its_own_users_server(people: dict[str, HubBrowser]) -> None:
    for name, browser in people.items():
        kernel = browser.start_kernel()
        try:
            out = kernel.execute("import os; print(1, os.environ['JUPYTERHUB_USER'])")
        finally:
            kernel.shutdown()
        assert out.error is None
        assert out.stdout == f"1 {name}\n"


def test_user_redirect_keeps_the_query_string(hub: Hub, alice: HubBrowser) -> None:
    query = "access_code=abc123&x=%2F1"
    response = alice.navigate(
        f"/hub/user-redirect/speckle-nb/status?{query}",
        stop=lambda url: url.startswith(f"{hub.url}/user/"),
    )
    assert response.next_url == f"{hub.url}/user/alice/speckle-nb/status?{query}"  # type: ignore[attr-defined]
    # JupyterHub 5+/6 goes through /hub/spawn/<name>?next=… first (starts a stopped server).
    assert hops(response)[-1].startswith("/hub/spawn/alice?next=")
