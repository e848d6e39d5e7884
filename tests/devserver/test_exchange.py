"""``POST /auth/token`` code exchange (§2.2, §13.1, §13.4) over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.state import App

from .helpers import CHALLENGE, HEX42, bearer, exchange_body, mint

Body = dict[str, object]


def test_full_sign_in_and_exchange(devserver: DevServer, dev_app: App, http: httpx.Client) -> None:
    verify = f"{devserver.url}/authn/verify/{dev_app.id}/{CHALLENGE}"
    with BrowserPlayer() as browser:
        landed = browser.sign_in_and_consent(verify, "demo@example.org", "speckle-demo")
    prefix = f"{dev_app.redirect_url}?access_code="
    assert landed.startswith(prefix)
    code = landed.removeprefix(prefix)
    assert HEX42.match(code)

    answer = http.post("/auth/token", json=exchange_body(dev_app, code))

    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token", "refreshToken"}
    assert HEX42.match(body["token"])
    assert HEX42.match(body["refreshToken"])
    assert "cache-control" not in answer.headers  # only the refresh path sets it (§13.4)
    me = http.post(
        "/graphql", json={"query": "{ activeUser { name email } }"}, headers=bearer(body["token"])
    )
    assert me.json() == {"data": {"activeUser": {"name": "Demo User", "email": "demo@example.org"}}}
    info = devserver.state.validate_token(body["token"])
    assert info is not None
    assert info.scopes == dev_app.scopes
    assert info.app_id == dev_app.id
    assert info.name == "speckle-nb test app-token"


def _without(key: str) -> Callable[[DevServer, App, Body], Body]:
    def change(_dev: DevServer, _app: App, body: Body) -> Body:
        return {k: v for k, v in body.items() if k != key}

    return change


def _with(**values: object) -> Callable[[DevServer, App, Body], Body]:
    def change(_dev: DevServer, _app: App, body: Body) -> Body:
        return {**body, **values}

    return change


def _other_apps_code(dev: DevServer, app: App, body: Body) -> Body:
    other = dev.state.register_app("other", "http://127.0.0.1:1/x", ["profile:read"])
    return {**body, "appId": other.id, "appSecret": other.secret}


def _expired(dev: DevServer, _app: App, body: Body) -> Body:
    dev.state.use_fake_clock().advance(minutes=10, ms=1)
    return body


def _app_deleted(dev: DevServer, app: App, body: Body) -> Body:
    dev.state.delete_app(app.id)
    return body


# Every row of §2.2, in order: (row, change to a valid body, message, code burned?)
ROWS = [
    (1, _without("appId"), "Invalid request, insufficient information provided. App Id is required.", False),
    (1, _with(appId=""), "Invalid request, insufficient information provided. App Id is required.", False),
    (2, _without("appSecret"), "Invalid request, insufficient information provided. App Secret is required.", False),
    (3, _with(refreshToken=""), "Invalid request, insufficient information provided. A valid refresh token is required.", False),
    (4, _without("accessCode"), "Invalid request, insufficient information provided. Access Code is required.", False),
    (5, _without("challenge"), "Invalid request, insufficient information provided. Challenge is required.", False),
    (6, _with(accessCode="0" * 42), "Access code not found.", False),
    (7, _other_apps_code, "Invalid request: application id does not match.", False),
    (8, _expired, "Access code expired", True),
    (9, _with(challenge="another-challenge"), "Code challenge mismatch. Ensure the same challenge is used for authentication and token exchange.", True),
    (10, _app_deleted, "Invalid app", True),
    (11, _with(appSecret="0123456789"), "Invalid app secret. Ensure the app secret is correct.", True),
]  # fmt: skip


@pytest.mark.parametrize(("row", "change", "message", "burned"), ROWS)
def test_every_exchange_check_in_order(
    devserver: DevServer,
    dev_app: App,
    http: httpx.Client,
    row: int,
    change: Callable[[DevServer, App, Body], Body],
    message: str,
    burned: bool,
) -> None:
    code = mint(devserver, dev_app)
    body = change(devserver, dev_app, dict(exchange_body(dev_app, code)))

    answer = http.post("/auth/token", json=body)

    assert (answer.status_code, answer.json()) == (401, {"err": message}), f"row {row}"
    assert (devserver.state.pending_codes() == 0) is burned


@pytest.mark.parametrize(
    "spoil",
    [{"challenge": "wrong"}, {"appSecret": "0000000000"}],
    ids=["wrong-challenge", "wrong-secret"],
)
def test_a_failed_attempt_burns_the_code(
    devserver: DevServer, dev_app: App, http: httpx.Client, spoil: dict[str, str]
) -> None:
    code = mint(devserver, dev_app)
    first = http.post("/auth/token", json={**exchange_body(dev_app, code), **spoil})
    assert first.status_code == 401

    retry = http.post("/auth/token", json=exchange_body(dev_app, code))

    assert (retry.status_code, retry.json()) == (401, {"err": "Access code not found."})


def test_an_expired_code_is_burned(devserver: DevServer, dev_app: App, http: httpx.Client) -> None:
    clock = devserver.state.use_fake_clock()
    code = mint(devserver, dev_app)
    clock.advance(minutes=9, seconds=59)
    still_fresh = mint(devserver, dev_app)
    clock.advance(seconds=2)  # the first code is now 10 min 1 s old

    assert http.post("/auth/token", json=exchange_body(dev_app, code)).json() == {
        "err": "Access code expired"
    }
    assert http.post("/auth/token", json=exchange_body(dev_app, code)).json() == {
        "err": "Access code not found."
    }
    assert http.post("/auth/token", json=exchange_body(dev_app, still_fresh)).status_code == 200


def test_a_code_is_single_use(devserver: DevServer, dev_app: App, http: httpx.Client) -> None:
    code = mint(devserver, dev_app)
    assert http.post("/auth/token", json=exchange_body(dev_app, code)).status_code == 200

    again = http.post("/auth/token", json=exchange_body(dev_app, code))

    assert (again.status_code, again.json()) == (401, {"err": "Access code not found."})


def test_a_wrong_app_id_does_not_burn_the_code(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    code = mint(devserver, dev_app)
    other = devserver.state.register_app("other", "http://127.0.0.1:1/x", ["profile:read"])
    wrong = {**exchange_body(dev_app, code), "appId": other.id, "appSecret": other.secret}
    assert http.post("/auth/token", json=wrong).json() == {
        "err": "Invalid request: application id does not match."
    }

    assert http.post("/auth/token", json=exchange_body(dev_app, code)).status_code == 200


@pytest.mark.parametrize(
    "header",
    # "Bearer" is what the server sees of "Bearer " once the header is trimmed.
    ["Bearer 0123456789abcdef0123456789abcdef0123456789", "stale-token", "Bearer"],
)
def test_a_stale_authorization_header_gets_403_and_does_not_burn_the_code(
    devserver: DevServer, dev_app: App, http: httpx.Client, header: str
) -> None:
    code = mint(devserver, dev_app)

    refused = http.post(
        "/auth/token", json=exchange_body(dev_app, code), headers={"Authorization": header}
    )

    assert (refused.status_code, refused.json()) == (403, {"error": "Your token is not valid."})
    assert http.post("/auth/token", json=exchange_body(dev_app, code)).status_code == 200


def test_tolerated_request_shapes(devserver: DevServer, dev_app: App, http: httpx.Client) -> None:
    """Trailing slash, any case, form bodies, and ignored OAuth fields (§13.4, §13.12)."""
    form = http.post(
        "/auth/token/",
        data={**exchange_body(dev_app, mint(devserver, dev_app)), "grant_type": "x"},
    )
    assert form.status_code == 200
    extra = {"redirect_uri": "http://elsewhere", "code_verifier": "v", "grant_type": "code"}
    upper = http.post(
        "/AUTH/Token", json={**exchange_body(dev_app, mint(devserver, dev_app)), **extra}
    )
    assert upper.status_code == 200


def test_built_in_apps_use_their_id_as_secret(devserver: DevServer, http: httpx.Client) -> None:
    app = devserver.state.app("connectrV3")
    assert app is not None
    code = mint(devserver, app)

    answer = http.post(
        "/auth/token",
        json={
            "appId": "connectrV3",
            "appSecret": "connectrV3",
            "accessCode": code,
            "challenge": CHALLENGE,
        },
    )

    assert answer.status_code == 200
    info = devserver.state.validate_token(answer.json()["token"])
    assert info is not None
    assert info.scopes == (
        "streams:read",
        "streams:write",
        "profile:read",
        "profile:email",
        "users:read",
        "users:invite",
    )


@pytest.mark.parametrize(
    "raw",
    ['{"appId": "x",', "not json", '"a string"'],
    ids=["truncated", "garbage", "not-an-object"],
)
def test_malformed_json_is_a_400_before_anything_else(http: httpx.Client, raw: str) -> None:
    answer = http.post(
        "/auth/token",
        content=raw,
        headers={"Content-Type": "application/json", "Authorization": "Bearer nonsense"},
    )

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "USER_INPUT_ERROR"
    assert error["message"].startswith("Invalid request body: ")


def test_a_non_json_body_counts_as_empty(http: httpx.Client) -> None:
    answer = http.post("/auth/token", content="appId=x", headers={"Content-Type": "text/plain"})

    assert answer.json() == {
        "err": "Invalid request, insufficient information provided. App Id is required."
    }


def test_cors_is_open_for_the_token_endpoint(http: httpx.Client) -> None:
    preflight = http.options(
        "/auth/token",
        headers={
            "Origin": "http://127.0.0.1:8888",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    answer = http.post("/auth/token", json={})
    assert answer.headers["access-control-allow-origin"] == "*"
