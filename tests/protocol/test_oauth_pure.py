"""Layer 1: the protocol core's pure functions and error mapping, on httpx.MockTransport."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx
import pytest

from speckle_nb import errors
from speckle_nb.credentials import Credentials, User, normalize_server_url
from speckle_nb.oauth import (
    App,
    AsyncAuthClient,
    AuthClient,
    Challenge,
    TokenPair,
    authorize_url,
    new_challenge,
    parse_callback_url,
    s256,
)

SERVER = "https://speckle.example.org"
SECRET = "a1b2c3d4e5"
TOKEN = "0123456789" + "abcdef0123456789abcdef0123456789"
REFRESH = "9876543210" + "fedcba9876543210fedcba9876543210"
CODE = "c0de" * 10 + "ab"
APP = App(SERVER, "0a1b2c3d4e", SECRET)


def test_plain_challenge_is_url_safe_random_and_equal_to_verifier() -> None:
    first, second = new_challenge(), new_challenge()
    assert first.method == "plain"
    assert first.challenge == first.verifier
    assert first.challenge != second.challenge
    # 43 chars: far under the server's 255-char column, URL-safe as a path segment.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first.challenge)


def test_s256_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pair = new_challenge("S256")
    digest = hashlib.sha256(pair.verifier.encode()).digest()
    assert pair.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_authorize_url_uses_path_segments_and_no_query_for_plain() -> None:
    challenge = Challenge("plain", "abc-_123", "abc-_123")
    assert authorize_url(APP, challenge) == f"{SERVER}/authn/verify/0a1b2c3d4e/abc-_123"
    s = Challenge("S256", "v", "ch")
    assert (
        authorize_url(APP, s) == f"{SERVER}/authn/verify/0a1b2c3d4e/ch?code_challenge_method=S256"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://App.Speckle.Systems/", "https://app.speckle.systems"),
        ("app.speckle.systems", "https://app.speckle.systems"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://host/speckle/", "https://host/speckle"),
    ],
)
def test_normalize_server_url(url: str, expected: str) -> None:
    assert normalize_server_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://x", "https://", "https://h/?a=1", "https://u:p@h"])
def test_normalize_server_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match=r"Speckle server URL|must not"):
        normalize_server_url(url)


def test_app_rejects_bad_settings_with_the_setting_named() -> None:
    with pytest.raises(errors.ConfigurationError, match="SPECKLE_APP_ID"):
        App(SERVER, "")
    with pytest.raises(errors.ConfigurationError, match="not a Speckle server URL"):
        App("ftp://nope", "abc")


@pytest.mark.parametrize(
    ("text", "code", "denied"),
    [
        (f"http://localhost:29363?access_code={CODE}", CODE, False),
        # The server joins "?access_code=" as text, so a registered query gives two "?".
        (f"https://h/cb?x=1?access_code={CODE}", CODE, False),
        (f"?access_code={CODE}", CODE, False),
        ("http://localhost:29363/?denied=true", None, True),
        ("https://h/cb?a=b&denied=true", None, True),
        ("https://h/cb", None, False),
    ],
)
def test_parse_callback_url(text: str, code: str | None, denied: bool) -> None:
    params = parse_callback_url(text)
    assert params.access_code == code
    assert params.denied is denied
    assert CODE not in repr(params)


def _client(handler: httpx.MockTransport) -> AuthClient:
    return AuthClient(transport=handler)


def test_exchange_plain_posts_the_four_fields_and_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"token": TOKEN, "refreshToken": REFRESH})

    challenge = new_challenge()
    with _client(httpx.MockTransport(handler)) as client:
        pair = client.exchange(APP, CODE, challenge)
    assert pair == TokenPair(TOKEN, REFRESH)
    (request,) = seen
    assert request.url == f"{SERVER}/auth/token"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "appId": APP.app_id,
        "appSecret": SECRET,
        "accessCode": CODE,
        "challenge": challenge.challenge,
    }


def test_exchange_s256_posts_verifier_without_secret() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"token": TOKEN, "refreshToken": REFRESH})

    challenge = new_challenge("S256")
    with _client(httpx.MockTransport(handler)) as client:
        client.exchange(App(SERVER, "0a1b2c3d4e"), CODE, challenge)
    body = json.loads(seen[0].content)
    assert seen[0].url == f"{SERVER}/oauth/token"
    assert body == {"appId": "0a1b2c3d4e", "accessCode": CODE, "codeVerifier": challenge.verifier}


def test_plain_exchange_without_secret_is_a_configuration_error_before_any_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    with (
        _client(httpx.MockTransport(handler)) as client,
        pytest.raises(errors.ConfigurationError, match="SPECKLE_APP_SECRET"),
    ):
        client.exchange(App(SERVER, "0a1b2c3d4e"), CODE, new_challenge())


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected"),
    [
        (200, "", "application/json", True),
        (404, "Cannot GET /oauth/token", "text/html", False),
        (405, "", "text/plain", False),
        (200, "<html>frontend</html>", "text/html", False),
    ],
)
def test_probe(status: int, body: str, content_type: str, expected: bool) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(status, text=body, headers={"Content-Type": content_type})
    )
    with _client(transport) as client:
        assert client.supports_s256(SERVER) is expected


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (
            401,
            {"err": "Access code not found."},
            errors.TokenExchangeError,
            "Access code not found.",
        ),
        (
            401,
            {"err": "Invalid app secret. Ensure the app secret is correct."},
            errors.TokenExchangeError,
            "app id and secret",
        ),
        (403, {"error": "Your token is not valid."}, errors.InvalidTokenError, "not valid"),
        (502, "<html>bad gateway</html>", errors.ServerError, "HTTP 502"),
        (200, "not json", errors.ServerError, "without a token"),
        (400, {"error": {"message": "Invalid request body: x"}}, errors.TokenExchangeError, "x"),
    ],
)
def test_exchange_errors_keep_server_words_and_never_the_secrets(
    status: int, body: object, error: type[errors.SpeckleError], words: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, dict):
            return httpx.Response(status, json=body)
        return httpx.Response(status, text=str(body))

    with _client(httpx.MockTransport(handler)) as client, pytest.raises(error) as caught:
        client.exchange(APP, CODE, new_challenge())
    text = f"{caught.value} {caught.value!r}"
    assert words in text
    for secret in (SECRET, CODE):
        assert secret not in text


def test_rate_limited_carries_retry_after() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(429, json={"error": {}}, headers={"Retry-After": "1.5"})
    )
    with _client(transport) as client, pytest.raises(errors.RateLimitedError) as caught:
        client.refresh(APP, REFRESH)
    assert caught.value.retry_after == 1.5
    assert REFRESH not in str(caught.value)


@pytest.mark.parametrize(("header", "expected"), [("nan", None), ("-3", 0.0), ("soon", None)])
def test_unusable_retry_after_is_never_a_wait(header: str, expected: float | None) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(429, json={"error": {}}, headers={"Retry-After": header})
    )
    with _client(transport) as client, pytest.raises(errors.RateLimitedError) as caught:
        client.refresh(APP, REFRESH)
    assert caught.value.retry_after == expected


def test_transport_failure_names_the_server_not_the_secret() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        _client(httpx.MockTransport(handler)) as client,
        pytest.raises(errors.TransportError) as caught,
    ):
        client.logout(SERVER, TOKEN, REFRESH)
    assert SERVER in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None  # the httpx error (with the request) is not chained


def test_logout_refusal_is_a_logout_error() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(400, text="Something went wrong while trying to logout.")
    )
    with _client(transport) as client, pytest.raises(errors.LogoutError) as caught:
        client.logout(SERVER, TOKEN)
    assert caught.value.server_message == "Something went wrong while trying to logout."


async def test_async_client_drives_the_same_flows() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["refreshToken"] == REFRESH
        return httpx.Response(200, json={"token": TOKEN, "refreshToken": REFRESH})

    async with AsyncAuthClient(transport=httpx.MockTransport(handler)) as client:
        pair = await client.refresh(APP, REFRESH)
    assert pair.token == TOKEN


def test_reprs_hide_every_secret() -> None:
    creds = Credentials(SERVER, TOKEN, User("u1", "Ada"), refresh_token=REFRESH, source="sign-in")
    challenge = new_challenge()
    shown = " ".join(
        [
            repr(APP),
            str(APP),
            repr(TokenPair(TOKEN, REFRESH)),
            repr(creds),
            str(creds),
            repr(challenge),
        ]
    )
    for secret in (SECRET, TOKEN, REFRESH, challenge.verifier):
        assert secret not in shown
    assert "Ada" in repr(creds)
    assert creds.masked_token.endswith(TOKEN[-4:])
