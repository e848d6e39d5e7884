"""Sign-ins through a real JupyterHub: two people at once, isolation, named servers, the hub's log.

Each person is an HTTP client playing a browser (hub cookies, then Speckle's), and a kernel
started by their own single-user server runs ``speckle_nb.sign_in(wait=True)`` exactly as a
notebook cell would. The start URL the browser opens is the panel's non-secret ``start_path``
trait, read from the kernel's widget messages, as the panel's button builds it.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote

import httpx
import pytest
from hubkit import (
    ALICE,
    BOB,
    NAMED_WITH_APP,
    NAMED_WITHOUT_APP,
    Execution,
    Hub,
    HubBrowser,
    HubSetup,
    Kernel,
    Person,
    RunningCell,
    hops,
    page_text,
)
from support.devrequests import DevRequests

pytestmark = pytest.mark.hub

SIGN_IN = (
    "import speckle_nb\n"
    "panel = speckle_nb.sign_in(wait=True, timeout={timeout})\n"
    "print(panel.state, '|', panel.user_name)"
)
WHO_AM_I = "import speckle_nb\nprint(speckle_nb.client().active_user().name)"


def who_is(kernel: Kernel) -> str:
    out = kernel.execute(WHO_AM_I, timeout=30)
    assert out.error is None, out.error
    return out.stdout.strip()


@dataclass
class SignIn:
    """One person's sign-in through the hub: their kernel, and what their browser saw."""

    person: Person
    kernel: Kernel
    authorize_url: str
    callback_url: str
    delivered: httpx.Response
    cell: Execution


def sign_in_through_hub(
    browser: HubBrowser,
    person: Person,
    *,
    server_name: str = "",
    together: threading.Barrier | None = None,
) -> SignIn:
    """Run the sign-in cell in a new kernel of ``browser``'s server and play the browser.

    With ``together``, each browser waits until every flow is pending on its server, then all
    deliver their callbacks at once.
    """
    kernel = browser.start_kernel(server_name)
    try:
        cell = RunningCell(kernel, SIGN_IN.format(timeout=90), timeout=120)
        start = browser.open_start(cell.start_path(), server_name)
        authorize_url = getattr(start, "next_url", None)
        assert authorize_url, f"start did not go to Speckle: {start.status_code} {page_text(start)}"
        callback_url = browser.authorize_on_speckle(authorize_url, person.email, person.password)
    except BaseException:
        if together is not None:
            together.abort()  # the other person stops waiting at once
        raise
    if together is not None:
        together.wait(timeout=60)
    delivered = browser.deliver(callback_url)
    return SignIn(person, kernel, authorize_url, callback_url, delivered, cell.result(timeout=120))


@pytest.fixture(scope="module")
def signed_in(people: dict[str, HubBrowser]) -> Iterator[dict[str, SignIn]]:
    """alice and bob sign in to Speckle at the same time, each in their own kernel."""
    together = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        futures = {
            p.hub_name: pool.submit(sign_in_through_hub, people[p.hub_name], p, together=together)
            for p in (ALICE, BOB)
        }
        results = {name: future.result() for name, future in futures.items()}
    yield results
    for result in results.values():
        result.kernel.shutdown()


# -- two people at once ----------------------------------------------------------------------


def test_alice_and_bob_sign_in_at_once_through_user_redirect(
    hub_setup: HubSetup, signed_in: dict[str, SignIn]
) -> None:
    hub_url = hub_setup.hub.url
    for name, result in signed_in.items():
        who = result.person.speckle_name
        assert result.cell.error is None, result.cell.error
        assert result.cell.stdout.strip() == f"signed_in | {who}"
        # Speckle sent the browser to the one registered redirect URL …
        assert result.callback_url.startswith(f"{hub_setup.redirect_url}?access_code=")
        # … and the hub forwarded it to this person's own server, query string kept.
        path = hops(result.delivered)
        code = result.callback_url.split("access_code=", 1)[1]
        assert path[0] == f"/hub/user-redirect/speckle-nb/callback?access_code={code}"
        assert path[1].startswith(f"/hub/spawn/{name}?next=")
        assert path[-1] == f"/user/{name}/speckle-nb/callback?access_code={code}"
        assert str(result.delivered.url).startswith(hub_url)
        assert result.delivered.status_code == 200
        assert f"Signed in as {who}" in page_text(result.delivered)
        assert who_is(result.kernel) == who


def test_the_setup_check_shows_the_exact_redirect_url_and_no_secret(
    hub_setup: HubSetup, alice: HubBrowser
) -> None:
    """What the admin guide's "Check the setup" says a user sees, and the start-up log line."""
    status = alice.server_api("GET", "speckle-nb/status")
    assert status.status_code == 200
    body = status.json()
    assert body["redirect_url"] == hub_setup.redirect_url  # exactly what was registered
    assert body["redirect_url_source"] == "jupyterhub"
    assert body["app_configured"] is True
    assert body["app_id"] == hub_setup.app.id
    assert body["problems"] == []
    assert hub_setup.app.secret not in status.text
    template = (
        "must have this redirect URL registered (template; GET speckle-nb/status shows the "
        "exact URL): https://<your hub's public host>/hub/user-redirect/speckle-nb/callback"
    )
    assert template in hub_setup.hub.log_text()


# -- a callback URL in the wrong browser -----------------------------------------------------


def test_alices_callback_replayed_in_bobs_browser_is_rejected_and_changes_nothing(
    hub_setup: HubSetup,
    alice: HubBrowser,
    bob: HubBrowser,
    signed_in: dict[str, SignIn],
) -> None:
    dev = hub_setup.dev
    bob_user = dev.state.user_by_email(BOB.email)
    alice_user = dev.state.user_by_email(ALICE.email)
    assert bob_user is not None
    assert alice_user is not None
    tokens_before = {u.id: len(dev.state.tokens_of(u.id)) for u in (alice_user, bob_user)}

    # alice starts a second sign-in (a second notebook) and Speckle hands her browser a code.
    kernel = alice.start_kernel()
    try:
        cell = RunningCell(kernel, SIGN_IN.format(timeout=90), timeout=120)
        start = alice.open_start(cell.start_path())
        callback_url = alice.authorize_on_speckle(start.next_url, ALICE.email, ALICE.password)  # type: ignore[attr-defined]

        # Before alice's browser gets there, the URL is opened in bob's browser. The hub
        # sends it to *bob's* server, which has no sign-in in progress in his browser.
        replay = bob.deliver(callback_url)
        assert hops(replay)[-1].startswith("/user/bob/speckle-nb/callback?")
        assert replay.status_code == 400
        assert "No sign-in in progress in this browser" in page_text(replay)
        # Opening alice's server's callback directly gets bob nowhere either.
        direct = bob.deliver(f"{hub_setup.hub.url}{hops(replay)[-1].replace('/bob/', '/alice/')}")
        assert direct.status_code == 403
        assert "Signed in" not in page_text(direct)

        # alice's pending sign-in is intact: her browser finishes it, her kernel gets Alice.
        delivered = alice.deliver(callback_url)
        assert f"Signed in as {ALICE.speckle_name}" in page_text(delivered)
        out = cell.result(timeout=120)
        assert out.error is None, out.error
        assert out.stdout.strip() == f"signed_in | {ALICE.speckle_name}"

        # The same URL again, in either browser, after the fact: rejected.
        for browser in (bob, alice):
            again = browser.deliver(callback_url)
            assert again.status_code == 400
            assert "Signed in" not in page_text(again)
        assert who_is(kernel) == ALICE.speckle_name
    finally:
        kernel.shutdown()

    # Nothing changed for either: same identities, and bob's server never exchanged a code.
    assert who_is(signed_in["alice"].kernel) == ALICE.speckle_name
    assert who_is(signed_in["bob"].kernel) == BOB.speckle_name
    assert len(dev.state.tokens_of(bob_user.id)) == tokens_before[bob_user.id]
    assert len(dev.state.tokens_of(alice_user.id)) == tokens_before[alice_user.id] + 1


def test_replay_into_a_browser_with_its_own_sign_in_fails_both_and_crosses_no_identity(
    hub_setup: HubSetup,
    alice: HubBrowser,
    bob: HubBrowser,
    signed_in: dict[str, SignIn],
) -> None:
    """The worst case Speckle's state-less callback allows: bob's browser has a sign-in of its
    own in progress when alice's callback URL reaches it. His server cannot tell the code is
    not his, so it tries it with his challenge; Speckle refuses and burns the code. Both
    sign-ins fail with a message, and nobody ends up with the other's identity."""
    dev = hub_setup.dev
    users = [dev.state.user_by_email(p.email) for p in (ALICE, BOB)]
    tokens_before = [len(dev.state.tokens_of(u.id)) for u in users if u is not None]
    kernels = {p.hub_name: people.start_kernel() for p, people in ((ALICE, alice), (BOB, bob))}
    try:
        cells = {
            name: RunningCell(kernel, SIGN_IN.format(timeout=60), timeout=90)
            for name, kernel in kernels.items()
        }
        alices_start = alice.open_start(cells["alice"].start_path())
        callback_url = alice.authorize_on_speckle(
            alices_start.next_url,  # type: ignore[attr-defined]
            ALICE.email,
            ALICE.password,
        )
        bob.open_start(cells["bob"].start_path())  # bob's browser now has a flow of its own

        in_bobs_browser = bob.deliver(callback_url)
        assert hops(in_bobs_browser)[-1].startswith("/user/bob/speckle-nb/callback?")
        assert in_bobs_browser.status_code == 502
        assert "Signed in" not in page_text(in_bobs_browser)
        in_alices_browser = alice.deliver(callback_url)
        assert in_alices_browser.status_code == 502
        assert "Signed in" not in page_text(in_alices_browser)

        for name, cell in cells.items():
            out = cell.result(timeout=90)
            assert out.error is not None, f"{name}'s sign-in should have failed: {out.stdout}"
            assert out.error.startswith("SignIn"), out.error
    finally:
        for kernel in kernels.values():
            kernel.shutdown()
    assert who_is(signed_in["alice"].kernel) == ALICE.speckle_name
    assert who_is(signed_in["bob"].kernel) == BOB.speckle_name
    assert [len(dev.state.tokens_of(u.id)) for u in users if u is not None] == tokens_before


# -- someone else's result --------------------------------------------------------------------

NEW_REQUEST = (
    "from speckle_nb.pickup import SignInRequest\n"
    "request = SignInRequest.new()\n"
    "print(request.request_id, request.start_path())"
)
PICK_UP = (
    "from speckle_nb.discovery import find_jupyter_server\n"
    "from speckle_nb.pickup import PickupClient\n"
    "creds = PickupClient(find_jupyter_server().url).wait(request, timeout=30)\n"
    "print(creds.user.name)"
)


BOB_TRIES = """\
from speckle_nb.discovery import find_jupyter_server
from speckle_nb.errors import SpeckleError
from speckle_nb.pickup import PickupClient, SignInRequest
theirs = SignInRequest({request_id!r}, "bob-guesses-this")
print("own server:", PickupClient(find_jupyter_server().url).poll(theirs, hold=0))
try:
    PickupClient({alice!r}).poll(theirs, hold=0)
except SpeckleError as exc:
    print("alice's server:", type(exc).__name__, "kernels it started itself" in str(exc))
"""


def valid_refresh_token(setup: HubSetup) -> str:
    """A refresh token of the hub's app that Speckle would honour (minted as an exchange)."""
    dev, app = setup.dev, setup.app
    user = dev.state.user_by_email(BOB.email)
    assert user is not None
    challenge = secrets.token_urlsafe(32)
    code = dev.state.mint_access_code(app.id, user.id, challenge)
    pair = dev.state.exchange(app.id, app.secret, code, challenge)
    assert pair.refresh_token
    return pair.refresh_token


def test_bob_cannot_pick_up_alices_result_even_knowing_her_request_id(
    hub_setup: HubSetup, alice: HubBrowser, bob: HubBrowser, signed_in: dict[str, SignIn]
) -> None:
    kernel = alice.start_kernel()
    try:
        made = kernel.execute(NEW_REQUEST, timeout=30)
        assert made.error is None, made.error
        request_id, start_path = made.stdout.split()
        start = alice.open_start(start_path)
        callback_url = alice.authorize_on_speckle(start.next_url, ALICE.email, ALICE.password)  # type: ignore[attr-defined]
        assert f"Signed in as {ALICE.speckle_name}" in page_text(alice.deliver(callback_url))
        # alice's result now waits on her server for her kernel's pickup secret.

        guess = {"request": request_id, "secret": "bob-guesses-this", "hold": 0}
        headers = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
        # pickup and refresh need no Jupyter login (kernels call them), and the hub lets bob
        # reach alice's server; but they answer only alice's server's own kernels (its
        # kernel key), so bob gets nothing — even with a valid refresh token of the app —
        # and nothing reaches Speckle.
        refresh_token = valid_refresh_token(hub_setup)
        with DevRequests() as speckle:
            for action in ("wait", "cancel"):
                taken = bob.http.post(
                    f"{hub_setup.hub.url}/user/alice/speckle-nb/pickup",
                    json={**guess, "action": action},
                    headers=headers,
                )
                assert taken.status_code == 403, taken.text
                assert taken.json()["reason"] == "not-this-servers-kernel"
                assert "credentials" not in taken.json()
            refreshed = bob.http.post(
                f"{hub_setup.hub.url}/user/alice/speckle-nb/refresh",
                json={"server_url": hub_setup.dev.url, "refresh_token": refresh_token},
                headers=headers,
            )
            assert refreshed.status_code == 403, refreshed.text
            assert refreshed.json()["reason"] == "not-this-servers-kernel"
            assert "token" not in refreshed.json()
            assert speckle.seen == []
        # bob's browser is no kernel of his own server either.
        mine = bob.server_api("POST", "speckle-nb/pickup", json=guess)
        assert mine.status_code == 403
        assert mine.json()["reason"] == "not-this-servers-kernel"
        # Nor does code in bob's kernel get anywhere, at his server or at alice's.
        tried = signed_in["bob"].kernel.execute(
            BOB_TRIES.format(request_id=request_id, alice=f"{hub_setup.hub.url}/user/alice/"),
            timeout=60,
        )
        assert tried.error is None, tried.error
        assert tried.stdout.splitlines() == [
            "own server: None",
            "alice's server: ConfigurationError True",
        ]

        # alice's kernel still gets her result.
        picked = kernel.execute(PICK_UP, timeout=60)
        assert picked.error is None, picked.error
        assert picked.stdout.strip() == ALICE.speckle_name
    finally:
        kernel.shutdown()
    assert who_is(signed_in["bob"].kernel) == BOB.speckle_name


# -- named servers ----------------------------------------------------------------------------


def test_named_server_without_its_own_app_refuses_with_a_clear_message(
    hub: Hub, alice: HubBrowser
) -> None:
    alice.open_server(NAMED_WITHOUT_APP)
    status = alice.server_api("GET", "speckle-nb/status", server_name=NAMED_WITHOUT_APP).json()
    assert any(f"named JupyterHub server '{NAMED_WITHOUT_APP}'" in p for p in status["problems"])
    # The server said so at start-up too, where the admin looks (its log).
    warned = f"speckle-nb: This is the named JupyterHub server '{NAMED_WITHOUT_APP}'"
    assert warned in hub.log_text()

    kernel = alice.start_kernel(NAMED_WITHOUT_APP)
    try:
        cell = RunningCell(kernel, SIGN_IN.format(timeout=60), timeout=90)
        start = alice.open_start(cell.start_path(), NAMED_WITHOUT_APP)
        # Refused before Speckle is involved: no code is minted that could land elsewhere.
        assert getattr(start, "next_url", None) is None
        assert start.status_code == 409
        words = page_text(start)
        assert f"named JupyterHub server '{NAMED_WITHOUT_APP}'" in words
        assert "default server" in words
        out = cell.result(timeout=90)
        assert out.error is not None
        assert out.error.startswith("SignIn")
        assert "named JupyterHub server" in out.error
    finally:
        kernel.shutdown()


def test_named_server_with_its_own_app_signs_in_through_user_redirect(
    hub_setup: HubSetup, alice: HubBrowser
) -> None:
    alice.open_server(NAMED_WITH_APP)
    result = sign_in_through_hub(alice, ALICE, server_name=NAMED_WITH_APP)
    try:
        assert result.cell.error is None, result.cell.error
        redirect = f"{hub_setup.hub.url}/hub/user-redirect/{NAMED_WITH_APP}/speckle-nb/callback"
        assert result.callback_url.startswith(f"{redirect}?access_code=")
        path = hops(result.delivered)
        assert path[1].startswith("/hub/spawn/alice?next=")
        assert path[-1].startswith(f"/user/alice/{NAMED_WITH_APP}/speckle-nb/callback?")
        assert f"Signed in as {ALICE.speckle_name}" in page_text(result.delivered)
        assert who_is(result.kernel) == ALICE.speckle_name
    finally:
        result.kernel.shutdown()


# -- what the hub's own log holds --------------------------------------------------------------

_STAMP = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")


def _millis(line: str) -> float:
    from datetime import datetime

    match = _STAMP.match(line)
    assert match, line
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp() * 1000


def test_hub_log_records_each_code_only_in_its_spawn_hop_and_the_code_is_already_burned(
    hub_setup: HubSetup, signed_in: dict[str, SignIn]
) -> None:
    lines = hub_setup.hub.log_text().splitlines()
    for name, result in signed_in.items():
        code = result.callback_url.split("access_code=", 1)[1]
        holding = [line for line in lines if code in unquote(line)]
        # Only JupyterHub's own lines hold it (the /hub/spawn/<name>?next=… hop, and the
        # redirect that points there); the single-user server masks it as [secret].
        assert holding, f"{name}'s code is not in the hub log"
        assert all(
            " JupyterHub " in line and f"/hub/spawn/{name}?next=" in line for line in holding
        )
        # Exchanged moments after JupyterHub logged it …
        done = next(
            line
            for line in lines
            if f"GET /user/{name}/speckle-nb/callback?access_code=[secret]" in line
        )
        assert _millis(done) - _millis(holding[-1]) < 5000
        # … so what the log holds can no longer be used.
        replay = httpx.post(
            f"{hub_setup.dev.url}/auth/token",
            json={
                "appId": hub_setup.app.id,
                "appSecret": hub_setup.app.secret,
                "accessCode": code,
                "challenge": "whatever",
            },
        )
        assert replay.status_code == 401
        assert replay.json() == {"err": "Access code not found."}
    assert hub_setup.app.secret not in "\n".join(lines)


def test_no_challenge_in_any_log(hub_setup: HubSetup, signed_in: dict[str, SignIn]) -> None:
    log = hub_setup.hub.log_text()
    for result in signed_in.values():
        challenge = result.authorize_url.rstrip("/").rsplit("/", 1)[1]
        assert challenge not in log
