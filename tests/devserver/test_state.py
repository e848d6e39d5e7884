"""``DevState`` rules that need no HTTP: formats, registration limits, seeded data."""

from __future__ import annotations

import re

import pytest

from speckle_nb.devserver import DevState
from speckle_nb.devserver.catalog import ALL_SCOPES
from speckle_nb.devserver.state import RegistrationError

HEX10 = re.compile(r"^[0-9a-f]{10}$")


def test_registered_apps_get_10_hex_ids_and_secrets_and_scopes_in_server_order() -> None:
    state = DevState(seed=False)

    app = state.register_app(
        "a", "http://127.0.0.1:1/cb", ["users:read", "bogus", "profile:read", "streams:read"]
    )

    assert HEX10.match(app.id)
    assert HEX10.match(app.secret)
    assert app.scopes == ("streams:read", "profile:read", "users:read")
    assert not app.trusted


def test_registration_refuses_what_the_server_cannot_store() -> None:
    state = DevState(seed=False)
    base = "http://127.0.0.1:8888/"

    state.register_app("fits", base + "x" * (100 - len(base)), ["profile:read"])
    with pytest.raises(RegistrationError, match="at most 100"):
        state.register_app("too long", base + "x" * (101 - len(base)), ["profile:read"])
    with pytest.raises(RegistrationError, match=r"Cannot create an app with no scopes\."):
        state.register_app("no scopes", base, ["nonsense"])


def test_built_in_apps() -> None:
    state = DevState(seed=False)
    state.set_server_url("http://localhost:1234/")

    expected = {
        "sca": ("http://localhost:29363", True),
        "sdas": ("http://localhost:29364", True),
        "connectrV3": ("http://localhost:29355", False),
        "sdui": ("https://dui.speckle.systems/authn/callback", False),
        "sdm": ("speckle://account", True),
        "spklwebapp": ("http://localhost:1234", True),
        "explorer": ("http://localhost:1234/explorer", True),
    }
    for app_id, (redirect, trusted) in expected.items():
        app = state.app(app_id)
        assert app is not None
        assert (app.redirect_url, app.trusted, app.secret) == (redirect, trusted, app_id)
    webapp = state.app("spklwebapp")
    assert webapp is not None
    assert webapp.scopes == ALL_SCOPES


def test_tokens_expire_after_their_lifespan_and_are_deleted() -> None:
    state = DevState()
    clock = state.use_fake_clock()
    token = state.create_token(state.demo_user.id, ["profile:read"], lifespan_ms=1000)
    assert re.match(r"^[0-9a-f]{42}$", token)
    assert state.validate_token(token + "ignored-suffix") is not None

    clock.advance(ms=1001)

    assert state.validate_token(token) is None
    assert state.tokens_of(state.demo_user.id) == []


def test_seeded_users() -> None:
    state = DevState()

    for email, password, name in [
        ("demo@example.org", "speckle-demo", "Demo User"),
        ("alice@example.org", "alice-pass", "Alice Archer"),
        ("bob@example.org", "bob-pass", "Bob Builder"),
    ]:
        user = state.authenticate(email, password)
        assert user is not None
        assert user.name == name
        assert state.authenticate(email, password + "x") is None
    assert state.projects_page(state.demo_user.id, 0).total_count == 60
    assert "speckle-demo" not in repr(state.demo_user)
