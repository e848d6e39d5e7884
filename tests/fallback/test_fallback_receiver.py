"""The pieces of the no-extension sign-in that need no Speckle server: config, paste, listener."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from speckle_nb.errors import (
    ConfigurationError,
    PortInUseError,
    SignInCancelledError,
    SignInError,
    SignInTimeoutError,
)
from speckle_nb.fallback import (
    is_loopback_redirect,
    kernel_app_from_env,
    parse_pasted,
    redirect_url_from_env,
)
from speckle_nb.listener import LoopbackReceiver

CODE = "c0de" * 10 + "ab"  # 42 hex, like Speckle's access codes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def blocker() -> Iterator[socket.socket]:
    """A program already listening on a port (a running connector, say)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


# --------------------------------------------------------------------------- configuration


def test_kernel_app_from_env() -> None:
    assert kernel_app_from_env({}) is None
    app = kernel_app_from_env(
        {
            "SPECKLE_APP_ID": "abc123",
            "SPECKLE_APP_SECRET": "s3cret",
            "SPECKLE_SERVER_URL": "http://localhost:3000/",
        }
    )
    assert app is not None
    assert (app.server_url, app.app_id, app.app_secret) == (
        "http://localhost:3000",
        "abc123",
        "s3cret",
    )
    assert "s3cret" not in repr(app)


def test_a_builtin_app_needs_no_secret_and_defaults_to_app_speckle_systems() -> None:
    app = kernel_app_from_env({"SPECKLE_APP_ID": "sca"})
    assert app is not None
    assert (app.server_url, app.app_secret) == ("https://app.speckle.systems", "sca")
    other = kernel_app_from_env({"SPECKLE_APP_ID": "mine"})
    assert other is not None
    assert other.app_secret is None


def test_kernel_app_from_env_names_the_bad_setting() -> None:
    with pytest.raises(ConfigurationError, match="SPECKLE_SERVER_URL"):
        kernel_app_from_env({"SPECKLE_APP_ID": "abc", "SPECKLE_SERVER_URL": "ftp://x"})


def test_redirect_url_from_env() -> None:
    assert redirect_url_from_env(environ={}) is None
    assert redirect_url_from_env(environ={"SPECKLE_APP_ID": "sca"}) == "http://localhost:29363"
    assert redirect_url_from_env("sdas", environ={}) == "http://localhost:29364"
    assert redirect_url_from_env("connectrV3", environ={}) == "http://localhost:29355"
    assert redirect_url_from_env("mine", environ={}) is None
    explicit = {"SPECKLE_APP_ID": "sca", "SPECKLE_REDIRECT_URL": " http://localhost:8765/cb "}
    assert redirect_url_from_env(environ=explicit) == "http://localhost:8765/cb"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:29363", True),
        ("http://localhost:8765/speckle/cb", True),
        ("http://127.0.0.1:8765/cb?x=1", True),
        ("http://LOCALHOST:8765", True),
        ("http://localhost/cb", True),
        ("https://localhost:8765/cb", False),
        ("http://[::1]:8765/cb", False),
        ("http://localhost.evil.example:8765", False),
        ("https://hub.example.org/hub/user-redirect/speckle-nb/callback", False),
        ("http://localhost:notaport/", False),
        ("speckle://account", False),
    ],
)
def test_is_loopback_redirect(url: str, expected: bool) -> None:
    assert is_loopback_redirect(url) is expected


# --------------------------------------------------------------------------- pasted text


@pytest.mark.parametrize(
    "pasted",
    [
        f"http://localhost:29363/?access_code={CODE}",
        f"  http://localhost:29363?access_code={CODE}\n",
        f"http://localhost:8765/cb?x=1?access_code={CODE}",  # Speckle's double "?"
        f"?access_code={CODE}",
        f"access_code={CODE}",
        f"access_code={CODE}#fragment",
        CODE,
        f" '{CODE}' ",
        f"<http://localhost:29363?access_code={CODE}>",
    ],
)
def test_paste_accepts_the_url_the_query_or_the_code(pasted: str) -> None:
    params = parse_pasted(pasted)
    assert params.access_code == CODE
    assert not params.denied


def test_paste_of_a_denial() -> None:
    assert parse_pasted("http://localhost:29363/?denied=true").denied


@pytest.mark.parametrize(
    "pasted",
    [
        "",
        "   ",
        "http://localhost:29363/",
        "http://localhost:3000/authn/verify/sca/SECRETCHALLENGE",
        "nonsense SECRET",
    ],
)
def test_paste_without_a_code_says_what_to_paste_and_never_echoes(pasted: str) -> None:
    with pytest.raises(SignInError) as info:
        parse_pasted(pasted, redirect_url="http://localhost:29363")
    message = str(info.value)
    assert "access_code=" in message
    assert "http://localhost:29363?access_code=…" in message
    assert "address bar" in message
    assert "SECRET" not in message


# --------------------------------------------------------------------------- the listener


def test_the_listener_takes_one_callback_and_answers_a_page_without_the_code(
    port: int, capfd: pytest.CaptureFixture[str]
) -> None:
    with LoopbackReceiver(f"http://localhost:{port}/cb") as receiver:
        url = f"http://localhost:{port}/cb?access_code={CODE}"
        response = httpx.get(url)
        params = receiver.wait(timeout=5)
    assert params.access_code == CODE
    assert response.status_code == 200
    assert "Signed in — return to your notebook" in response.text
    assert CODE not in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert receiver.closed
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)  # one callback only: the port is closed now
    out, err = capfd.readouterr()
    assert CODE not in out + err  # http.server's request log is silenced


def test_the_listener_ignores_other_requests_until_the_callback(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    with LoopbackReceiver(f"http://127.0.0.1:{port}/speckle/cb") as receiver:
        assert httpx.get(f"{base}/favicon.ico").status_code == 404
        assert httpx.get(f"{base}/speckle/cb").status_code == 400  # no code: a stray visit
        assert httpx.get(f"{base}/other?access_code={CODE}").status_code == 404
        forged = httpx.get(
            f"{base}/speckle/cb?access_code={CODE}", headers={"Host": "evil.example"}
        )
        assert forged.status_code == 404  # a page elsewhere aiming a browser here
        assert httpx.post(f"{base}/speckle/cb?access_code={CODE}").status_code == 501
        assert not receiver.closed
        denied = httpx.get(f"{base}/speckle/cb/?denied=true")  # trailing slash tolerated
        assert denied.status_code == 200
        assert "Sign-in cancelled" in denied.text
        params = receiver.wait(timeout=5)
    assert params.denied
    assert params.access_code is None


def test_the_listener_binds_loopback_only(port: int) -> None:
    with LoopbackReceiver(f"http://localhost:{port}") as receiver:
        bound = {s.getsockname()[0] for s in [receiver._server.socket]}
        assert bound == {"127.0.0.1"}


def test_a_busy_port_is_reported_at_once(blocker: socket.socket) -> None:
    busy = blocker.getsockname()[1]
    with pytest.raises(SignInError, match=f"port {busy} is in use") as info:
        LoopbackReceiver(f"http://localhost:{busy}/cb")
    assert "pasting the address" in str(info.value)


def test_a_busy_connector_port_names_the_likely_culprit() -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a TIME_WAIT
        try:
            sock.bind(("127.0.0.1", 29355))
            sock.listen()
        except OSError:
            pass  # another program holds it already: busy all the same
        with pytest.raises(
            PortInUseError, match="port 29355 is in use — is a Speckle connector running"
        ):
            LoopbackReceiver("http://localhost:29355")


def test_timeout_frees_the_port(port: int) -> None:
    receiver = LoopbackReceiver(f"http://localhost:{port}/cb", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(SignInTimeoutError, match=r"within 0\.2 seconds") as info:
        receiver.wait()
    assert time.monotonic() - started < 2
    assert "paste" in str(info.value)
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # free again


def test_close_from_another_thread_cancels_the_wait(port: int) -> None:
    receiver = LoopbackReceiver(f"http://localhost:{port}/cb")
    threading.Timer(0.1, receiver.close).start()
    with pytest.raises(SignInCancelledError):
        receiver.wait(timeout=10)
    receiver.close()  # idempotent


def test_an_idle_preconnect_does_not_block_the_callback(port: int) -> None:
    with (
        LoopbackReceiver(f"http://localhost:{port}/cb") as receiver,
        # Browsers open spare connections and send nothing on them.
        socket.create_connection(("127.0.0.1", port)),
    ):
        response = httpx.get(f"http://localhost:{port}/cb?access_code={CODE}", timeout=5)
        assert response.status_code == 200
        assert receiver.wait(timeout=5).access_code == CODE


def test_a_redirect_the_kernel_cannot_receive_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a loopback redirect URL"):
        LoopbackReceiver("https://hub.example.org/hub/user-redirect/speckle-nb/callback")


def test_a_program_on_ipv6_localhost_counts_as_busy() -> None:
    """A browser may try ``localhost`` as ::1 first and reach that program instead."""
    try:
        sock = socket.socket(socket.AF_INET6)
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with sock:
        sock.listen()
        busy = sock.getsockname()[1]
        with pytest.raises(SignInError, match=f"port {busy} is in use"):
            LoopbackReceiver(f"http://localhost:{busy}/cb")


def test_a_wildcard_listener_counts_as_busy() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))  # noqa: S104 - a connector listening on every interface
        sock.listen()
        busy = sock.getsockname()[1]
        with pytest.raises(SignInError, match=f"port {busy} is in use"):
            LoopbackReceiver(f"http://localhost:{busy}/cb")


def test_the_same_port_serves_the_next_sign_in_right_away(port: int) -> None:
    """A retry reuses the app's fixed port while the last connection sits in TIME_WAIT."""
    for _ in range(2):
        with LoopbackReceiver(f"http://localhost:{port}/cb") as receiver:
            httpx.get(f"http://localhost:{port}/cb?access_code={CODE}")
            assert receiver.wait(timeout=5).access_code == CODE
