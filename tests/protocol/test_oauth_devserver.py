"""Layer 2: the protocol core over real loopback HTTP against the dev server."""

from __future__ import annotations

import pytest

from speckle_nb import errors
from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.state import App as DevApp
from speckle_nb.oauth import App, AsyncAuthClient, AuthClient, new_challenge, parse_callback_url


def _sign_in(dev: DevServer, app: App, method: str = "plain", action: str = "allow") -> tuple:
    """Play the browser to the app's redirect URL; return (challenge, callback params)."""
    from speckle_nb.oauth import authorize_url

    challenge = new_challenge(method)  # type: ignore[arg-type]
    with BrowserPlayer() as browser:
        landed = browser.sign_in_and_consent(
            authorize_url(app, challenge), "demo@example.org", "speckle-demo", action=action
        )
    return challenge, parse_callback_url(landed)


@pytest.fixture
def app(devserver: DevServer, dev_app: DevApp) -> App:
    return App(devserver.url, dev_app.id, dev_app.secret)


def test_full_plain_exchange_then_refresh_then_logout(devserver: DevServer, app: App) -> None:
    challenge, params = _sign_in(devserver, app)
    assert params.access_code is not None
    with AuthClient() as auth:
        assert auth.supports_s256(devserver.url) is False  # released servers: 404
        pair = auth.exchange(app, params.access_code, challenge)
        info = devserver.state.validate_token(pair.token)
        assert info is not None
        assert info.user_id == devserver.demo_user.id
        assert pair.refresh_token is not None

        refreshed = auth.refresh(app, pair.refresh_token)
        assert refreshed.token != pair.token
        # Old refresh tokens keep working until their own expiry (§3.1).
        assert auth.refresh(app, pair.refresh_token).token != refreshed.token

        auth.logout(devserver.url, refreshed.token, refreshed.refresh_token)
        assert devserver.state.validate_token(refreshed.token) is None
        with pytest.raises(errors.LogoutError) as caught:
            auth.logout(devserver.url, refreshed.token)
    assert caught.value.server_message == "Something went wrong while trying to logout."


def test_code_is_burned_by_a_failed_attempt(devserver: DevServer, app: App) -> None:
    challenge, params = _sign_in(devserver, app)
    assert params.access_code is not None
    with AuthClient() as auth:
        with pytest.raises(errors.TokenExchangeError) as wrong:
            auth.exchange(app, params.access_code, new_challenge())
        assert wrong.value.server_message == (
            "Code challenge mismatch. Ensure the same challenge is used for authentication "
            "and token exchange."
        )
        with pytest.raises(errors.TokenExchangeError) as again:
            auth.exchange(app, params.access_code, challenge)
    assert again.value.server_message == "Access code not found."
    assert params.access_code not in str(again.value)


def test_wrong_secret_keeps_server_words_and_hides_the_secret(
    devserver: DevServer, app: App
) -> None:
    challenge, params = _sign_in(devserver, app)
    assert params.access_code is not None
    bad = App(app.server_url, app.app_id, "0000000000")
    with AuthClient() as auth, pytest.raises(errors.TokenExchangeError) as caught:
        auth.exchange(bad, params.access_code, challenge)
    assert caught.value.status_code == 401
    assert caught.value.server_message == "Invalid app secret. Ensure the app secret is correct."
    assert "0000000000" not in f"{caught.value} {caught.value!r}"


def test_expired_code(devserver: DevServer, app: App) -> None:
    clock = devserver.state.use_fake_clock()
    challenge, params = _sign_in(devserver, app)
    assert params.access_code is not None
    clock.advance(minutes=10, ms=1)
    with AuthClient() as auth, pytest.raises(errors.TokenExchangeError) as caught:
        auth.exchange(app, params.access_code, challenge)
    assert caught.value.server_message == "Access code expired"


def test_denied_sign_in_reaches_the_redirect_with_denied_true(
    devserver: DevServer, app: App
) -> None:
    _, params = _sign_in(devserver, app, action="deny")
    assert params.denied is True
    assert params.access_code is None


def test_s256_probe_and_exchange_when_the_server_has_it(devserver: DevServer, app: App) -> None:
    devserver.options.oauth_s256 = True
    with AuthClient() as auth:
        assert auth.supports_s256(devserver.url) is True
        challenge, params = _sign_in(devserver, app, method="S256")
        assert params.access_code is not None
        no_secret = App(app.server_url, app.app_id)
        pair = auth.exchange(no_secret, params.access_code, challenge)
    assert devserver.state.validate_token(pair.token) is not None


def test_refresh_with_unknown_token_is_refused_in_server_words(
    devserver: DevServer, app: App
) -> None:
    with AuthClient() as auth, pytest.raises(errors.TokenExchangeError) as caught:
        auth.refresh(app, "0123456789" + "a" * 32)
    assert caught.value.server_message == "Invalid request"
    assert "sign_in" in str(caught.value)


async def test_async_exchange_over_http(devserver: DevServer, app: App) -> None:
    challenge, params = _sign_in(devserver, app)
    assert params.access_code is not None
    async with AsyncAuthClient() as auth:
        assert await auth.supports_s256(devserver.url) is False
        pair = await auth.exchange(app, params.access_code, challenge)
    assert devserver.state.validate_token(pair.token) is not None


def test_unreachable_server_is_a_transport_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = App(f"http://127.0.0.1:{port}", "0a1b2c3d4e", "secret0000")
    with AuthClient(timeout=2) as auth, pytest.raises(errors.TransportError) as caught:
        auth.exchange(app, "c" * 42, new_challenge())
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "c" * 42 not in str(caught.value)
