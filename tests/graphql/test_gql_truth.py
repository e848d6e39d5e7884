"""Layer 1: the words and types a caller meets after sign-in (issue 15).

A lapsed workspace SSO session is its own error with the link that fixes it and no token
refresh; a server sentence never ends in ".."; a failed refresh gives one next step.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from speckle_nb import WorkspaceSsoError
from speckle_nb.errors import GraphQLError, InvalidTokenError, SpeckleError, TokenExchangeError
from speckle_nb.graphql import SpeckleClient

SERVER = "http://speckle.test"
TOKEN = "0123456789" + "abcdef0123456789abcdef0123456789"
SSO_CODE = "SSO_SESSION_MISSING_OR_EXPIRED_ERROR"
PROJECT_QUERY = 'query { project(id: "p1") { id name } }'


def sso_error(**extensions: Any) -> dict[str, Any]:
    return {
        "message": "No valid SSO session found for the given workspace. Please sign in.",
        "path": ["project"],
        "extensions": {"code": SSO_CODE, "statusCode": 401, **extensions},
    }


def client_answering(body: Any, refreshes: list[int]) -> SpeckleClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    def refresher() -> str:
        refreshes.append(1)
        return "f" * 42

    return SpeckleClient(
        SERVER, TOKEN, transport=httpx.MockTransport(handler), token_refresher=refresher
    )


def test_a_lapsed_workspace_sso_session_is_its_own_error_with_the_link() -> None:
    refreshes: list[int] = []
    body = {"errors": [sso_error(workspaceSlug="acme-arch")], "data": {"project": None}}
    with client_answering(body, refreshes) as client, pytest.raises(WorkspaceSsoError) as caught:
        client.execute(PROJECT_QUERY)
    error = caught.value
    assert isinstance(error, GraphQLError)  # one tree: callers catching GraphQLError still do
    assert error.workspace_slug == "acme-arch"
    assert error.sso_url == f"{SERVER}/workspaces/acme-arch/sso"
    assert error.sso_url in str(error)
    assert error.data == {"project": None}  # partial data kept
    assert error.codes == [SSO_CODE]
    assert refreshes == []  # no refresh fixes a lapsed SSO session
    assert TOKEN not in f"{error} {error!r}"


@pytest.mark.parametrize(
    ("message", "slug"),
    [("acme-arch", "acme-arch"), (f"{SSO_CODE}:acme-arch", "acme-arch")],
)
def test_older_servers_name_the_workspace_in_the_message(message: str, slug: str) -> None:
    error = {"message": message, "extensions": {"code": SSO_CODE}}
    with (
        client_answering({"errors": [error], "data": None}, []) as client,
        pytest.raises(WorkspaceSsoError) as caught,
    ):
        client.execute(PROJECT_QUERY)
    assert caught.value.sso_url == f"{SERVER}/workspaces/{slug}/sso"


def test_without_a_slug_the_error_still_says_what_to_do() -> None:
    with (
        client_answering({"errors": [sso_error()], "data": None}, []) as client,
        pytest.raises(WorkspaceSsoError) as caught,
    ):
        client.execute(PROJECT_QUERY)
    assert caught.value.workspace_slug is None
    assert caught.value.sso_url is None
    assert f"{SERVER}/workspaces" in str(caught.value)
    assert "single sign-on" in str(caught.value)


def test_the_sso_error_wins_over_an_earlier_plain_error() -> None:
    other = {"message": "Project not found", "extensions": {"code": "STREAM_NOT_FOUND"}}
    body = {"errors": [other, sso_error(workspaceSlug="acme")], "data": None}
    with client_answering(body, []) as client, pytest.raises(WorkspaceSsoError) as caught:
        client.execute(PROJECT_QUERY)
    assert len(caught.value.errors) == 2


def test_a_server_sentence_never_ends_in_two_full_stops() -> None:
    error = {"message": "Project not found.", "extensions": {"code": "STREAM_NOT_FOUND"}}
    with (
        client_answering({"errors": [error], "data": None}, []) as client,
        pytest.raises(GraphQLError) as caught,
    ):
        client.execute(PROJECT_QUERY)
    assert ".." not in str(caught.value)
    assert "Project not found" in str(caught.value)


def test_a_failed_refresh_gives_one_next_step() -> None:
    """The refresher's own error already says what to do: it is not followed by a second hint."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": "Your token is not valid."})

    def refresher() -> str:
        raise TokenExchangeError(
            f'{SERVER} refused to renew the token; it said: "Invalid request". '
            "Sign in again with `speckle_nb.sign_in()`.",
            server_url=SERVER,
        )

    client = SpeckleClient(
        SERVER, TOKEN, transport=httpx.MockTransport(handler), token_refresher=refresher
    )
    with client, pytest.raises(InvalidTokenError) as caught:
        client.execute("query { activeUser { id } }")
    text = str(caught.value)
    assert text.count("Sign in again") == 1
    assert "refused the sign-in" not in text


def test_a_refused_refresh_speaks_of_renewing_not_of_a_sign_in() -> None:
    from speckle_nb.oauth import App, AuthClient

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["refreshToken"]
        return httpx.Response(401, json={"err": "Invalid request"})

    app = App(SERVER, "abcdef0123", "0123abcdef")
    auth = AuthClient(transport=httpx.MockTransport(handler))
    with auth, pytest.raises(SpeckleError) as caught:
        auth.refresh(app, "e" * 42)
    text = str(caught.value)
    assert "refused the sign-in" not in text
    assert 'it said: "Invalid request". ' in text  # the server's words end before ours begin
    assert "Invalid request Sign in" not in text
