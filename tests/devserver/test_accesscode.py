"""``GET /auth/accesscode`` (§1.3, §13.2, §13.8) over real loopback HTTP."""

from __future__ import annotations

import httpx
import pytest

from speckle_nb.devserver import DevServer
from speckle_nb.devserver.state import App

from .helpers import CHALLENGE, HEX42, exchange_body


@pytest.fixture
def web_token(devserver: DevServer) -> str:
    """The web app's session token, which carries tokens:write."""
    return devserver.state.create_session_token(devserver.demo_user.id)


def test_redirects_with_the_code_appended_as_text(
    dev_app: App, http: httpx.Client, web_token: str
) -> None:
    answer = http.get(
        "/auth/accesscode",
        params={"appId": dev_app.id, "challenge": CHALLENGE, "token": web_token},
    )

    assert answer.status_code == 302
    location = answer.headers["location"]
    prefix = f"{dev_app.redirect_url}?access_code="
    assert location.startswith(prefix)
    code = location.removeprefix(prefix)
    assert HEX42.match(code)
    assert http.post("/auth/token", json=exchange_body(dev_app, code)).status_code == 200


def test_prevent_redirect_answers_json_and_denied_is_ignored(
    devserver: DevServer, http: httpx.Client, web_token: str
) -> None:
    app = devserver.state.register_app("q", "http://127.0.0.1:9/cb?tab=2", ["profile:read"])

    answer = http.get(
        "/auth/accesscode",
        params={
            "appId": app.id,
            "challenge": CHALLENGE,
            "token": web_token,
            "preventRedirect": "false",  # any non-empty value is truthy
            "denied": "true",
        },
    )

    assert answer.status_code == 200
    url = answer.json()["redirectUrl"]
    # Plain concatenation: a registered query string ends up with a second "?".
    assert url.startswith("http://127.0.0.1:9/cb?tab=2?access_code=")
    assert HEX42.match(url.rsplit("=", 1)[1])


def _params(app: App, user_token: str, **changes: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {"appId": app.id, "challenge": CHALLENGE, "token": user_token}
    params.update(changes)
    return {k: v for k, v in params.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"appId": None}, "appId missing from querystring."),
        ({"appId": "nosuchapp0"}, "App does not exist."),
        ({"challenge": None}, "Missing challenge"),
        ({"token": None}, "Missing token"),
        ({"token": "0123456789" + "0" * 32}, "Invalid token"),
        # Order: an unknown app is reported before a missing challenge or token.
        ({"appId": "nosuchapp0", "challenge": None, "token": None}, "App does not exist."),
    ],
)
def test_refusals_are_400_plain_text(
    dev_app: App, http: httpx.Client, web_token: str, changes: dict[str, str | None], message: str
) -> None:
    answer = http.get("/auth/accesscode", params=_params(dev_app, web_token, **changes))

    assert (answer.status_code, answer.text) == (400, message)


def test_a_token_without_tokens_write_is_refused(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    pat = devserver.state.create_token(devserver.demo_user.id, ["profile:read", "streams:read"])

    answer = http.get("/auth/accesscode", params=_params(dev_app, pat))

    assert (answer.status_code, answer.text) == (
        400,
        "Your auth token does not have the required scope: tokens:write.",
    )


def test_challenge_length_limit(dev_app: App, http: httpx.Client, web_token: str) -> None:
    fits = http.get("/auth/accesscode", params=_params(dev_app, web_token, challenge="a" * 255))
    too_long = http.get("/auth/accesscode", params=_params(dev_app, web_token, challenge="a" * 256))

    assert fits.status_code == 302
    assert (too_long.status_code, too_long.text) == (
        500,
        "Something went wrong while processing your request",
    )
