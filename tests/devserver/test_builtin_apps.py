"""The built-in apps every Speckle server has (§4.3), and the zero-configuration sign-in
through ``connectrV3`` played over real loopback HTTP, as the kernel side will use it."""

from __future__ import annotations

import httpx
import pytest

from speckle_nb.devserver import BrowserPlayer, DevServer

from .helpers import CHALLENGE, HEX42

CONNECTOR = [
    "streams:read",
    "streams:write",
    "profile:read",
    "profile:email",
    "users:read",
    "users:invite",
]
# id: (name, redirect URL, trustByDefault, scopes); "{origin}" is the server's URL.
BUILT_IN = {
    "spklwebapp": ("Speckle Web Manager", "{origin}", True, None),
    "explorer": ("Speckle Explorer", "{origin}/explorer", True, None),
    "sdm": ("Speckle Desktop Manager", "speckle://account", True, CONNECTOR),
    "sdui": ("DUI", "https://dui.speckle.systems/authn/callback", False, CONNECTOR),
    "sca": ("Speckle Connector", "http://localhost:29363", True, CONNECTOR),
    "sdas": ("Speckle Connector", "http://localhost:29364", True, CONNECTOR),
    "connectrV3": ("Desktop Connectors", "http://localhost:29355", False, CONNECTOR),
    "spklexcel": (
        "Speckle Connector For Excel",
        "https://speckle-excel.netlify.app",
        True,
        CONNECTOR,
    ),
    "spklpwerbi": (
        "Speckle Connector For PowerBI",
        "https://oauth.powerbi.com/views/oauthredirect.html",
        True,
        [
            "streams:read",
            "profile:read",
            "profile:email",
            "users:read",
            "users:invite",
            "tokens:write",
        ],
    ),
}
APP_QUERY = """query($id: String!) {
  app(id: $id) { id name redirectUrl trustByDefault public secret author { id } scopes { name } }
}"""
DEMO = ("demo@example.org", "speckle-demo")


@pytest.mark.parametrize("app_id", list(BUILT_IN))
def test_built_in_app_metadata_is_the_real_servers(
    devserver: DevServer, http: httpx.Client, app_id: str
) -> None:
    name, redirect, trusted, scopes = BUILT_IN[app_id]

    answer = http.post("/graphql", json={"query": APP_QUERY, "variables": {"id": app_id}})

    app = answer.json()["data"]["app"]
    assert app == {
        "id": app_id,
        "name": name,
        "redirectUrl": redirect.format(origin=devserver.url),
        "trustByDefault": trusted,
        "public": True,
        "secret": "App secrets are only revealed to their author 😉",
        "author": None,
        "scopes": app["scopes"] if scopes is None else [{"name": s} for s in scopes],
    }
    if scopes is None:  # "all": every scope the server knows, tokens:write included
        assert {"name": "tokens:write"} in app["scopes"]


@pytest.mark.parametrize("app_id", list(BUILT_IN))
def test_built_in_app_secret_is_its_id(
    devserver: DevServer, http: httpx.Client, app_id: str
) -> None:
    code = devserver.state.mint_access_code(app_id, devserver.demo_user.id, CHALLENGE)
    body = {"appId": app_id, "appSecret": app_id, "accessCode": code, "challenge": CHALLENGE}

    answer = http.post("/auth/token", json=body)

    assert answer.status_code == 200
    assert HEX42.match(answer.json()["token"])


def test_sign_in_through_connectr_v3_over_http(devserver: DevServer) -> None:
    """verify → log in → consent page naming Desktop Connectors → Authorize → the
    browser is sent to localhost:29355 with the code → exchange with secret = id."""
    verify = f"{devserver.url}/authn/verify/connectrV3/{CHALLENGE}"
    with BrowserPlayer() as browser:
        login = browser.open(verify)
        assert login is not None
        assert login.kind == "login"
        consent = browser.log_in(*DEMO)
        assert consent is not None
        assert consent.kind == "consent"
        assert "Desktop Connectors" in consent.response.text
        landed = browser.consent(stop_at_prefix="http://localhost:29355")

    assert landed is None
    assert browser.stopped_at is not None
    # The server writes the URL as `${redirectUrl}?access_code=…`; a browser adds the "/".
    prefix = "http://localhost:29355?access_code="
    assert browser.stopped_at.startswith(prefix)
    code = browser.stopped_at.removeprefix(prefix)
    assert HEX42.match(code)
    with httpx.Client(base_url=devserver.url) as http:
        pair = http.post(
            "/auth/token",
            json={
                "appId": "connectrV3",
                "appSecret": "connectrV3",
                "accessCode": code,
                "challenge": CHALLENGE,
            },
        )
        me = http.post(
            "/graphql",
            json={"query": "{ activeUser { id name } }"},
            headers={"Authorization": f"Bearer {pair.json()['token']}"},
        )

    assert pair.status_code == 200
    assert set(pair.json()) == {"token", "refreshToken"}
    assert me.json() == {
        "data": {"activeUser": {"id": devserver.demo_user.id, "name": devserver.demo_user.name}}
    }
