"""``/oauth/token``: a 404 like the released server (§13.7), S256 when switched on (§2.1)."""

from __future__ import annotations

import base64
import hashlib
import secrets

import httpx
import pytest

from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.state import App

from .helpers import HEX42


def _verifier_and_challenge() -> tuple[str, str]:
    # What speckle-sharp-sdk does: a base64url verifier from 32 random bytes.
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_oauth_token_is_expresss_404_by_default(http: httpx.Client, method: str) -> None:
    answer = http.request(method, "/oauth/token")

    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert f"<pre>Cannot {method} /oauth/token</pre>" in answer.text


def test_s256_sign_in_and_exchange_without_a_secret(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    devserver.options.oauth_s256 = True  # flipped on the running server
    assert http.get("/oauth/token").status_code == 200
    verifier, challenge = _verifier_and_challenge()
    verify = f"{devserver.url}/authn/verify/{dev_app.id}/{challenge}?code_challenge_method=S256"
    with BrowserPlayer() as browser:
        landed = browser.sign_in_and_consent(verify, "alice@example.org", "alice-pass")
    code = landed.split("access_code=", 1)[1]

    answer = http.post(
        "/oauth/token", json={"appId": dev_app.id, "accessCode": code, "codeVerifier": verifier}
    )

    assert answer.status_code == 200
    pair = answer.json()
    assert set(pair) == {"token", "refreshToken"}
    assert HEX42.match(pair["token"])
    info = devserver.state.validate_token(pair["token"])
    assert info is not None
    alice = devserver.state.user_by_email("alice@example.org")
    assert alice is not None
    assert info.user_id == alice.id


def test_s256_failures_use_the_same_wording_and_burn_rules(
    devserver: DevServer, dev_app: App, http: httpx.Client
) -> None:
    devserver.options.oauth_s256 = True
    verifier, challenge = _verifier_and_challenge()
    code = devserver.state.mint_access_code(dev_app.id, devserver.demo_user.id, challenge)
    body = {"appId": dev_app.id, "accessCode": code, "codeVerifier": verifier}

    missing = http.post("/oauth/token", json={"appId": dev_app.id, "accessCode": code})
    wrong_app = http.post("/oauth/token", json={**body, "appId": "sca"})
    # The plain verifier equals neither the challenge nor its hash: refused and burned.
    wrong = http.post("/oauth/token", json={**body, "codeVerifier": challenge})
    retry = http.post("/oauth/token", json=body)

    assert (missing.status_code, missing.json()) == (
        401,
        {"err": "Invalid request, insufficient information provided. Code Verifier is required."},
    )
    assert wrong_app.json() == {"err": "Invalid request: application id does not match."}
    assert wrong.status_code == 401
    assert wrong.json()["err"].startswith("Code verifier mismatch.")
    assert retry.json() == {"err": "Access code not found."}
