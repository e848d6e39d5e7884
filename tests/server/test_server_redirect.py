"""Which redirect URL to register: derived with and without JupyterHub, and ``GET status``."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from serverkit import APP_SECRET, Browser, FakeSpeckle, Kernel, sign_in

from speckle_nb.server.redirect import (
    HubEnv,
    derive_redirect_url,
    hub_env,
    named_server_problem,
    request_origin,
    startup_hint,
)

HUB = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/", "JUPYTERHUB_BASE_URL": "/"}

# ---------------------------------------------------------------------- pure


def test_plain_server_uses_its_own_callback() -> None:
    url = derive_redirect_url(
        configured="", base_url="/a%40b/", origin="http://127.0.0.1:8888", hub=None
    )
    assert (url.url, url.kind) == ("http://127.0.0.1:8888/a%40b/speckle-nb/callback", "server")


def test_explicit_configuration_wins_everywhere() -> None:
    hub = hub_env({**HUB, "JUPYTERHUB_SERVER_NAME": "gpu"})
    url = derive_redirect_url(
        configured="https://x.example/cb", base_url="/", origin="http://h", hub=hub
    )
    assert (url.url, url.kind) == ("https://x.example/cb", "configured")
    assert named_server_problem(configured="https://x.example/cb", hub=hub) is None


def test_hub_uses_user_redirect_on_the_request_origin() -> None:
    hub = hub_env({**HUB, "JUPYTERHUB_BASE_URL": "/jupyter/"})
    assert hub == HubEnv(base_url="/jupyter/", public_hub_url="", server_name="")
    url = derive_redirect_url(
        configured="", base_url="/jupyter/user/alice/", origin="https://hub.example.org", hub=hub
    )
    assert url.url == "https://hub.example.org/jupyter/hub/user-redirect/speckle-nb/callback"
    assert url.kind == "jupyterhub"


def test_hub_public_url_makes_the_startup_hint_exact() -> None:
    hub = hub_env({**HUB, "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/hub/"})
    hint, exact = startup_hint(configured="", base_url="/user/alice/", hub=hub)
    assert (hint, exact) == ("https://hub.example.org/hub/user-redirect/speckle-nb/callback", True)
    hint, exact = startup_hint(configured="", base_url="/user/alice/", hub=hub_env(HUB))
    assert not exact
    assert hint.endswith("/hub/user-redirect/speckle-nb/callback")
    hint, exact = startup_hint(configured="", base_url="/a%40b/", hub=None)
    assert not exact
    assert hint.endswith("/a%40b/speckle-nb/callback")


def test_no_hub_without_its_variables() -> None:
    assert hub_env({}) is None
    assert hub_env({"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api"}) is not None


def test_named_server_is_a_problem_without_configuration() -> None:
    problem = named_server_problem(
        configured="", hub=hub_env({**HUB, "JUPYTERHUB_SERVER_NAME": "gpu"})
    )
    assert problem is not None
    assert "default* server" in problem
    assert "SPECKLE_REDIRECT_URL" in problem
    assert named_server_problem(configured="", hub=hub_env(HUB)) is None


@pytest.mark.parametrize(
    ("headers", "trusted", "origin"),
    [
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hub.example.org"},
            True,
            "https://hub.example.org",
        ),
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hub.example.org"},
            False,
            "http://127.0.0.1:8888",
        ),
        (
            {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "a.example, b.example"},
            True,
            "https://a.example",
        ),
        (
            {"Forwarded": 'for=1.2.3.4;proto=https;host="hub.example.org:8443"'},
            True,
            "https://hub.example.org:8443",
        ),
        ({"X-Scheme": "https"}, True, "https://127.0.0.1:8888"),
        ({"X-Forwarded-Host": "evil.example/path"}, True, "http://127.0.0.1:8888"),
        ({"X-Forwarded-Host": "evil.example:notaport"}, True, "http://127.0.0.1:8888"),
        ({"X-Forwarded-Proto": "javascript"}, True, "http://127.0.0.1:8888"),
    ],
)
def test_request_origin(headers: dict[str, str], trusted: bool, origin: str) -> None:
    assert request_origin("http", "127.0.0.1:8888", headers, trust_forwarded=trusted) == origin


# ---------------------------------------------------------------------- status route


async def status(fetch: Any, **headers: str) -> dict[str, Any]:
    reply = await fetch("speckle-nb", "status", headers=headers)
    assert reply.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = json.loads(reply.body)
    return body


async def test_status_shows_the_exact_redirect_url_and_never_the_secret(
    jp_fetch: Any, jp_http_port: int
) -> None:
    body = await status(jp_fetch)
    assert body["redirect_url"] == f"http://127.0.0.1:{jp_http_port}/a%40b/speckle-nb/callback"
    assert body["redirect_url_source"] == "server"
    assert body["app_configured"] is True
    assert body["server_url"] == "http://speckle.test"
    assert body["allowed_servers"] == ["http://speckle.test"]
    assert body["problems"] == []
    assert APP_SECRET not in json.dumps(body)
    assert "secret" not in json.dumps(body).lower()


async def test_status_requires_a_jupyter_login(jp_fetch: Any) -> None:
    reply = await jp_fetch("speckle-nb", "status", headers={"Authorization": ""}, raise_error=False)
    assert reply.code == 403


async def test_status_reports_the_method_once_probed(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    assert (await status(browser.fetch)).get("method_hint") is None
    await sign_in(browser, speckle, Kernel())
    assert (await status(browser.fetch))["method_hint"] == "plain"


@pytest.mark.parametrize("speckle_config", [{"app_id": "", "app_secret": ""}])
async def test_status_without_an_app(jp_fetch: Any) -> None:
    body = await status(jp_fetch)
    assert body["app_configured"] is False
    assert any("SPECKLE_APP_ID" in p for p in body["problems"])


@pytest.mark.parametrize("speckle_env", [HUB])
@pytest.mark.parametrize("speckle_config", [{"trust_forwarded_headers": True}])
async def test_hub_status_uses_user_redirect_and_forwarded_origin(
    jp_fetch: Any, jp_http_port: int
) -> None:
    body = await status(jp_fetch)
    assert (
        body["redirect_url"]
        == f"http://127.0.0.1:{jp_http_port}/hub/user-redirect/speckle-nb/callback"
    )
    body = await status(
        jp_fetch, **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hub.example.org"}
    )
    assert body["redirect_url"] == "https://hub.example.org/hub/user-redirect/speckle-nb/callback"
    assert body["redirect_url_source"] == "jupyterhub"


@pytest.mark.parametrize("speckle_env", [{**HUB, "JUPYTERHUB_SERVER_NAME": "gpu"}])
async def test_named_hub_server_refuses_to_start(browser: Browser, service: Any) -> None:
    kernel = Kernel()
    response = await browser.start(kernel)
    assert response.code == 409
    assert b"default* server" in response.body
    assert b"SPECKLE_REDIRECT_URL" in response.body
    assert "Location" not in response.headers
    assert service.store.counts()["flows"] == 0
    body = await status(browser.fetch)
    assert any("named JupyterHub server" in p for p in body["problems"])
    assert body["redirect_url"] is None  # no URL to register would work here


@pytest.mark.parametrize(
    "speckle_env",
    [
        {
            **HUB,
            "JUPYTERHUB_SERVER_NAME": "gpu",
            "SPECKLE_REDIRECT_URL": "https://hub.example.org/user/alice/gpu/speckle-nb/callback",
        }
    ],
)
async def test_named_hub_server_with_an_explicit_redirect_url_works(browser: Browser) -> None:
    assert (await browser.start(Kernel())).code == 200
    body = await status(browser.fetch)
    assert body["redirect_url"] == "https://hub.example.org/user/alice/gpu/speckle-nb/callback"
    assert body["problems"] == []


# ---------------------------------------------------------------------- start-up log


def startup_lines(jp_serverapp: Any, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the extension logs at start-up (logged again here: pytest-jupyter routes the
    server's log away from pytest while it initialises)."""
    ext = jp_serverapp.web_app.settings["speckle_nb"]
    caplog.set_level(logging.INFO)
    ext._log_startup(ext._settings())
    return [r for r in caplog.records if r.getMessage().startswith("speckle-nb:")]


def redirect_line(records: list[logging.LogRecord]) -> str:
    (line,) = [r for r in records if "must have this redirect URL registered" in r.getMessage()]
    assert line.levelno == logging.INFO
    return line.getMessage()


async def test_startup_logs_a_template_for_a_plain_server(
    jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    line = redirect_line(startup_lines(jp_serverapp, caplog))
    assert "template" in line
    assert line.endswith("<origin where your browser opens Jupyter>/a%40b/speckle-nb/callback")
    assert APP_SECRET not in caplog.text


@pytest.mark.parametrize(
    "speckle_env", [{**HUB, "JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/hub/"}]
)
async def test_startup_logs_the_exact_hub_url_when_known(
    jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    line = redirect_line(startup_lines(jp_serverapp, caplog))
    assert "template" not in line
    assert line.endswith(": https://hub.example.org/hub/user-redirect/speckle-nb/callback")


@pytest.mark.parametrize("speckle_config", [{"app_id": ""}])
@pytest.mark.parametrize("speckle_env", [{**HUB, "JUPYTERHUB_SERVER_NAME": "gpu"}])
async def test_startup_warns_about_missing_app_and_named_server(
    jp_serverapp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    warnings = [
        r.getMessage() for r in startup_lines(jp_serverapp, caplog) if r.levelno == logging.WARNING
    ]
    assert any("SPECKLE_APP_ID" in w for w in warnings)
    assert any("named JupyterHub server" in w for w in warnings)
