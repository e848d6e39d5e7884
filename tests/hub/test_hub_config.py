"""``configure(c, …)``, the service's flow rules and the kernel's hub helpers, without a hub.

Plain and fast (no ``hub`` mark): the real-hub suites next to this file check the same pieces
end to end.
"""

from __future__ import annotations

import logging

import pytest
from traitlets.config import Config

from speckle_nb.errors import ConfigurationError
from speckle_nb.hub import configure, redirect_url
from speckle_nb.hub.config import AUTH_STATE_SCOPE
from speckle_nb.hub.flows import FlowStore, PickupRefused, pickup_hash
from speckle_nb.hub_source import (
    HubServiceMethod,
    _relative_to_services,
    hub_service,
    hub_service_choice,
)
from speckle_nb.oauth import new_challenge

SERVER = "https://speckle.example.org"


def _config() -> Config:
    c = Config()
    c.JupyterHub.public_url = "https://hub.example.org"
    c.Spawner.environment = {"KEEP": "me", "SPECKLE_APP_SECRET": "old-secret"}
    return c


def test_service_setup_gives_user_servers_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    c = _config()
    with caplog.at_level(logging.WARNING, logger="speckle_nb.hub"):
        url = configure(c, server_url=SERVER, app_id="0123456789", app_secret="abcdef0123")
    assert url == "https://hub.example.org/services/speckle-nb/callback"
    assert url in caplog.text
    assert "abcdef0123" not in caplog.text
    env = c.Spawner.environment
    assert env == {
        "KEEP": "me",
        "SPECKLE_SERVER_URL": SERVER,
        "SPECKLE_NB_HUB_SERVICE_URL": "http://127.0.0.1:10111/services/speckle-nb/",
    }
    (service,) = c.JupyterHub.services
    assert service["name"] == "speckle-nb"
    assert service["environment"]["SPECKLE_APP_SECRET"] == "abcdef0123"
    assert service["oauth_no_confirm"] is True
    assert "access:services!service=speckle-nb" in c.JupyterHub.extra_user_scopes


def test_login_setup_sets_the_authenticator_and_the_auth_state_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPECKLE_SERVER_URL", SERVER)
    monkeypatch.setenv("SPECKLE_APP_ID", "0123456789")
    monkeypatch.setenv("SPECKLE_APP_SECRET", "abcdef0123")
    c = _config()
    c.JupyterHub.base_url = "/jupyter/"
    url = configure(c, login=True)
    assert url == "https://hub.example.org/jupyter/hub/oauth_callback"
    assert c.JupyterHub.authenticator_class.__name__ == "SpeckleOAuthenticator"
    assert c.SpeckleOAuthenticator.client_id == "0123456789"
    assert c.SpeckleOAuthenticator.enable_auth_state is True
    (server_role,) = [r for r in c.JupyterHub.load_roles if r["name"] == "server"]
    assert AUTH_STATE_SCOPE in server_role["scopes"]
    assert "access:servers!server" in server_role["scopes"]  # the default ones are kept
    assert AUTH_STATE_SCOPE in c.JupyterHub.extra_user_scopes
    assert "SPECKLE_APP_SECRET" not in c.Spawner.environment
    assert c.Spawner.environment["SPECKLE_NB_HUB_LOGIN"] == "1"
    assert not c.JupyterHub.get("services")


def test_configure_without_an_app_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECKLE_APP_ID", raising=False)
    monkeypatch.delenv("SPECKLE_APP_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="SPECKLE_APP_ID and SPECKLE_APP_SECRET"):
        configure(Config())


def test_redirect_urls_per_setup() -> None:
    assert redirect_url("https://h.org/", "/") == "https://h.org/services/speckle-nb/callback"
    assert redirect_url("https://h.org", "/b/", login=True) == "https://h.org/b/hub/oauth_callback"


def _flow(store: FlowStore, user: str, request_id: str = "r" * 24, secret: str = "s" * 43):
    return store.start(
        user=user,
        request_id=request_id,
        pickup=pickup_hash(secret),
        server_url=SERVER,
        challenge=new_challenge("plain"),
    )


def test_a_flow_completes_once_and_only_for_its_own_user() -> None:
    store = FlowStore()
    flow = _flow(store, "alice")
    with pytest.raises(PickupRefused):  # bob's browser cannot take alice's request over
        _flow(store, "bob")
    assert store.take(flow.id) is flow
    assert store.take(flow.id) is None  # a replayed callback finds nothing
    flow.request.finish({"status": "ok", "credentials": {}})
    with pytest.raises(PickupRefused):  # bob, even with the pickup secret
        store.lookup(flow.request.id, "bob", "s" * 43)
    with pytest.raises(PickupRefused):  # alice with a wrong secret
        store.lookup(flow.request.id, "alice", "guess")
    request = store.lookup(flow.request.id, "alice", "s" * 43)
    assert request is flow.request
    assert store.collect(request)["status"] == "ok"
    assert store.lookup(flow.request.id, "alice", "s" * 43) is None  # handed out once


@pytest.mark.parametrize(
    ("prefix", "base", "expected"),
    [
        ("/user/alice/", "/", "../../services/"),
        ("/user/alice/gpu/", "/", "../../../services/"),
        ("/jupyter/user/a%40b/", "/jupyter/", "../../../jupyter/services/"),
    ],
)
def test_the_start_path_leads_from_the_page_to_the_hub_service(
    monkeypatch: pytest.MonkeyPatch, prefix: str, base: str, expected: str
) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", prefix)
    monkeypatch.setenv("JUPYTERHUB_BASE_URL", base)
    assert _relative_to_services() == expected


def test_the_kernel_uses_the_service_only_with_a_hub_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPECKLE_NB_HUB_SERVICE_URL", "http://hub:10111/services/speckle-nb/")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert hub_service() is None
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t0ken-of-alice")
    choice = hub_service_choice()
    assert choice is not None
    assert choice.mode == "extension"
    assert "t0ken-of-alice" not in repr(choice)
    method = choice.method
    assert isinstance(method, HubServiceMethod)
    try:
        assert method.pickup.jupyter_url == "http://hub:10111/services/"
        _flow, traits = method.start(None)
        assert traits["start_path"].startswith(
            method.service.start_prefix + "speckle-nb/start?request="
        )
    finally:
        method.close()
