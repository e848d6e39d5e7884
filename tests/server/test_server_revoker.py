"""``Revoker``: a token nobody will receive is revoked even when Speckle fails at first
(issue 14 item 2). Driven against ``FakeSpeckle`` (its ``/auth/logout`` keeps Speckle's
rules); the same with the real dev server's faults is ``tests/hardening/test_faults.py``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from serverkit import SPECKLE_URL, FakeSpeckle, wait_until

from speckle_nb.credentials import Credentials
from speckle_nb.server.revoker import Revoker

LOG = logging.getLogger("test.revoker")


def issue(speckle: FakeSpeckle) -> Credentials:
    reply = speckle._issue().json()
    return Credentials(SPECKLE_URL, reply["token"], refresh_token=reply["refreshToken"])


@pytest.fixture
def http(speckle: FakeSpeckle) -> Iterator[httpx.AsyncClient]:
    # closed by the test's event loop at the end, not by this sync fixture
    client = httpx.AsyncClient(transport=speckle.transport())
    yield client
    assert client.is_closed, "the test must close its client"


@pytest.fixture
def speckle() -> FakeSpeckle:
    return FakeSpeckle()


def revoker(http: httpx.AsyncClient) -> Revoker:
    return Revoker(lambda: http, log=LOG, first_pause=0.05, max_pause=0.2)


async def test_retries_until_speckle_answers(
    speckle: FakeSpeckle, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    creds = issue(speckle)
    speckle.unreachable = True
    r = revoker(http)
    r.revoke_later(creds)
    await wait_until(lambda: speckle.calls.count("POST /auth/logout") >= 3, "three attempts")
    assert creds.token in speckle.tokens  # still valid while Speckle is down
    speckle.unreachable = False
    await wait_until(lambda: creds.token not in speckle.tokens, "the token is revoked")
    await wait_until(lambda: r.pending == 0, "nothing left to revoke")
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "trying again in" in text
    assert "revoked an unclaimed token at http://speckle.test" in text
    assert creds.token not in text
    assert creds.refresh_token is not None
    assert creds.refresh_token not in text
    await r.close()
    await http.aclose()


async def test_a_200_that_is_not_speckles_answer_is_not_a_revocation(
    speckle: FakeSpeckle,
) -> None:
    creds = issue(speckle)
    answers: list[str] = []

    def proxy_page_first(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/logout" and not answers:
            answers.append("proxy")
            return httpx.Response(200, text="<html>maintenance</html>")
        return speckle.handle(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(proxy_page_first))
    r = revoker(http)
    r.revoke_later(creds)
    await wait_until(lambda: creds.token not in speckle.tokens, "the token is revoked")
    assert answers == ["proxy"]
    await wait_until(lambda: r.pending == 0, "nothing left to revoke")
    await r.close()
    await http.aclose()


async def test_a_token_speckle_does_not_know_is_done(
    speckle: FakeSpeckle, http: httpx.AsyncClient
) -> None:
    creds = issue(speckle)
    speckle.tokens.clear()  # revoked meanwhile (e.g. an attempt whose answer was lost)
    r = revoker(http)
    r.revoke_later(creds)
    await wait_until(lambda: r.pending == 0, "nothing left to revoke")
    assert speckle.calls == ["POST /auth/logout"]  # one attempt: the 400 ends it
    await r.close()
    await http.aclose()


async def test_close_tries_once_more_then_logs_what_stays_valid(
    speckle: FakeSpeckle, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    creds = issue(speckle)
    speckle.unreachable = True
    r = Revoker(lambda: http, log=LOG, first_pause=60, max_pause=60)
    r.revoke_later(creds)
    await wait_until(lambda: "POST /auth/logout" in speckle.calls, "the first attempt")
    await r.close()
    await http.aclose()
    assert speckle.calls == ["POST /auth/logout"] * 2  # the first try, and the last at close
    assert r.pending == 0
    gave_up = [rec.getMessage() for rec in caplog.records if "gave up" in rec.getMessage()]
    assert len(gave_up) == 1
    assert "after 2 attempt(s)" in gave_up[0]
    assert creds.token not in gave_up[0]
