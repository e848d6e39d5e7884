"""The authorize page ``/authn/verify/{appId}/{challenge}`` and login (§1.2, §13.9)."""

from __future__ import annotations

import re
import time
from html import unescape

import httpx
import pytest

from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.player import PlayerError
from speckle_nb.devserver.state import App

from .helpers import CHALLENGE, HEX42, exchange_body

DEMO = ("demo@example.org", "speckle-demo")


def _verify(dev: DevServer, app_id: str, challenge: str = CHALLENGE) -> str:
    return f"{dev.url}/authn/verify/{app_id}/{challenge}"


def _logged_in(dev: DevServer) -> BrowserPlayer:
    browser = BrowserPlayer()
    browser.open(f"{dev.url}/authn/login")
    browser.log_in(*DEMO)
    return browser


def test_not_logged_in_goes_to_login_and_comes_back(devserver: DevServer, dev_app: App) -> None:
    verify = _verify(devserver, dev_app.id) + "?code_challenge_method=S256"
    with httpx.Client(base_url=devserver.url) as http:
        first = http.get(verify)
        assert first.status_code == 302
        assert first.headers["location"] == "/authn/login"
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("postAuthRedirect=")
        assert "Max-Age=300" in cookie
        assert "Path=/authn" in cookie

    with BrowserPlayer() as browser:
        page = browser.open(verify)
        assert page is not None
        assert page.kind == "login"
        back = browser.log_in(*DEMO)
        assert back is not None
        assert back.kind == "consent"
        assert back.url == verify  # the query string survives the detour


def test_wrong_password(devserver: DevServer) -> None:
    with httpx.Client(base_url=devserver.url) as http:
        as_json = http.post("/authn/login", json={"email": "demo@example.org", "password": "nope"})
        as_form = http.post("/authn/login", data={"email": "demo@example.org", "password": "nope"})

    assert (as_json.status_code, as_json.json()) == (
        401,
        {"err": True, "message": "Invalid credentials."},
    )
    assert as_form.status_code == 401
    assert "Invalid credentials." in as_form.text
    assert 'type="password"' in as_form.text
    assert "set-cookie" not in as_form.headers


def test_unknown_app_shows_an_error_and_does_not_redirect(devserver: DevServer) -> None:
    with _logged_in(devserver) as browser:
        page = browser.open(_verify(devserver, "nosuchapp"))

    assert page is not None
    assert page.response.status_code == 200
    assert "location" not in page.response.headers
    assert "Could not resolve app." in page.response.text
    assert page.title.startswith("Error")
    assert browser.history[-1] == _verify(devserver, "nosuchapp")


def test_allow_redirects_with_the_code_joined_as_text(devserver: DevServer) -> None:
    app = devserver.state.register_app(
        "query app", "http://127.0.0.1:8888/cb?tab=1", ["profile:read"]
    )
    with _logged_in(devserver) as browser:
        consent = browser.open(_verify(devserver, app.id))
        assert consent is not None
        assert consent.kind == "consent"
        assert "Authorize query app" in consent.response.text
        assert "profile:read" in consent.response.text
        stopped = browser.consent("allow", stop_at_prefix="http://127.0.0.1:8888/")

    assert stopped is None
    assert browser.stopped_at is not None
    prefix = "http://127.0.0.1:8888/cb?tab=1?access_code="
    assert browser.stopped_at.startswith(prefix)
    assert HEX42.match(browser.stopped_at.removeprefix(prefix))


@pytest.mark.parametrize(
    ("redirect_url", "denied_url"),
    [
        ("http://localhost:29999", "http://localhost:29999/?denied=true"),
        ("http://127.0.0.1:8888/cb?tab=1", "http://127.0.0.1:8888/cb?tab=1&denied=true"),
    ],
)
def test_deny_adds_denied_true_like_the_url_api(
    devserver: DevServer, redirect_url: str, denied_url: str
) -> None:
    app = devserver.state.register_app("deny app", redirect_url, ["profile:read"])
    with BrowserPlayer() as browser:
        landed = browser.sign_in_and_consent(_verify(devserver, app.id), *DEMO, action="deny")

    assert landed == denied_url
    assert devserver.state.pending_codes() == 0


def test_trusted_apps_are_approved_without_a_consent_page(devserver: DevServer) -> None:
    with _logged_in(devserver) as browser:
        page = browser.open(_verify(devserver, "sca"), stop_at_prefix="http://localhost:29363")

    assert page is None
    assert browser.stopped_at is not None
    assert browser.stopped_at.startswith("http://localhost:29363?access_code=")
    code = browser.stopped_at.split("=", 1)[1]
    sca = devserver.state.app("sca")
    assert sca is not None
    with httpx.Client(base_url=devserver.url) as http:
        assert http.post("/auth/token", json=exchange_body(sca, code)).status_code == 200


def test_connector_v3_asks_for_consent(devserver: DevServer) -> None:
    with _logged_in(devserver) as browser:
        page = browser.open(_verify(devserver, "connectrV3"))

    assert page is not None
    assert page.kind == "consent"


def test_consent_needs_the_form_token_of_this_session(devserver: DevServer, dev_app: App) -> None:
    with _logged_in(devserver) as browser:
        page = browser.open(_verify(devserver, dev_app.id))
        assert page is not None
        form = page.forms[0]
        forged = browser.submit(form, {"_csrf": "0" * 64}, button=("action", "allow"))
        other_challenge = browser.open(_verify(devserver, dev_app.id, "another"))
        assert other_challenge is not None
        # A form token from one authorization request does not fit another.
        replayed = browser.submit(
            other_challenge.forms[0], {"_csrf": form.fields["_csrf"]}, button=("action", "allow")
        )

    assert forged is not None
    assert forged.response.status_code == 403
    assert replayed is not None
    assert replayed.response.status_code == 403
    assert devserver.state.pending_codes() == 0


def test_consent_delay_shows_success_then_redirects(devserver: DevServer, dev_app: App) -> None:
    devserver.options.consent_delay = 0.3
    with _logged_in(devserver) as browser:
        browser.open(_verify(devserver, dev_app.id))
        consent = browser.current_page()
        fields = {**consent.forms[0].fields, "action": "allow"}
        with httpx.Client(cookies={"authn": browser.cookies.get("authn") or ""}) as http:
            raw = http.post(consent.url, data=fields)
        started = time.monotonic()
        browser.open(_verify(devserver, dev_app.id))
        browser.consent("allow", stop_at_prefix=dev_app.redirect_url)
        waited = time.monotonic() - started

    assert raw.status_code == 200
    assert "Success" in raw.text
    refresh = re.search(r'http-equiv="refresh" content="([^"]+)"', raw.text)
    assert refresh is not None
    delay, url = unescape(refresh.group(1)).split(";url=", 1)
    assert delay == "0.3"
    assert url.startswith(f"{dev_app.redirect_url}?access_code=")
    assert waited >= 0.3
    assert browser.stopped_at is not None
    assert browser.stopped_at.startswith(f"{dev_app.redirect_url}?access_code=")


def test_page_headers(devserver: DevServer) -> None:
    with httpx.Client(base_url=devserver.url) as http:
        plain = http.get("/authn/login")
        devserver.options.coop = True
        coop = http.get("/authn/login")
        api = http.post("/graphql", json={"query": "{ serverInfo { name } }"})

    for answer in (plain, coop, api):
        assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert "cross-origin-opener-policy" not in plain.headers
    assert coop.headers["cross-origin-opener-policy"] == "same-origin"


def test_a_stale_session_cookie_means_logged_out(devserver: DevServer, dev_app: App) -> None:
    with _logged_in(devserver) as browser:
        session = browser.cookies.get("authn")
        assert session is not None
        devserver.state.logout(session)
        page = browser.open(_verify(devserver, dev_app.id))

    assert page is not None
    assert page.kind == "login"


def test_player_reports_where_it_got_stuck(devserver: DevServer) -> None:
    with BrowserPlayer() as browser, pytest.raises(PlayerError, match="Error"):
        browser.sign_in_and_consent(_verify(devserver, "nosuchapp"), *DEMO)
