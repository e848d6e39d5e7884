"""``speckle_nb.pickup`` on a MockTransport: the request, and each answer mapped to a result."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from speckle_nb import errors
from speckle_nb.pickup import PickupClient, SignInRequest

JUPYTER = "http://127.0.0.1:8888/a%40b"
CREDS = {
    "server_url": "https://speckle.example.org",
    "token": "t" * 42,
    "refresh_token": "r" * 42,
    "user": {
        "id": "u1",
        "name": "Demo",
        "email": None,
        "avatar": None,
        "company": None,
        "role": None,
    },
    "scopes": ["profile:read"],
    "app_id": "a1b2c3d4e5",
}

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, seen: list[dict[str, Any]] | None = None) -> PickupClient:
    def record(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()  # (.path would decode %40)
        assert path.startswith("/a%40b/speckle-nb/")
        assert "authorization" not in request.headers
        if seen is not None:
            seen.append({"path": path, **json.loads(request.content)})
        return handler(request)

    return PickupClient(JUPYTER, transport=httpx.MockTransport(record))


def answer(status: int, body: Any, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def test_request_hides_its_secret_and_builds_the_start_path() -> None:
    request = SignInRequest.new("HTTPS://Speckle.Example.org/")
    assert len(request.request_id) == 24
    assert len(request.pickup_secret) >= 43
    assert request.pickup_secret not in repr(request)
    assert request.pickup_hash == hashlib.sha256(request.pickup_secret.encode()).hexdigest()
    path, _, query = request.start_path().partition("?")
    assert path == "speckle-nb/start"
    assert parse_qs(query) == {
        "request": [request.request_id],
        "pickup": [request.pickup_hash],
        "server": ["https://speckle.example.org"],
    }
    assert request.pickup_secret not in request.start_path()
    assert "server=" not in SignInRequest.new().start_path()
    with pytest.raises(errors.ConfigurationError):
        SignInRequest.new("ftp://nope")


def test_poll_sends_the_secret_in_the_body_only() -> None:
    seen: list[dict[str, Any]] = []
    request = SignInRequest.new()
    assert client(answer(200, {"status": "pending"}), seen).poll(request, hold=12) is None
    assert seen == [
        {
            "path": "/a%40b/speckle-nb/pickup",
            "request": request.request_id,
            "secret": request.pickup_secret,
            "hold": 12,
            "action": "wait",
        }
    ]


def test_poll_returns_credentials_from_sign_in() -> None:
    creds = client(answer(200, {"status": "ok", "credentials": CREDS})).poll(SignInRequest.new())
    assert creds is not None
    assert (creds.server_url, creds.token, creds.refresh_token) == (
        CREDS["server_url"],
        "t" * 42,
        "r" * 42,
    )
    assert creds.user is not None
    assert creds.user.name == "Demo"
    assert (creds.source, creds.app_id, creds.scopes) == (
        "sign-in",
        "a1b2c3d4e5",
        ("profile:read",),
    )
    assert "t" * 42 not in repr(creds)


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("denied", errors.SignInDeniedError),
        ("expired", errors.SignInExpiredError),
        ("superseded", errors.SignInSupersededError),
        ("cancelled", errors.SignInCancelledError),
        ("failed", errors.SignInError),
    ],
)
def test_poll_raises_the_reported_error(reason: str, cls: type[errors.SignInError]) -> None:
    body = {"status": "error", "reason": reason, "message": f"why: {reason}. Next step."}
    with pytest.raises(cls, match=f"why: {reason}") as caught:
        client(answer(200, body)).poll(SignInRequest.new("https://s.example"))
    assert caught.value.reason == reason or cls is errors.SignInError
    assert caught.value.server_url == "https://s.example"


def test_forbidden_is_a_sign_in_error() -> None:
    body = {"status": "error", "reason": "forbidden", "message": "wrong pickup secret"}
    with pytest.raises(errors.SignInError, match="wrong pickup secret"):
        client(answer(403, body)).poll(SignInRequest.new())


def test_missing_extension_and_broken_server() -> None:
    with pytest.raises(errors.ConfigurationError, match="jupyter server extension enable"):
        client(lambda r: httpx.Response(404, text="Not Found")).poll(SignInRequest.new())
    with pytest.raises(errors.ServerError) as caught:
        client(lambda r: httpx.Response(500, text="<html>")).poll(SignInRequest.new())
    assert caught.value.status_code == 500


def test_unreachable_server() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    request = SignInRequest.new()
    with pytest.raises(errors.TransportError, match="could not be reached") as caught:
        client(refuse).poll(request)
    assert request.pickup_secret not in str(caught.value)


def test_wait_times_out_and_cancels() -> None:
    seen: list[dict[str, Any]] = []

    def pending_then_cancel(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("action") == "cancel":
            return httpx.Response(
                200, json={"status": "error", "reason": "cancelled", "message": "x"}
            )
        return httpx.Response(200, json={"status": "pending"})

    began = time.monotonic()
    with pytest.raises(errors.SignInTimeoutError, match=r"within 0\.3 s"):
        client(pending_then_cancel, seen).wait(SignInRequest.new(), timeout=0.3)
    assert time.monotonic() - began < 3
    assert seen[-1]["action"] == "cancel"
    assert seen[0]["hold"] <= 0.3


def test_wait_returns_on_the_first_result() -> None:
    answers = iter([{"status": "pending"}, {"status": "ok", "credentials": CREDS}])
    with PickupClient(
        JUPYTER, transport=httpx.MockTransport(lambda r: httpx.Response(200, json=next(answers)))
    ) as pickup:
        pickup.hold = 0.01
        creds = pickup.wait(SignInRequest.new(), timeout=10)
    assert creds.token == "t" * 42


def test_wait_stops_when_cancelled() -> None:
    cancelled = threading.Event()
    seen: list[dict[str, Any]] = []

    def pending(request: httpx.Request) -> httpx.Response:
        cancelled.set()  # the user pressed Cancel while this poll was held
        if json.loads(request.content).get("action") == "cancel":
            return httpx.Response(
                200, json={"status": "error", "reason": "cancelled", "message": "x"}
            )
        return httpx.Response(200, json={"status": "pending"})

    with pytest.raises(errors.SignInCancelledError):
        client(pending, seen).wait(SignInRequest.new(), timeout=30, cancelled=cancelled)
    assert [s["action"] for s in seen] == ["wait", "cancel"]


def test_cancel_accepts_the_cancelled_answer_and_raises_otherwise() -> None:
    ok = {"status": "error", "reason": "cancelled", "message": "cancelled"}
    client(answer(200, ok)).cancel(SignInRequest.new())
    with pytest.raises(errors.SignInError):
        client(answer(403, {"status": "error", "reason": "forbidden", "message": "no"})).cancel(
            SignInRequest.new()
        )


def test_ping() -> None:
    seen: list[dict[str, Any]] = []
    ours = answer(200, {"status": "ready", "version": "0.1.0"}, **{"X-Speckle-NB": "0.1.0"})
    assert client(ours, seen).ping() is True
    assert seen == [{"path": "/a%40b/speckle-nb/pickup", "action": "ping"}]
    assert client(lambda r: httpx.Response(404, text="Not Found")).ping() is False
    # a 200 from something else (no marker header) is not us
    assert client(answer(200, {"status": "ready"})).ping() is False

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert client(down).ping() is False


def test_refresh_maps_the_answers() -> None:
    pair = client(
        answer(200, {"status": "ok", "token": "n" * 42, "refresh_token": "m" * 42})
    ).refresh("https://s.example", "r" * 42)
    assert (pair.token, pair.refresh_token) == ("n" * 42, "m" * 42)
    refused = {
        "status": "error",
        "reason": "refused",
        "message": "refused: Invalid request",
        "server_message": "Invalid request",
    }
    with pytest.raises(errors.TokenExchangeError) as caught:
        client(answer(200, refused)).refresh("https://s.example", "r" * 42)
    assert caught.value.server_message == "Invalid request"
    with pytest.raises(errors.TransportError):
        client(answer(200, {"status": "error", "reason": "unreachable", "message": "x"})).refresh(
            "https://s.example", "r"
        )
    with pytest.raises(errors.ConfigurationError):
        client(
            answer(403, {"status": "error", "reason": "server-not-allowed", "message": "x"})
        ).refresh("https://s.example", "r")


def test_loopback_https_skips_certificate_checks_only_on_loopback() -> None:
    assert (
        PickupClient("https://127.0.0.1:8888/")._http._transport._pool._ssl_context.verify_mode == 0
    )  # type: ignore[attr-defined]
    remote = PickupClient("https://jupyter.example.org/")
    assert remote._http._transport._pool._ssl_context.verify_mode != 0  # type: ignore[attr-defined]
    assert urlsplit(remote.jupyter_url).path == "/"
