"""The whole no-extension sign-in over real loopback HTTP: dev server, played browser, kernel.

Paste: the browser stops before the app's redirect URL (nothing listens there, like a
person's "connection refused" page) and the test pastes the address. Loopback: the app is
registered with ``http://localhost:<free port>/cb``; the browser follows the redirect into
the ``LoopbackReceiver``, and the kernel exchanges the code.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from speckle_nb.credentials import Credentials
from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.player import Page
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD
from speckle_nb.errors import (
    ConfigurationError,
    PortInUseError,
    SignInDeniedError,
    SignInError,
    SignInTimeoutError,
    TokenExchangeError,
    TransportError,
)
from speckle_nb.fallback import complete_from_callback, prepare_fallback_sign_in
from speckle_nb.graphql import SpeckleClient
from speckle_nb.listener import LoopbackReceiver
from speckle_nb.methods import ListenerMethod, PasteMethod
from speckle_nb.oauth import App

SCOPES = ["streams:read", "profile:read", "profile:email"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def browser() -> Iterator[BrowserPlayer]:
    with BrowserPlayer(honour_refresh_delay=False) as player:
        yield player


@pytest.fixture
def sca(devserver: DevServer) -> App:
    """Speckle's built-in connector app: redirect http://localhost:29363, trusted, secret = id."""
    return App(devserver.url, "sca", "sca")


@pytest.fixture
def loopback_app(devserver: DevServer) -> tuple[App, str]:
    """An app registered with a loopback redirect on a free port (consent screen shown)."""
    redirect = f"http://localhost:{free_port()}/cb"
    registered = devserver.state.register_app("notebook (loopback)", redirect, SCOPES)
    return App(devserver.url, registered.id, registered.secret), redirect


def sign_in(browser: BrowserPlayer, url: str, action: str = "allow") -> str:
    """Log in as the demo user, answer consent; the URL the browser is sent to (not fetched)."""
    return browser.sign_in_and_consent(url, DEMO_EMAIL, DEMO_PASSWORD, action)


def assert_works(devserver: DevServer, token: str) -> None:
    info = devserver.state.validate_token(token)
    assert info is not None
    assert info.user_id == devserver.demo_user.id


# --------------------------------------------------------------------------- paste


def test_paste_the_landing_url(devserver: DevServer, sca: App, browser: BrowserPlayer) -> None:
    challenge, url = prepare_fallback_sign_in(sca)
    assert challenge.method == "plain"  # the released server has no /oauth/token
    landing = sign_in(browser, url)
    assert landing.startswith("http://localhost:29363?access_code=")

    creds = complete_from_callback(sca, challenge, landing, source="paste")

    assert creds.source == "paste"
    assert creds.server_url == devserver.url
    assert creds.app_id == "sca"
    assert creds.user is not None
    assert creds.user.id == devserver.demo_user.id
    assert creds.refresh_token
    assert "profile:read" in creds.scopes  # the app's scopes: a token carries all of them
    assert creds.obtained_by_us  # so sign_out() revokes it
    assert_works(devserver, creds.token)
    assert creds.token not in repr(creds)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda url: "\n  " + url + "  \n", id="url-with-whitespace"),
        pytest.param(lambda url: urlsplit(url).query, id="query"),
        pytest.param(lambda url: "?" + urlsplit(url).query, id="question-mark-query"),
        pytest.param(lambda url: urlsplit(url).query.split("=", 1)[1], id="bare-code"),
    ],
)
def test_paste_the_query_or_the_bare_code(
    devserver: DevServer, sca: App, browser: BrowserPlayer, shape: Callable[[str], str]
) -> None:
    challenge, url = prepare_fallback_sign_in(sca)
    creds = complete_from_callback(sca, challenge, shape(sign_in(browser, url)), source="paste")
    assert_works(devserver, creds.token)


def test_paste_with_a_registered_app_after_consent(
    devserver: DevServer, browser: BrowserPlayer
) -> None:
    registered = devserver.state.register_app(
        "notebook (paste)", "https://notebook.example/done", SCOPES
    )
    app = App(devserver.url, registered.id, registered.secret)
    challenge, url = prepare_fallback_sign_in(app)
    landing = sign_in(browser, url)
    assert landing.startswith("https://notebook.example/done?access_code=")
    creds = complete_from_callback(app, challenge, landing, source="paste")
    assert creds.scopes == tuple(SCOPES)
    assert_works(devserver, creds.token)


def test_denied(
    devserver: DevServer, loopback_app: tuple[App, str], browser: BrowserPlayer
) -> None:
    app, _ = loopback_app
    challenge, url = prepare_fallback_sign_in(app)
    landing = sign_in(browser, url, action="deny")
    assert "denied=true" in landing
    with pytest.raises(SignInDeniedError, match="Deny"):
        complete_from_callback(app, challenge, landing, source="paste")


def test_missing_code_says_what_to_paste_and_burns_nothing(
    devserver: DevServer, sca: App, browser: BrowserPlayer
) -> None:
    challenge, url = prepare_fallback_sign_in(sca)
    landing = sign_in(browser, url)
    # A common slip: pasting the sign-in link instead of where the browser ended up.
    with pytest.raises(SignInError, match="no `access_code=`") as info:
        complete_from_callback(
            sca, challenge, url, source="paste", redirect_url="http://localhost:29363"
        )
    message = str(info.value)
    assert "http://localhost:29363?access_code=…" in message
    assert challenge.challenge not in message
    assert devserver.state.pending_codes() == 1  # the real code is still there
    creds = complete_from_callback(sca, challenge, landing, source="paste")
    assert_works(devserver, creds.token)


def test_a_burned_code_gets_the_servers_words(
    devserver: DevServer, sca: App, browser: BrowserPlayer
) -> None:
    challenge, url = prepare_fallback_sign_in(sca)
    landing = sign_in(browser, url)
    code = urlsplit(landing).query.split("=", 1)[1]
    complete_from_callback(sca, challenge, landing, source="paste")

    with pytest.raises(TokenExchangeError) as info:
        complete_from_callback(sca, challenge, landing, source="paste")  # pasted twice
    assert info.value.server_message == "Access code not found."
    assert "Start the sign-in again" in str(info.value)
    assert code not in str(info.value)


def test_a_code_from_another_sign_in_is_refused_and_burned(
    devserver: DevServer, sca: App, browser: BrowserPlayer
) -> None:
    mine, _ = prepare_fallback_sign_in(sca)
    theirs, url = prepare_fallback_sign_in(sca)
    landing = sign_in(browser, url)
    with pytest.raises(TokenExchangeError, match="Code challenge mismatch"):
        complete_from_callback(sca, mine, landing, source="paste")
    with pytest.raises(TokenExchangeError, match="Access code not found"):
        complete_from_callback(sca, theirs, landing, source="paste")


def test_s256_where_the_server_has_it_needs_no_secret(
    devserver: DevServer, browser: BrowserPlayer
) -> None:
    devserver.options.oauth_s256 = True
    app = App(devserver.url, "sca")  # no secret at all
    challenge, url = prepare_fallback_sign_in(app)
    assert challenge.method == "S256"
    assert url.endswith("?code_challenge_method=S256")
    creds = complete_from_callback(app, challenge, sign_in(browser, url), source="paste")
    assert_works(devserver, creds.token)


def test_a_missing_secret_is_reported_before_anyone_signs_in(devserver: DevServer) -> None:
    with pytest.raises(ConfigurationError, match="SPECKLE_APP_SECRET"):
        prepare_fallback_sign_in(App(devserver.url, "abc123"))
    assert devserver.state.pending_codes() == 0


# --------------------------------------------------------------------------- loopback


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Person:
    """The person at the browser: opens the sign-in link (the panel's click), signs in,
    answers consent, and their browser follows the redirect to the kernel once it listens."""

    def __init__(self, browser: BrowserPlayer, action: str = "allow") -> None:
        self.browser = browser
        self.action = action
        self.shown: list[str] = []
        self.landing = ""
        self.page: Page | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> None:
        self.shown.append(url)
        self._thread = threading.Thread(target=self._act, args=(url,), daemon=True)
        self._thread.start()

    def _act(self, url: str) -> None:
        try:
            self.landing = sign_in(self.browser, url, self.action)
            port = urlsplit(self.landing).port or 80
            deadline = time.monotonic() + 10
            while not listening(port) and time.monotonic() < deadline:
                time.sleep(0.02)  # the kernel binds when its wait begins
            self.page = self.browser.open(self.landing)  # reaches the kernel's listener
        except BaseException as exc:  # surfaced by done(), not lost in the thread
            self.error = exc

    def done(self) -> Page:
        assert self._thread is not None
        self._thread.join(5)
        if self.error is not None:
            raise self.error
        assert self.page is not None
        return self.page


def listener_sign_in(method: ListenerMethod, person: Person, timeout: float = 20) -> Credentials:
    """What the panel does: the flow (and its URL) first, the click opens it, then the kernel
    listens until the redirect arrives."""
    flow, traits = method.start(None)
    assert flow is not None
    assert flow.authorize_url is not None
    assert flow.authorize_url not in str(traits)  # the URL is not a trait (it holds the challenge)
    person(flow.authorize_url)
    return method.wait(flow, timeout=timeout)


def test_loopback_sign_in(
    devserver: DevServer, loopback_app: tuple[App, str], browser: BrowserPlayer
) -> None:
    app, redirect = loopback_app
    person = Person(browser)

    creds = listener_sign_in(ListenerMethod(app, redirect), person)

    page = person.done()
    assert person.shown[0].startswith(f"{devserver.url}/authn/verify/{app.app_id}/")
    assert page.response.status_code == 200
    assert page.title == "Signed in — return to your notebook"
    assert "You can close this tab." in page.response.text
    code = urlsplit(person.landing).query.split("=", 1)[1]
    assert code not in page.response.text
    assert creds.source == "loopback"
    assert creds.app_id == app.app_id
    assert_works(devserver, creds.token)
    with SpeckleClient(creds.server_url, creds.token) as client:
        assert client.active_user().email == DEMO_EMAIL


def test_loopback_denied(
    devserver: DevServer, loopback_app: tuple[App, str], browser: BrowserPlayer
) -> None:
    app, redirect = loopback_app
    person = Person(browser, action="deny")
    with pytest.raises(SignInDeniedError):
        listener_sign_in(ListenerMethod(app, redirect), person)
    assert person.done().title == "Sign-in cancelled — return to your notebook"


def test_loopback_with_the_receiver_by_hand(
    devserver: DevServer, loopback_app: tuple[App, str], browser: BrowserPlayer
) -> None:
    app, redirect = loopback_app
    with LoopbackReceiver(redirect, timeout=20) as receiver:
        challenge, url = prepare_fallback_sign_in(app)
        landing = sign_in(browser, url)  # stops before the redirect: deliver it ourselves
        response = httpx.get(landing)
        params = receiver.wait()
    assert response.status_code == 200
    creds = complete_from_callback(app, challenge, params, source="loopback")
    assert_works(devserver, creds.token)


def test_a_busy_port_is_reported_at_the_wait_and_the_same_flow_finishes_by_paste(
    devserver: DevServer, loopback_app: tuple[App, str], browser: BrowserPlayer
) -> None:
    """Production's order: the URL exists (the window may be open) before the kernel binds.
    The port is busy then: a clear error, and the flow's address pasted still signs in."""
    app, redirect = loopback_app
    method = ListenerMethod(app, redirect)
    flow, _traits = method.start(None)
    assert flow is not None
    assert flow.authorize_url is not None
    busy = urlsplit(redirect).port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", busy or 0))
        blocker.listen()
        with pytest.raises(PortInUseError, match=f"port {busy} is in use") as info:
            method.wait(flow, timeout=20)
        assert "pasting the address" in str(info.value)
        landing = sign_in(browser, flow.authorize_url)
    creds = PasteMethod(app, redirect).finish(flow, landing)
    assert creds.source == "paste"
    assert_works(devserver, creds.token)


def test_loopback_timeout(devserver: DevServer, loopback_app: tuple[App, str]) -> None:
    app, redirect = loopback_app
    method = ListenerMethod(app, redirect)
    flow, _traits = method.start(None)
    assert flow is not None
    with pytest.raises(SignInTimeoutError, match="paste the address"):
        method.wait(flow, timeout=0.3)
    with socket.socket() as again:
        again.bind(("127.0.0.1", urlsplit(redirect).port or 0))  # the port is free again


class GraphQLDown(httpx.HTTPTransport):
    """The network between kernel and server drops ``/graphql`` (and only that)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/graphql"):
            raise httpx.ConnectError("connection reset", request=request)
        return super().handle_request(request)


def test_a_token_nobody_can_use_is_revoked(
    devserver: DevServer, sca: App, browser: BrowserPlayer
) -> None:
    challenge, url = prepare_fallback_sign_in(sca)
    landing = sign_in(browser, url)
    before = {t.id for t in devserver.state.tokens_of(devserver.demo_user.id)}
    with GraphQLDown() as transport, pytest.raises(TransportError):
        complete_from_callback(sca, challenge, landing, source="paste", transport=transport)
    after = {t.id for t in devserver.state.tokens_of(devserver.demo_user.id)}
    assert after == before  # the exchanged token was logged out again


def test_loopback_with_the_builtin_public_app(devserver: DevServer, browser: BrowserPlayer) -> None:
    """The zero-configuration path: Speckle's ``connectrV3`` and its fixed localhost:29355,
    the consent page shown (it is not trusted by default)."""
    app = App(devserver.url, "connectrV3", "connectrV3")
    person = Person(browser)
    creds = listener_sign_in(ListenerMethod(app, "http://localhost:29355"), person)
    assert person.done().title == "Signed in — return to your notebook"
    assert person.landing.startswith("http://localhost:29355?access_code=")  # as Speckle builds it
    assert creds.app_id == "connectrV3"
    assert_works(devserver, creds.token)
