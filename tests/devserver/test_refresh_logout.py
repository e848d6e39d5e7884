"""Refresh (§3.1) and logout (§3.2) over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from speckle_nb.devserver import DevServer
from speckle_nb.devserver.state import App

from .helpers import HEX42, bearer, exchange_body, mint

ME = {"query": "{ activeUser { id } }"}


def _pair(dev: DevServer, app: App, http: httpx.Client) -> dict[str, str]:
    answer = http.post("/auth/token", json=exchange_body(app, mint(dev, app)))
    assert answer.status_code == 200
    pair: dict[str, str] = answer.json()
    return pair


def _refresh(http: httpx.Client, app: App, refresh_token: object) -> httpx.Response:
    return http.post(
        "/auth/token",
        json={"appId": app.id, "appSecret": app.secret, "refreshToken": refresh_token},
    )


def test_refresh_returns_a_new_pair_and_keeps_the_old_one_valid(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    first = _pair(devserver, dev_app, http)

    answer = _refresh(http, dev_app, first["refreshToken"])

    assert answer.status_code == 200
    second = answer.json()
    assert set(second) == {"token", "refreshToken"}
    assert HEX42.match(second["token"])
    assert second["token"] != first["token"]
    assert second["refreshToken"] != first["refreshToken"]
    assert answer.headers["cache-control"] == "no-cache, no-store"
    assert answer.headers["expires"] == "0"
    assert answer.headers["pragma"] == "no-cache"
    # Not rotation: the old refresh token and the old access token keep working.
    assert _refresh(http, dev_app, first["refreshToken"]).status_code == 200
    for token in (first["token"], second["token"]):
        me = http.post("/graphql", json=ME, headers=bearer(token))
        assert me.json() == {"data": {"activeUser": {"id": devserver.demo_user.id}}}


def _other_app(dev: DevServer, _app: App, pair: dict[str, str]) -> dict[str, object]:
    other = dev.state.register_app("other", "http://127.0.0.1:1/x", ["profile:read"])
    return {"appId": other.id, "appSecret": other.secret, "refreshToken": pair["refreshToken"]}


def _fields(**values: object) -> Callable[[DevServer, App, dict[str, str]], dict[str, object]]:
    def build(_dev: DevServer, app: App, pair: dict[str, str]) -> dict[str, object]:
        body: dict[str, object] = {
            "appId": app.id,
            "appSecret": app.secret,
            "refreshToken": pair["refreshToken"],
        }
        body.update(values)
        return body

    return build


def _tampered(dev: DevServer, app: App, pair: dict[str, str]) -> dict[str, object]:
    forged = pair["refreshToken"][:10] + "0" * 32
    return {"appId": app.id, "appSecret": app.secret, "refreshToken": forged}


# §3.1, in order.
REFRESH_ROWS = [
    ("empty", _fields(refreshToken=""), "Invalid request, insufficient information provided. A valid refresh token is required."),
    ("unknown id", _fields(refreshToken="0123456789" + "a" * 32), "Invalid request"),
    ("wrong app", _other_app, "Invalid request"),
    ("bad secret part", _tampered, "Invalid token"),
    ("wrong app secret", _fields(appSecret="0000000000"), "Invalid request"),
    ("no app id", _fields(appId=None), "Invalid request, insufficient information provided. App Id is required."),
    ("no app secret", _fields(appSecret=""), "Invalid request, insufficient information provided. App Secret is required."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "build", "message"), REFRESH_ROWS, ids=[r[0] for r in REFRESH_ROWS]
)
def test_every_refresh_check(
    devserver: DevServer,
    dev_app: App,
    http: httpx.Client,
    case: str,
    build: Callable[[DevServer, App, dict[str, str]], dict[str, object]],
    message: str,
) -> None:
    pair = _pair(devserver, dev_app, http)

    answer = http.post("/auth/token", json=build(devserver, dev_app, pair))

    assert (answer.status_code, answer.json()) == (401, {"err": message}), case
    assert "cache-control" not in answer.headers


def test_an_expired_refresh_token_is_deleted(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    clock = devserver.state.use_fake_clock()
    pair = _pair(devserver, dev_app, http)
    clock.advance(days=182)
    assert _refresh(http, dev_app, pair["refreshToken"]).status_code == 200
    clock.advance(days=1)  # past 1.577e10 ms (182.5 days)

    expired = _refresh(http, dev_app, pair["refreshToken"])
    again = _refresh(http, dev_app, pair["refreshToken"])

    assert (expired.status_code, expired.json()) == (401, {"err": "Refresh token expired"})
    assert again.json() == {"err": "Invalid request"}  # the row is gone


def test_logout_revokes_both_tokens_and_a_second_logout_fails(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    pair = _pair(devserver, dev_app, http)

    bye = http.post(
        "/auth/logout", json={"token": pair["token"], "refreshToken": pair["refreshToken"]}
    )
    again = http.post("/auth/logout", json={"token": pair["token"]})

    assert (bye.status_code, bye.json()) == (200, {"message": "You have logged out."})
    assert (again.status_code, again.text) == (400, "Something went wrong while trying to logout.")
    gone = http.post("/graphql", json=ME, headers=bearer(pair["token"]))
    assert (gone.status_code, gone.json()) == (403, {"error": "Your token is not valid."})
    assert _refresh(http, dev_app, pair["refreshToken"]).json() == {"err": "Invalid request"}


def test_logout_works_for_personal_access_tokens(devserver: DevServer, http: httpx.Client) -> None:
    pat = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])

    assert http.post("/auth/logout", json={"token": pat}).status_code == 200
    assert devserver.state.validate_token(pat) is None


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": "0123456789" + "f" * 32}])
def test_logout_without_a_known_token_is_a_400(http: httpx.Client, body: dict[str, str]) -> None:
    answer = http.post("/auth/logout", json=body)

    assert (answer.status_code, answer.text) == (
        400,
        "Something went wrong while trying to logout.",
    )


def test_a_test_can_tell_that_the_replaced_pair_was_revoked(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    """What a client test checks after an automatic refresh (issue 15): the old pair,
    which Speckle keeps alive, is revoked by the client's logout — and only it."""
    old = _pair(devserver, dev_app, http)
    new = _refresh(http, dev_app, old["refreshToken"]).json()
    state = devserver.state
    assert state.refresh_token_valid(old["refreshToken"])  # Speckle does not rotate

    logout = http.post(
        "/auth/logout", json={"token": old["token"], "refreshToken": old["refreshToken"]}
    )

    assert logout.status_code == 200
    assert state.logout_calls == 1
    assert not state.refresh_token_valid(old["refreshToken"])
    assert state.validate_token(old["token"]) is None
    assert state.refresh_token_valid(new["refreshToken"])
    assert state.validate_token(new["token"]) is not None
    assert not state.refresh_token_valid(new["refreshToken"][:10] + "0" * 32)


def test_refused_logouts_are_counted_too(devserver: DevServer, http: httpx.Client) -> None:
    answer = http.post("/auth/logout", json={"token": "0" * 42})

    assert answer.status_code == 400
    assert devserver.state.logout_calls == 1
