"""The lapsed workspace SSO session switch (issue 15): projects of a workspace with SSO
drop out of lists, and ``project(id)`` answers ``SSO_SESSION_MISSING_OR_EXPIRED_ERROR``
in a 200, with the workspace slug in ``extensions.workspaceSlug``."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from speckle_nb.devserver import BrowserPlayer, DevServer

from .helpers import CHALLENGE, bearer

PROJECT = "query($id: String!) { project(id: $id) { id name } }"
LIST = "{ activeUser { projects(limit: 100) { totalCount items { id } } expiredSsoSessions { slug name } } }"


@pytest.fixture
def reader(devserver: DevServer) -> dict[str, str]:
    token = devserver.state.create_token(devserver.demo_user.id, ["streams:read", "profile:read"])
    return bearer(token)


def _project(http: httpx.Client, headers: dict[str, str], project_id: str) -> httpx.Response:
    return http.post(
        "/graphql", json={"query": PROJECT, "variables": {"id": project_id}}, headers=headers
    )


def test_a_live_session_reaches_the_workspace(
    devserver: DevServer, http: httpx.Client, reader: dict[str, str]
) -> None:
    workspace = devserver.state.seed_sso_workspace()
    inside = [
        p
        for p in devserver.state.projects_page(devserver.demo_user.id, 100).items
        if p.workspace_id
    ]

    listed = http.post("/graphql", json={"query": LIST}, headers=reader).json()
    one = _project(http, reader, inside[0].id).json()

    assert len(inside) == 2
    assert inside[0].workspace_id == workspace.id
    assert listed["data"]["activeUser"]["projects"]["totalCount"] == 62
    assert listed["data"]["activeUser"]["expiredSsoSessions"] == []
    assert one == {"data": {"project": {"id": inside[0].id, "name": inside[0].name}}}


def test_a_lapsed_session_hides_the_projects_and_refuses_direct_access(
    devserver: DevServer, http: httpx.Client, reader: dict[str, str]
) -> None:
    devserver.state.seed_sso_workspace()
    inside = [
        p
        for p in devserver.state.projects_page(devserver.demo_user.id, 100).items
        if p.workspace_id
    ]
    personal = devserver.state.projects_page(devserver.demo_user.id, 1).items[0]
    devserver.options.sso_session_lapsed = True

    listed = http.post("/graphql", json={"query": LIST}, headers=reader).json()
    refused = _project(http, reader, inside[0].id)
    still = _project(http, reader, personal.id).json()

    user = listed["data"]["activeUser"]
    assert user["projects"]["totalCount"] == 60
    assert not {p["id"] for p in user["projects"]["items"]} & {p.id for p in inside}
    assert user["expiredSsoSessions"] == [{"slug": "acme-sso", "name": "Acme (SSO)"}]
    assert (refused.status_code, refused.text) == (
        200,
        '{"errors":[{"message":"Your workspace SSO session is expired or it does not exist",'
        '"locations":[{"line":1,"column":23}],"path":["project"],'
        '"extensions":{"code":"SSO_SESSION_MISSING_OR_EXPIRED_ERROR",'
        '"workspaceSlug":"acme-sso","statusCode":401}}],"data":null}\n',
    )
    assert still == {"data": {"project": {"id": personal.id, "name": personal.name}}}


def test_a_workspace_without_sso_is_not_affected(
    devserver: DevServer, http: httpx.Client, reader: dict[str, str]
) -> None:
    plain = devserver.state.add_workspace("Plain", "plain")
    project = devserver.state.add_project(
        devserver.demo_user.id, "Plain one", workspace_id=plain.id
    )
    devserver.options.sso_session_lapsed = True

    answer = _project(http, reader, project.id).json()

    assert answer == {"data": {"project": {"id": project.id, "name": "Plain one"}}}


def test_cli_switch_starts_with_the_session_lapsed() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "speckle_nb.devserver", "--port", "0", "--sso-lapsed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl+C"):
                break
        url = lines[0].split(" on ", 1)[1].strip()
        # Sign in as a connector would (sca is trusted: no consent page), then look.
        with BrowserPlayer() as browser:
            landed = browser.sign_in_and_consent(
                f"{url}/authn/verify/sca/{CHALLENGE}", "demo@example.org", "speckle-demo"
            )
        code = landed.split("access_code=", 1)[1]
        pair = httpx.post(
            f"{url}/auth/token",
            json={"appId": "sca", "appSecret": "sca", "accessCode": code, "challenge": CHALLENGE},
        ).json()
        answer = httpx.post(f"{url}/graphql", json={"query": LIST}, headers=bearer(pair["token"]))
    finally:
        process.terminate()
        process.wait(10)

    assert any("acme-sso" in line for line in lines)
    user = answer.json()["data"]["activeUser"]
    assert user["expiredSsoSessions"] == [{"slug": "acme-sso", "name": "Acme (SSO)"}]
    assert user["projects"]["totalCount"] == 60
