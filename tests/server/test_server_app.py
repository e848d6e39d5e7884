"""The ``SpeckleNB`` extension app: traits, environment fallbacks, auth, and env publishing."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import pytest
from jupyter_server.auth import Authorizer
from serverkit import Browser, FakeSpeckle, Kernel, pickup, sign_in

import speckle_nb
from speckle_nb.server.app import SpeckleNB, loopback_url
from speckle_nb.server.handlers import ROUTES

ENV_TRAITS = {
    "server_url": "SPECKLE_SERVER_URL",
    "app_id": "SPECKLE_APP_ID",
    "app_secret": "SPECKLE_APP_SECRET",
    "redirect_url": "SPECKLE_REDIRECT_URL",
    "allowed_servers": "SPECKLE_ALLOWED_SERVERS",
}


def test_extension_point_is_this_app() -> None:
    (point,) = speckle_nb._jupyter_server_extension_points()
    assert point == {"module": "speckle_nb", "app": SpeckleNB}
    assert SpeckleNB.name == "speckle_nb"


def test_every_trait_is_configurable_and_documented() -> None:
    own = SpeckleNB.class_own_traits()
    assert set(own) >= {
        "server_url",
        "app_id",
        "app_secret",
        "redirect_url",
        "allowed_servers",
        "flow_lifetime",
        "result_lifetime",
        "max_flows",
        "pickup_hold",
        "trust_forwarded_headers",
        "http_timeout",
    }
    for name, trait in own.items():
        if name == "service":
            continue
        assert trait.metadata.get("config") is True, name
        assert len(trait.help) > 30, name
    for name, env in ENV_TRAITS.items():
        assert env in own[name].help, name  # the fallback is declared beside the trait


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECKLE_SERVER_URL", "https://speckle.example.org")
    monkeypatch.setenv("SPECKLE_APP_ID", "envappid00")
    monkeypatch.setenv("SPECKLE_APP_SECRET", "env-secret")
    monkeypatch.setenv("SPECKLE_REDIRECT_URL", "https://hub.example.org/cb")
    monkeypatch.setenv("SPECKLE_ALLOWED_SERVERS", "https://a.example, https://b.example")
    app = SpeckleNB()
    assert app.server_url == "https://speckle.example.org"
    assert (app.app_id, app.app_secret) == ("envappid00", "env-secret")
    assert app.redirect_url == "https://hub.example.org/cb"
    assert app.allowed_servers == ["https://a.example", "https://b.example"]
    # configuration wins over the environment
    assert SpeckleNB(app_id="configured").app_id == "configured"


def test_defaults_without_environment() -> None:
    app = SpeckleNB()
    assert app.server_url == "https://app.speckle.systems"
    assert (app.app_id, app.app_secret, app.redirect_url) == ("", "", "")
    assert (app.flow_lifetime, app.result_lifetime, app.max_flows) == (600, 120, 1000)
    assert app.pickup_hold == 30


def test_flow_lifetime_is_capped_at_the_code_life() -> None:
    assert SpeckleNB(flow_lifetime=3600).flow_lifetime == 600
    with pytest.raises(ValueError, match="positive"):
        SpeckleNB(flow_lifetime=0)


def test_routes_are_relative_and_complete() -> None:
    paths = [path for path, _ in ROUTES]
    assert paths == [
        "speckle-nb/start",
        "speckle-nb/callback",
        "speckle-nb/status",
        "speckle-nb/pickup",
        "speckle-nb/refresh",
    ]


async def test_kernels_started_later_learn_the_server_url(
    jp_serverapp: Any, jp_http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # recorded by monkeypatch, so both are removed again after the test
    monkeypatch.setenv("SPECKLE_NB_JUPYTER_URL", "unset")
    monkeypatch.setenv("SPECKLE_NB_JUPYTER_PID", "unset")
    ext = jp_serverapp.web_app.settings["speckle_nb"]
    await ext._start_jupyter_server_extension(jp_serverapp)
    assert os.environ["SPECKLE_NB_JUPYTER_URL"] == f"http://127.0.0.1:{jp_http_port}/a%40b/"
    assert os.environ["SPECKLE_NB_JUPYTER_PID"] == str(os.getpid())


@pytest.mark.parametrize(
    ("ip", "host"),
    [
        ("", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),  # noqa: S104
        ("localhost", "127.0.0.1"),
        ("::", "[::1]"),
        ("10.1.2.3", "10.1.2.3"),
        ("::1", "[::1]"),
    ],
)
def test_loopback_url(ip: str, host: str) -> None:
    class App:
        sock = ""
        certfile = ""
        port = 8888
        base_url = "/user/alice"

    App.ip = ip  # type: ignore[attr-defined]
    assert loopback_url(App()) == f"http://{host}:8888/user/alice/"
    App.sock = "/tmp/jupyter.sock"
    assert loopback_url(App()) is None


# ---------------------------------------------------------------------- what each route asks for


class RecordingAuthorizer(Authorizer):  # type: ignore[misc]
    """Denies speckle_nb actions when ``deny`` is set; records what was asked."""

    asked: ClassVar[list[tuple[str, str]]] = []
    deny: ClassVar[bool] = False

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == "speckle_nb":
            self.asked.append((action, handler.request.path.rsplit("/", 1)[-1]))
            return not self.deny
        return True


@pytest.fixture
def authorizer() -> type[RecordingAuthorizer]:
    RecordingAuthorizer.asked = []
    RecordingAuthorizer.deny = False
    return RecordingAuthorizer


@pytest.mark.parametrize("serverapp_config", [{"authorizer_class": RecordingAuthorizer}])
async def test_each_route_asks_for_the_expected_permission(
    authorizer: type[RecordingAuthorizer], browser: Browser, speckle: FakeSpeckle
) -> None:
    kernel = Kernel()
    await sign_in(browser, speckle, kernel)
    await browser.fetch("speckle-nb", "status")
    await pickup(browser.fetch, kernel)
    assert authorizer.asked == [("read", "start"), ("read", "callback"), ("read", "status")]


@pytest.mark.parametrize("serverapp_config", [{"authorizer_class": RecordingAuthorizer}])
async def test_unauthorized_users_are_refused(
    authorizer: type[RecordingAuthorizer], browser: Browser, service: Any
) -> None:
    authorizer.deny = True
    assert (await browser.start(Kernel())).code == 403
    assert (await browser.callback({"access_code": "x"})).code == 403
    reply = await browser.fetch("speckle-nb", "status", raise_error=False)
    assert reply.code == 403
    assert service.store.counts()["flows"] == 0
    # the kernel's routes do not depend on a Jupyter user at all
    status, body, _ = await pickup(browser.fetch, Kernel())
    assert (status, body) == (200, {"status": "pending"})
    assert json.dumps(body)
