"""Ways to run the dev server: own thread, the current event loop, the CLI; log hygiene."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import httpx
import pytest

from speckle_nb.devserver import BrowserPlayer, DevServer

from .helpers import CHALLENGE, exchange_body


def test_starts_fast_on_localhost() -> None:
    started = time.perf_counter()
    with DevServer().running() as dev:
        elapsed = time.perf_counter() - started
        answer = httpx.get(f"{dev.url}/authn/login")

    assert elapsed < 0.5  # typically ~10 ms; generous for a loaded 2-core machine
    assert dev.url.startswith("http://localhost:")
    assert answer.status_code == 200


async def test_start_async_in_the_running_loop() -> None:
    async with DevServer() as dev, httpx.AsyncClient(base_url=dev.url) as http:
        answer = await http.post("/graphql", json={"query": "{ serverInfo { version } }"})

    assert answer.json() == {"data": {"serverInfo": {"version": "2.26.0"}}}


def test_no_token_code_password_or_challenge_in_the_logs(
    devserver: DevServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = devserver.state.register_app("logs", "http://127.0.0.1:8888/cb", ["profile:read"])
    verify = f"{devserver.url}/authn/verify/{app.id}/{CHALLENGE}"
    with BrowserPlayer() as browser, httpx.Client(base_url=devserver.url) as http:
        landed = browser.sign_in_and_consent(verify, "demo@example.org", "speckle-demo")
        code = landed.split("=", 1)[1]
        pair = http.post("/auth/token", json=exchange_body(app, code)).json()
        session = browser.cookies.get("authn") or ""
        http.get("/auth/accesscode", params={"appId": app.id, "challenge": "c", "token": session})
        http.post("/auth/logout", json={"token": pair["token"]})

    # The server's own loggers (the client libraries log URLs of their own).
    ours = [r for r in caplog.records if r.name.startswith(("speckle_nb", "tornado"))]
    logged = "\n".join(r.getMessage() for r in ours)
    assert "/auth/token" in logged  # requests are logged…
    for secret in (code, pair["token"], pair["refreshToken"], session, "speckle-demo", CHALLENGE):
        assert secret not in logged  # …without what would let someone in


class _AnsweredBeforeLogged(logging.Handler):
    """At each access-log line, gives the client up to 0.5 s to receive its answer: a
    server that answered before logging lets it arrive meanwhile."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.answered = threading.Event()
        self.answer_arrived_first: list[bool] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "GET /graphql" in record.getMessage():
            self.answer_arrived_first.append(self.answered.wait(0.5))


def test_a_request_is_logged_before_its_answer_leaves(devserver: DevServer) -> None:
    """What tests count from the log (DevRequests) includes every request the caller already
    holds an answer to: no late line of an earlier request lands in a later count."""
    watcher = _AnsweredBeforeLogged()
    logger = logging.getLogger("speckle_nb.devserver")
    level = logger.level
    logger.addHandler(watcher)
    logger.setLevel(logging.INFO)
    try:
        with httpx.Client(base_url=devserver.url, timeout=10) as http:
            http.get("/graphql", params={"query": "{ serverInfo { name } }"})
            watcher.answered.set()
    finally:
        logger.removeHandler(watcher)
        logger.setLevel(level)
    assert watcher.answer_arrived_first == [False]


def test_cli_prints_url_users_and_the_requested_app() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "speckle_nb.devserver",
            "--port",
            "0",
            "--app-redirect",
            "http://127.0.0.1:8888/speckle-nb/callback",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl+C"):
                break
        banner = "".join(lines)
        url = lines[0].split(" on ", 1)[1].strip()
        answer = httpx.post(f"{url}/graphql", json={"query": "{ serverInfo { version } }"})
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()  # (an unclosed pipe is a ResourceWarning, an error here)

    assert url.startswith("http://localhost:")
    assert answer.status_code == 200
    assert "demo@example.org / speckle-demo" in banner
    assert "alice@example.org / alice-pass" in banner
    assert "App: id " in banner
    assert "redirect URL http://127.0.0.1:8888/speckle-nb/callback" in banner
