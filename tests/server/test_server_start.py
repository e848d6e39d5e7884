"""``GET {base_url}speckle-nb/start``: the flow, its cookie, and the redirect to Speckle."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from serverkit import (
    APP_ID,
    OTHER_SPECKLE_URL,
    SPECKLE_URL,
    Browser,
    FakeSpeckle,
    Kernel,
    authorize_url_of,
    challenge_of,
    pickup,
    raw_set_cookie,
    set_cookies,
)

from speckle_nb.oauth import s256


def flow_cookie_attributes(response: Any) -> dict[str, str]:
    header = raw_set_cookie(response, "speckle-nb-flow")
    _, _, attrs = header.partition(";")
    out: dict[str, str] = {}
    for part in attrs.split(";"):
        key, _, value = part.strip().partition("=")
        out[key.lower()] = value
    return out


async def test_start_redirects_to_the_configured_server_with_a_bound_cookie(
    browser: Browser, service: Any
) -> None:
    kernel = Kernel()
    response = await browser.start(kernel)

    assert response.code == 200  # a page that moves on, so no log prints the challenge
    location = authorize_url_of(response)
    assert location.startswith(f"{SPECKLE_URL}/authn/verify/{APP_ID}/")
    assert "?" not in location  # plain challenge: no code_challenge_method
    challenge = challenge_of(response)
    assert 43 <= len(challenge) <= 128
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"

    attrs = flow_cookie_attributes(response)
    assert attrs["path"] == "/a%40b/speckle-nb/"
    assert "httponly" in attrs
    assert attrs["samesite"] == "Lax"
    # flow_lifetime + result_lifetime (the expired flow's record) + 60 s slack, so a late
    # callback still carries the cookie and is told "expired"
    assert attrs["max-age"] == str(600 + 120 + 60)
    assert "secure" not in attrs  # plain http
    # the cookie names a random flow id, signed: neither the request id nor the challenge
    value = set_cookies(response)["speckle-nb-flow"].value
    assert kernel.request_id not in value
    assert challenge not in value
    assert re.match(r"2\|1:0\|10:\d+\|15:speckle-nb-flow\|", value)
    assert service.store.counts() == {"flows": 1, "entries": 1}


@pytest.mark.parametrize("speckle_config", [{"trust_forwarded_headers": True}])
async def test_cookie_is_secure_behind_a_trusted_https_proxy(browser: Browser) -> None:
    response = await browser.start(Kernel(), headers={"X-Forwarded-Proto": "https"})
    assert response.code == 200
    assert "secure" in flow_cookie_attributes(response)


async def test_forwarded_proto_is_ignored_unless_trusted(browser: Browser) -> None:
    response = await browser.start(Kernel(), headers={"X-Forwarded-Proto": "https"})
    assert "secure" not in flow_cookie_attributes(response)


async def test_s256_server_gets_a_hashed_challenge(
    browser: Browser, speckle: FakeSpeckle, service: Any
) -> None:
    speckle.s256 = True
    kernel = Kernel()
    response = await browser.start(kernel)
    assert authorize_url_of(response).endswith("?code_challenge_method=S256")
    flow = next(iter(service.store._flows.values()))
    assert flow.challenge.method == "S256"
    assert challenge_of(response) == s256(flow.challenge.verifier)


async def test_probe_is_cached_per_server(browser: Browser, speckle: FakeSpeckle) -> None:
    await browser.start(Kernel())
    await browser.start(Kernel())
    assert speckle.calls.count("GET /oauth/token") == 1


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"request": "short", "pickup": "0" * 64}, "bad-request"),
        ({"request": "r" * 20, "pickup": "XYZ"}, "bad-request"),
        ({"request": "r" * 20}, "bad-request"),
        ({"request": "r/" * 10, "pickup": "0" * 64}, "bad-request"),
    ],
)
async def test_malformed_start_is_refused_with_a_page(
    browser: Browser, service: Any, params: dict[str, str], reason: str
) -> None:
    response = await browser.get("speckle-nb/start", params)
    assert response.code == 400
    assert b"Start the sign-in from your notebook" in response.body
    assert f'"reason": "{reason}"'.encode() in response.body
    assert "speckle-nb-flow" not in set_cookies(response)
    assert service.store.counts() == {"flows": 0, "entries": 0}


async def test_server_outside_the_allowed_list_is_refused(
    browser: Browser, speckle: FakeSpeckle, service: Any
) -> None:
    kernel = Kernel()
    response = await browser.start(kernel, server="https://evil.example")
    assert response.code == 400
    assert "Location" not in response.headers
    assert b"https://evil.example" not in response.body  # names the allowed ones only
    assert SPECKLE_URL.encode() in response.body
    assert speckle.calls == []
    # the waiting kernel hears it at once
    status, body, _ = await pickup(browser.fetch, kernel)
    assert status == 200
    assert body["status"] == "error"
    assert body["reason"] == "failed"
    assert "allowed_servers" in body["message"]


@pytest.mark.parametrize("speckle_config", [{"allowed_servers": [OTHER_SPECKLE_URL + "/"]}])
async def test_allowed_server_is_used_for_the_redirect(browser: Browser) -> None:
    response = await browser.start(Kernel(), server=OTHER_SPECKLE_URL.upper())
    assert authorize_url_of(response).startswith(f"{OTHER_SPECKLE_URL}/authn/verify/{APP_ID}/")


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_start_from_another_site_is_refused(
    browser: Browser, service: Any, site: str
) -> None:
    kernel = Kernel()
    response = await browser.start(kernel, headers={"Sec-Fetch-Site": site})
    assert response.code == 403
    assert b"opened from another site" in response.body
    assert service.store.counts() == {"flows": 0, "entries": 0}  # nothing recorded


async def test_start_with_a_foreign_referer_is_refused(browser: Browser, service: Any) -> None:
    # an older browser: no Sec-Fetch-Site, so the Referer decides
    response = await browser.start(
        Kernel(), headers={"Sec-Fetch-Site": None, "Referer": "https://evil.example/page"}
    )
    assert response.code == 403
    assert b"opened from another site" in response.body
    assert service.store.counts()["flows"] == 0


async def test_start_with_a_referer_on_this_origin_works(
    browser: Browser, jp_http_port: int
) -> None:
    # an older browser (no Sec-Fetch-Site) opening start from the notebook's page
    notebook = f"http://127.0.0.1:{jp_http_port}/a%40b/lab/tree/x.ipynb"
    response = await browser.start(Kernel(), headers={"Sec-Fetch-Site": None, "Referer": notebook})
    assert response.code == 200, response.body


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": None},
        {"Sec-Fetch-Site": None, "Referer": "not a url at all"},
        {"Sec-Fetch-Site": "\u00e9t\u00e9"},
    ],
)
async def test_start_that_proves_no_origin_is_refused(
    browser: Browser, service: Any, headers: dict[str, str | None]
) -> None:
    """Neither Sec-Fetch-Site nor a Referer: a foreign page can drop its Referer
    (rel="noreferrer"), so this is refused (issue 14)."""
    kernel = Kernel()
    response = await browser.start(kernel, headers=headers)
    assert response.code == 403
    assert b"did not say where this sign-in link was opened from" in response.body
    assert b"unproven-origin" in response.body  # the BroadcastChannel's reason word
    assert service.store.counts() == {"flows": 0, "entries": 0}  # nothing recorded


@pytest.mark.parametrize("site", ["same-origin", "none"])
async def test_start_from_the_notebook_or_the_address_bar_works(
    browser: Browser, site: str
) -> None:
    response = await browser.start(Kernel(), headers={"Sec-Fetch-Site": site})
    assert response.code == 200


async def test_start_requires_a_jupyter_login(browser: Browser, service: Any) -> None:
    response = await browser.start(Kernel(), headers={"Authorization": ""})
    assert response.code == 302  # Jupyter's own login redirect
    assert urlsplit(response.headers["Location"]).path == "/a%40b/login"
    assert service.store.counts()["flows"] == 0


@pytest.mark.parametrize("speckle_config", [{"app_id": ""}])
async def test_missing_app_id_answers_a_page_naming_the_settings(
    browser: Browser, jp_fetch: Any
) -> None:
    kernel = Kernel()
    response = await browser.start(kernel)
    assert response.code == 503
    assert b"SPECKLE_APP_ID" in response.body
    assert b"c.SpeckleNB.app_id" in response.body
    _status, body, _ = await pickup(jp_fetch, kernel)
    assert body["reason"] == "failed"
    assert "SPECKLE_APP_ID" in body["message"]


@pytest.mark.parametrize("speckle_config", [{"app_secret": ""}])
async def test_missing_secret_on_a_plain_server_is_refused_before_speckle(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    response = await browser.start(Kernel())
    assert response.code == 503
    assert b"SPECKLE_APP_SECRET" in response.body
    assert speckle.calls == ["GET /oauth/token"]  # not even the app's redirect URL


@pytest.mark.parametrize("speckle_config", [{"app_secret": ""}])
async def test_s256_server_needs_no_secret(browser: Browser, speckle: FakeSpeckle) -> None:
    speckle.s256 = True
    response = await browser.start(Kernel())
    assert response.code == 200


async def test_unreachable_server_is_reported_before_signing_in(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    speckle.unreachable = True
    response = await browser.start(Kernel())
    assert response.code == 502
    assert b"Could not reach" in response.body or b"unreachable" in response.body


async def test_same_request_started_twice_replaces_the_first_flow(
    browser: Browser, speckle: FakeSpeckle, service: Any
) -> None:
    kernel = Kernel()
    first = await browser.start(kernel)
    second = await browser.start(kernel)
    assert second.code == 200
    assert challenge_of(first) != challenge_of(second)
    # the kernel has not been told anything: the newer flow carries on
    _status, body, _ = await pickup(browser.fetch, kernel)
    assert body == {"status": "pending"}
    flows = list(service.store._flows.values())
    assert [f.ended_reason for f in flows] == ["replaced", None]


async def test_same_request_with_another_pickup_hash_is_refused(
    browser: Browser, service: Any
) -> None:
    kernel = Kernel()
    await browser.start(kernel)
    thief = Kernel(request_id=kernel.request_id)
    response = await browser.start(thief)
    assert response.code == 409
    assert b"belongs to another notebook kernel" in response.body
    assert service.store.counts() == {"flows": 1, "entries": 1}


async def test_second_sign_in_in_the_same_browser_supersedes_the_first(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    first, second = Kernel(), Kernel()
    started = await browser.start(first)
    await browser.start(second)  # same browser: the cookie names the first flow
    _, body, _ = await pickup(browser.fetch, first)
    assert body["status"] == "error"
    assert body["reason"] == "superseded"
    assert "newer sign-in" in body["message"]
    # Speckle's answer for the first flow now lands on the second (the cookie names it):
    # its challenge differs, the server refuses, and the second kernel hears why.
    code = speckle.mint_code(challenge_of(started))
    response = await browser.callback({"access_code": code})
    assert response.code == 502
    assert b"Code challenge mismatch" in response.body
    _status, body, _ = await pickup(browser.fetch, second)
    assert body["reason"] == "failed"
    assert "Code challenge mismatch" in body["message"]


async def test_other_browsers_do_not_supersede(browser: Browser, jp_fetch: Any) -> None:
    first = Kernel()
    await browser.start(first)
    other = Browser(jp_fetch)  # no cookie
    assert (await other.start(Kernel())).code == 200
    _, body, _ = await pickup(jp_fetch, first)
    assert body == {"status": "pending"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Referer": "http://[::1"},
        {"Referer": "not a url at all"},
        {"Sec-Fetch-Site": "\u00e9t\u00e9"},
    ],
)
async def test_odd_headers_never_cause_a_server_error(
    browser: Browser, headers: dict[str, str]
) -> None:
    response = await browser.start(Kernel(), headers=headers)
    assert response.code in (200, 403)
