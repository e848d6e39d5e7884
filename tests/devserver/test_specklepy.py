"""specklepy, the reference client, against the dev server (§7.3, §8.1)."""

from __future__ import annotations

import pytest

from speckle_nb.devserver import DevServer

pytest.importorskip("specklepy")


def test_specklepy_authenticates_and_reads_the_demo_user(devserver: DevServer) -> None:
    from specklepy.api.client import SpeckleClient
    from specklepy.logging import metrics

    metrics.disable()
    token = devserver.state.create_token(
        devserver.demo_user.id, ["streams:read", "profile:read", "profile:email"]
    )
    # gql's sync Client opens and closes its transport around each request.
    client = SpeckleClient(host=devserver.url, use_ssl=False)
    client.authenticate_with_token(token)
    user = client.active_user.get()
    projects = client.active_user.get_projects(limit=10)
    server = client.server.get()
    version = client.server.version()

    assert user is not None
    assert (user.id, user.name, user.email) == (
        devserver.demo_user.id,
        "Demo User",
        "demo@example.org",
    )
    assert client.account.userInfo.email == "demo@example.org"
    assert projects.total_count == 60
    assert len(projects.items) == 10
    assert projects.cursor is not None
    assert server.version == "2.26.0"
    assert server.canonical_url == devserver.url
    assert server.workspaces is not None
    assert server.workspaces.workspaces_enabled is False
    assert version == (2, 26, 0)
