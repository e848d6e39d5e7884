"""Load: 100 concurrent sign-ins through one Jupyter server, and 10,000 abandoned starts.

The Jupyter server (with the extension) runs as a subprocess, as in real use; the dev server
runs in this process with 100 registered users, ``user{i}@example.org``. Each sign-in is a
person's browser (an ``httpx.AsyncClient`` with its own cookie jar: start → Speckle's login →
consent → callback) and that person's kernel (the real ``PickupClient`` long-polling from a
thread), all 100 at once. Every kernel must receive the identity of the user *its* browser
logged in as — checked by e-mail and by asking the dev server whom the token belongs to — so
a result delivered to the wrong request shows up as a cross-delivery, not as a success.

Abandoned starts: 10,000 browsers click "Sign in" and never come back. The Jupyter server's
resident memory is read from ``/proc`` before, at the store's cap (``c.SpeckleNB.max_flows``)
and after 10,000; the in-process variant measures the ``SignInService``'s own allocations with
``tracemalloc`` and checks the tables stay at the cap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import secrets
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import pytest
from support.jupyter import JupyterServer, artifacts_dir

from speckle_nb.devserver import DevServer
from speckle_nb.devserver.player import BrowserPlayer, Page, origin_of
from speckle_nb.pickup import PickupClient, SignInRequest
from speckle_nb.server.flows import pickup_hash
from speckle_nb.server.service import BrowserRequest, Settings, SignInService

pytestmark = pytest.mark.slow

SIGN_INS = 100
ABANDONED = 10_000
#: The store's cap for the subprocess server (the default is 1,000).
MAX_FLOWS = 1000
PASSWORD = "load-test-password"


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer().running() as server:
        for i in range(SIGN_INS):
            server.state.add_user(f"user{i}@example.org", PASSWORD, f"User {i}")
        yield server


@pytest.fixture(scope="module")
def jupyter(dev: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp("load")
    server = JupyterServer(
        "server",
        root_dir=root / "notebooks",
        log_path=artifacts_dir("hardening-load") / "jupyter.log",
        extra_args=[f"--SpeckleNB.max_flows={MAX_FLOWS}", "--ServerApp.log_level=WARN"],
    )
    app = dev.state.register_app(
        "speckle-nb load", server.redirect_url(), ["profile:read", "profile:email"]
    )
    server.extra_env.update(
        SPECKLE_SERVER_URL=dev.url, SPECKLE_APP_ID=app.id, SPECKLE_APP_SECRET=app.secret
    )
    with server.running():
        yield server


# ------------------------------------------------------------------------------- a browser


class AsyncBrowser:
    """A person's browser: its own cookies; the Jupyter token goes to Jupyter only."""

    def __init__(self, jupyter: JupyterServer) -> None:
        self.jupyter_origin = origin_of(jupyter.url)
        # Sec-Fetch-Site as a browser sends it when the panel's button opens start
        self.jupyter_headers = {
            "Authorization": f"token {jupyter.token}",
            "Sec-Fetch-Site": "same-origin",
        }
        # Plain http on loopback only: verify=False skips loading the CA bundle (~70 ms of
        # CPU per client, which would serialise 100 browsers on this event loop).
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=60,
            trust_env=False,
            verify=False,  # noqa: S501 - plain http on loopback: no TLS at all
        )

    async def open(self, url: str, method: str = "GET", data: dict[str, str] | None = None) -> Page:
        for _ in range(20):
            headers = self.jupyter_headers if origin_of(url) == self.jupyter_origin else {}
            response = await self.client.request(method, url, data=data, headers=headers)
            location = response.headers.get("location")
            if response.status_code in (301, 302, 303, 307, 308) and location:
                url, method, data = urljoin(url, location), "GET", None
                continue
            page = Page.read(url, response)
            refresh = BrowserPlayer.meta_refresh(page)  # start moves on by a meta refresh
            if refresh is not None:
                url, method, data = refresh[1], "GET", None
                continue
            return page
        raise AssertionError(f"too many redirects at {url}")

    async def submit(self, page: Page, values: dict[str, str], button: str = "") -> Page:
        form = next(
            f for f in page.forms if (f.has_password if values else ("action", button) in f.buttons)
        )
        fields = {**form.fields, **values}
        if button:
            fields["action"] = button
        return await self.open(urljoin(page.url, form.action or page.url), "POST", fields)

    async def sign_in(self, start_url: str, email: str) -> Page:
        """Click "Sign in to Speckle", log in as ``email``, Authorize; the callback page."""
        page = await self.open(start_url)
        for _ in range(4):
            if page.kind == "login":
                page = await self.submit(page, {"email": email, "password": PASSWORD})
            elif page.kind == "consent":
                page = await self.submit(page, {}, button="allow")
            else:
                break
        return page

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass
class Outcome:
    index: int
    error: str | None = None
    page_ok: bool = False
    delivered_to: str | None = None  # the e-mail of the credentials this request received
    token_owner: str | None = None  # whom the dev server says the token belongs to
    seconds: float = 0.0


async def one_sign_in(
    i: int, jupyter: JupyterServer, dev: DevServer, pool: concurrent.futures.Executor
) -> Outcome:
    outcome = Outcome(i)
    began = time.perf_counter()
    request = SignInRequest.new()
    loop = asyncio.get_running_loop()
    browser = AsyncBrowser(jupyter)

    def kernel() -> Any:  # in the kernel's own thread, as a kernel would
        # The real PickupClient; its transport only skips loading the CA bundle for this
        # plain-http loopback server (~70 ms of CPU per client: 100 of them in one process
        # would measure this harness, not the server — each real kernel pays it once).
        transport = httpx.HTTPTransport(verify=False)
        with PickupClient(
            jupyter.url, transport=transport, kernel_key=jupyter.kernel_key
        ) as pickup:
            return pickup.wait(request, timeout=120)

    try:
        waiting = loop.run_in_executor(pool, kernel)
        page = await browser.sign_in(jupyter.url + request.start_path(), f"user{i}@example.org")
        outcome.page_ok = (
            page.response.status_code == 200 and f"Signed in as User {i} —" in page.response.text
        )
        if not outcome.page_ok:
            outcome.error = f"callback page {page.response.status_code}: {page.title}"
        credentials = await waiting
        outcome.delivered_to = credentials.user.email if credentials.user else None
        info = dev.state.validate_token(credentials.token)
        user = dev.state.user(info.user_id) if info else None
        outcome.token_owner = user.email if user else None
    except Exception as exc:  # counted, not raised: the test reports every failure
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        await browser.aclose()
    outcome.seconds = time.perf_counter() - began
    return outcome


def test_100_concurrent_sign_ins(
    jupyter: JupyterServer, dev: DevServer, record_property: Any
) -> None:
    async def main() -> tuple[list[Outcome], float]:
        with concurrent.futures.ThreadPoolExecutor(SIGN_INS, "kernel") as pool:
            began = time.perf_counter()
            outcomes = await asyncio.gather(
                *(one_sign_in(i, jupyter, dev, pool) for i in range(SIGN_INS))
            )
            return list(outcomes), time.perf_counter() - began

    outcomes, wall = asyncio.run(main())
    errors = [o for o in outcomes if o.error]
    expected = {o.index: f"user{o.index}@example.org" for o in outcomes}
    cross = [
        o
        for o in outcomes
        if not o.error
        and (o.delivered_to != expected[o.index] or o.token_owner != expected[o.index])
    ]
    seconds = sorted(o.seconds for o in outcomes)
    print(
        f"\n{SIGN_INS} concurrent sign-ins: wall {wall:.2f} s, errors {len(errors)}, "
        f"cross-deliveries {len(cross)}, per sign-in median {seconds[len(seconds) // 2]:.2f} s, "
        f"max {seconds[-1]:.2f} s"
    )
    record_property("wall_seconds", round(wall, 2))
    record_property("errors", len(errors))
    record_property("cross_deliveries", len(cross))
    assert not errors, [o.error for o in errors[:5]]
    assert not cross, [(o.index, o.delivered_to, o.token_owner) for o in cross[:5]]
    assert all(o.page_ok for o in outcomes)
    # 100 distinct tokens, each its own user's
    assert len({o.delivered_to for o in outcomes}) == SIGN_INS


# ------------------------------------------------------------------------------- abandoned starts


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_10000_abandoned_starts_keep_the_jupyter_server_bounded(
    jupyter: JupyterServer, record_property: Any
) -> None:
    """Over HTTP, as browsers send them; the server's RSS is read from /proc."""
    assert jupyter.process is not None
    pid = jupyter.process.pid

    host, port = jupyter.host, jupyter.port
    head = (
        f"Host: {host}:{port}\r\nAuthorization: token {jupyter.token}\r\n"
        "Sec-Fetch-Site: same-origin\r\n"
    )

    async def starts(count: int, lanes: int = 4) -> None:
        """Keep-alive GETs on raw connections: a light client, so the server is what is
        measured (an httpx client costs more CPU per request than the route itself)."""

        async def lane(n: int) -> None:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                for _ in range(n):
                    query = urlencode(
                        {
                            "request": secrets.token_urlsafe(18),
                            "pickup": pickup_hash(secrets.token_urlsafe(32)),
                        }
                    )
                    path = f"{jupyter.base_url}speckle-nb/start?{query}"
                    writer.write(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
                    status_line = await reader.readline()
                    assert b" 200 " in status_line, status_line
                    length = 0
                    while (line := await reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.decode("latin-1").partition(":")
                        if name.lower() == "content-length":
                            length = int(value)
                    await reader.readexactly(length)
            finally:
                writer.close()
                await writer.wait_closed()

        await asyncio.gather(*(lane(count // lanes) for _ in range(lanes)))

    before = rss_kib(pid)
    began = time.perf_counter()
    asyncio.run(starts(2 * MAX_FLOWS))  # past the cap: the tables are full from here on
    at_cap = rss_kib(pid)
    asyncio.run(starts(ABANDONED - 2 * MAX_FLOWS))
    after = rss_kib(pid)
    elapsed = time.perf_counter() - began
    print(
        f"\n{ABANDONED} abandoned starts over HTTP in {elapsed:.1f} s: Jupyter server RSS "
        f"{before / 1024:.1f} MiB before, {at_cap / 1024:.1f} MiB after {2 * MAX_FLOWS}, "
        f"{after / 1024:.1f} MiB after {ABANDONED} (+{(after - at_cap) / 1024:.1f} MiB for the "
        f"last {ABANDONED - 2 * MAX_FLOWS})"
    )
    record_property("rss_kib", [before, at_cap, after])
    # 8,000 more starts past the cap may not grow the server by more than allocator noise
    assert after - at_cap < 8 * 1024, (before, at_cap, after)


async def test_10000_abandoned_starts_keep_the_flow_store_capped() -> None:
    """In process: the same ``SignInService`` the extension runs, measured by tracemalloc."""
    settings = Settings(
        server_url="http://speckle.test",
        app_id="a1b2c3d4e5",
        app_secret="s" * 10,
        max_flows=MAX_FLOWS,
    )

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="Cannot GET /oauth/token")  # a released server: plain

    quiet = logging.getLogger("speckle_nb.tests.quiet")  # log records would be traced too
    quiet.propagate = False
    quiet.setLevel(logging.CRITICAL)
    service = SignInService(settings, log=quiet, transport=httpx.MockTransport(answer))
    browser = BrowserRequest(origin="http://127.0.0.1:8888", sec_fetch_site="same-origin")

    async def start(n: int) -> None:
        for _ in range(n):
            params = {
                "request": secrets.token_urlsafe(18),
                "pickup": pickup_hash(secrets.token_urlsafe(32)),
            }
            await service.start(params, browser, None)

    try:
        await start(10)  # the probe, cached from here on
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        await start(MAX_FLOWS)
        gc.collect()
        at_cap = tracemalloc.get_traced_memory()[0] - base
        await start(ABANDONED - MAX_FLOWS - 10)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0] - base
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        await service.close()
    counts = service.store.counts()
    print(
        f"\nFlowStore after {ABANDONED} abandoned starts: {counts}; traced growth "
        f"{at_cap / 1024:.0f} KiB at the cap ({MAX_FLOWS}), {after / 1024:.0f} KiB after "
        f"{ABANDONED}, peak {peak / 1024:.0f} KiB"
    )
    assert counts["flows"] <= MAX_FLOWS
    assert counts["entries"] <= MAX_FLOWS
    assert after < at_cap * 1.2 + 64 * 1024, (at_cap, after)
    assert after < 4 * 1024 * 1024  # a few KiB per held sign-in, at most
