"""The Speckle login setup (``configure(c, login=True)``): Speckle is the hub's login.

A real JupyterHub with ``SpeckleOAuthenticator`` (oauthenticator 17) logs people in through the
dev server's consent page; their tokens live in ``auth_state`` (encrypted with
``JUPYTERHUB_CRYPT_KEY``), and their kernels read them with the hub token they inherit, so the
first cell works with no click. The app's one redirect URL is ``{hub}/hub/oauth_callback``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hubkit import ALICE, Hub, HubBrowser, Person, page_text
from servicekit import TOKENS, LoginSetup, children_of

pytestmark = pytest.mark.hub

WHO_AM_I = "import speckle_nb\nprint(speckle_nb.client().active_user().name)"


def log_in_with_speckle(hub: Hub, person: Person) -> tuple[HubBrowser, str]:
    """The hub's login through Speckle, as a browser does it; returns the browser (its hub
    user is the Speckle email) and the callback URL Speckle sent it to."""
    browser = HubBrowser(hub, person.email)
    start = browser.navigate("/hub/oauth_login", stop=lambda u: not u.startswith(hub.url + "/"))
    authorize = getattr(start, "next_url", None)
    assert authorize, f"the login did not go to Speckle: {start.status_code} {page_text(start)}"
    callback = browser.authorize_on_speckle(authorize, person.email, person.password)
    assert callback.startswith(f"{hub.url}/hub/oauth_callback?access_code=")
    landing = browser.deliver(callback)
    assert landing.status_code == 200, f"{landing.url}: {landing.status_code} {page_text(landing)}"
    browser.open_server()
    return browser, callback


@pytest.fixture(scope="module")
def alice(login_setup: LoginSetup) -> Iterator[tuple[HubBrowser, str]]:
    browser, callback = log_in_with_speckle(login_setup.hub, ALICE)
    yield browser, callback
    browser.close()


def test_the_first_cell_is_signed_in_with_no_click(
    login_setup: LoginSetup, alice: tuple[HubBrowser, str]
) -> None:
    browser, _ = alice
    kernel = browser.start_kernel()
    try:
        out = kernel.execute(WHO_AM_I, timeout=60)
        assert out.error is None, out.error
        assert out.stdout.strip() == ALICE.speckle_name
        panel = kernel.execute(
            "p = speckle_nb.sign_in()\nprint(p.state, '|', p.message)", timeout=60
        )
        assert panel.error is None, panel.error
        assert panel.stdout.strip() == (
            f"signed_in | Signed in through JupyterHub as {ALICE.speckle_name}."
        )
        bye = kernel.execute("print(speckle_nb.sign_out())", timeout=60)
        assert "in this kernel" in bye.stdout
        assert "Not ended: your JupyterHub login with Speckle" in bye.stdout
        after = kernel.execute(WHO_AM_I, timeout=60)
        assert after.error is not None
        assert after.error.startswith("NotSignedInError")
    finally:
        kernel.shutdown()


def test_servers_and_kernels_hold_no_app_secret_and_logs_no_secret(
    login_setup: LoginSetup, alice: tuple[HubBrowser, str]
) -> None:
    browser, callback = alice
    kernel = browser.start_kernel()
    try:
        assert kernel.execute(WHO_AM_I, timeout=60).error is None
        token, refresh = kernel.execute(TOKENS, timeout=30).stdout.split()
        server = login_setup.hub.server_model(browser.name)
        assert server is not None
        pid = int(server["state"]["pid"])
        for each in [pid, *children_of(pid)]:
            raw = Path(f"/proc/{each}/environ").read_bytes()
            for value in (login_setup.app.secret, token, refresh):
                assert value.encode() not in raw
        log = login_setup.hub.log_text()
        code = callback.split("access_code=", 1)[1]
        for what, value in {
            "secret": login_setup.app.secret,
            "token": token,
            "refresh token": refresh,
            "access code": code,
        }.items():
            assert value not in log, f"the {what} is in the hub's log"
        assert "/hub/oauth_callback?access_code=[secret]" in log  # the hub logged it, masked
    finally:
        kernel.shutdown()


def test_a_revoked_token_is_renewed_at_the_hub_for_a_new_kernel(
    login_setup: LoginSetup, alice: tuple[HubBrowser, str]
) -> None:
    browser, _ = alice
    first = browser.start_kernel()
    try:
        assert first.execute(WHO_AM_I, timeout=60).error is None
        token = first.execute(TOKENS, timeout=30).stdout.split()[0]
    finally:
        first.shutdown()
    user = login_setup.dev.state.user_by_email(ALICE.email)
    assert user is not None
    login_setup.dev.state.revoke_user_token(token, user.id)  # Speckle: this token is dead
    later = browser.start_kernel()
    try:
        out = later.execute(WHO_AM_I, timeout=60)
        assert out.error is None, out.error
        assert out.stdout.strip() == ALICE.speckle_name
        assert later.execute(TOKENS, timeout=30).stdout.split()[0] != token
    finally:
        later.shutdown()


def test_a_refused_refresh_sends_the_person_back_to_the_login_saying_why(
    login_setup: LoginSetup, alice: tuple[HubBrowser, str]
) -> None:
    browser, _ = alice
    kernel = browser.start_kernel()
    try:
        assert kernel.execute(WHO_AM_I, timeout=60).error is None
        token, refresh = kernel.execute(TOKENS, timeout=30).stdout.split()
        # Speckle ends both: the token, and the refresh token the hub would renew it with.
        login_setup.dev.state.logout(token, refresh)
        fresh = browser.start_kernel()
        try:
            out = fresh.execute(WHO_AM_I, timeout=60)
            assert out.error is not None
            assert out.error.startswith("InvalidTokenError")
            assert "Speckle refused to renew your sign-in" in out.error
            assert "Log in to JupyterHub again" in out.error
        finally:
            fresh.shutdown()
    finally:
        kernel.shutdown()
    # The browser's next page of the hub finds the login dead and goes to the login page.
    login_page = _until_sent_to_login(browser)
    text = page_text(login_page)
    assert "Speckle refused to renew it" in text
    assert "Sign in with Speckle" in text


def _until_sent_to_login(browser: HubBrowser, timeout: float = 30) -> httpx.Response:
    """Open the hub's home page until the hub sends this browser to its login page (the
    kernel's refused renewal made the hub check this login again on its next page)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = browser.navigate("/hub/home")
        if str(page.url).split("?")[0].endswith("/hub/login"):
            return page
        time.sleep(0.3)
    raise AssertionError("the hub kept this browser logged in after Speckle refused the refresh")
