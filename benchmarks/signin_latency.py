"""Sign-in latency: ``python benchmarks/signin_latency.py`` (about a minute; ``--quick``: fewer).

Two medians, each split into what is ours and what is the Speckle server's:

(a) **callback → credentials in the kernel.** A real Jupyter server with the extension (a
    subprocess), the dev server (in this process, so its own per-request times are read from
    its log), a browser played by ``BrowserPlayer`` up to Speckle's redirect, and a kernel's
    real ``PickupClient`` already long-polling. The clock starts when the browser sends the
    callback (``GET …/speckle-nb/callback?access_code=…``) and stops when ``pickup.wait``
    returns the credentials: the callback handler's exchange, ``activeUser`` and store, then
    the held pickup's answer. Ours is what it takes above the **server's own floor**: the
    same exchange and ``activeUser`` sent by a bare keep-alive ``httpx.Client`` (``Floor``),
    measured beside each sign-in. A second split subtracts the time the dev server's
    handlers spent (its log) instead. Measured with the dev server's latency switch OFF
    (loopback, no simulated work) and ON (as a real server: ≈137 ms per exchange, ≈72 ms
    per authenticated request, docs/devserver.md "Latency"). Target: ours ≤ 50 ms.

(b) **click → "Signed in as …" in the browser.** Headless Chromium (Debian's, driven by
    Playwright; never ``playwright install``) on Notebook 7 with the sign-in panel, the dev
    server on ``localhost`` (another site than Jupyter's ``127.0.0.1``), the user already
    logged in to Speckle and clicking Authorize the moment the consent page shows: no human
    delay. The clock runs from the click on **Sign in to Speckle** until the panel reads
    "Signed in as". The Speckle share is the dev server's handler time in that window
    (verify page, consent, exchange, ``activeUser``); the rest is ours and Chromium's
    (page loads, the panel, the kernel). Target: ≤ 1.5 s.

``main() -> int`` is what ``benchmarks/run.py`` calls; the exit status is 0 even when a target
is missed (a benchmark reports, it does not gate).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests", REPO / "tests" / "browser"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from speckle_nb.devserver import BrowserPlayer, DevServer  # noqa: E402
from speckle_nb.devserver.player import origin_of  # noqa: E402
from speckle_nb.devserver.state import DEMO_EMAIL, DEMO_PASSWORD  # noqa: E402
from speckle_nb.pickup import PickupClient, SignInRequest  # noqa: E402

CHROMIUM = os.environ.get("SPECKLE_NB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCOPES = ["profile:read", "profile:email", "streams:read", "users:read"]
TARGET_A_OURS = 0.050
TARGET_B_TOTAL = 1.5

_DEV_LINE = re.compile(r"^(\d{3}) (\w+) (\S+) ([0-9.]+)ms$")


# --------------------------------------------------------------------------- the dev server's clock


class DevClock(logging.Handler):
    """Collects the dev server's own per-request times (its access log: method, path, ms)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.entries: list[tuple[float, str, str, float]] = []
        self.entries_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        match = _DEV_LINE.match(record.getMessage())
        if match:
            with self.entries_lock:
                self.entries.append(
                    (
                        time.perf_counter(),
                        match.group(2),
                        match.group(3),
                        float(match.group(4)) / 1000,
                    )
                )

    def mark(self) -> int:
        with self.entries_lock:
            return len(self.entries)

    def since(self, mark: int) -> list[tuple[float, str, str, float]]:
        with self.entries_lock:
            return list(self.entries[mark:])


@contextmanager
def dev_server() -> Iterator[tuple[DevServer, DevClock]]:
    clock = DevClock()
    logger = logging.getLogger("speckle_nb.devserver")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(clock)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with DevServer().running() as dev:
            yield dev, clock
    finally:
        logger.removeHandler(clock)
        logger.setLevel(level)
        logger.propagate = propagate


@contextmanager
def jupyter(flavor: str, dev: DevServer, root: Path) -> Iterator[Any]:
    from support.jupyter import JupyterServer, free_port

    server = JupyterServer(
        flavor,  # type: ignore[arg-type]
        root_dir=root / "notebooks",
        state_dir=root / f"{flavor}-state",
        log_path=root / f"{flavor}.log",
        port=free_port(),
        settings={"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": False}},
    )
    app = dev.state.register_app(f"latency ({flavor})", server.redirect_url(), SCOPES)
    server.extra_env.update(
        SPECKLE_SERVER_URL=dev.url,
        SPECKLE_APP_ID=app.id,
        SPECKLE_APP_SECRET=app.secret,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        SPECKLE_NB_DATA_DIR=str(root / "remembered"),
        SPECKLE_USERDATA_PATH=str(root / "desktop-accounts"),
    )
    with server.running():
        yield server


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


# --------------------------------------------------------------------------- (a)


@dataclass
class Sample:
    total: float
    speckle: float
    floor: float = 0.0  # the server's own floor, measured beside this sign-in (see `floor`)

    @property
    def ours(self) -> float:
        return self.total - self.speckle

    @property
    def above_floor(self) -> float:
        return self.total - self.floor


class Floor:
    """The least a sign-in can cost on this server: the same two calls the callback makes
    (``POST /auth/token`` exchange, then GraphQL ``activeUser``) sent by a bare
    ``httpx.Client`` with keep-alive, for a code minted directly in the dev server's state.
    What a sign-in takes above this is ours (the Jupyter server, the pickup, the kernel)."""

    CHALLENGE = "floor-challenge-0123456789abcdefghijklmnopqrstuvw"

    def __init__(self, dev: DevServer) -> None:
        import httpx

        self.dev = dev
        self.app = dev.state.register_app("floor", "http://127.0.0.1:9/callback", SCOPES)
        self.http = httpx.Client(base_url=dev.url, timeout=30)

    def measure(self) -> float:
        code = self.dev.state.mint_access_code(self.app.id, self.dev.demo_user.id, self.CHALLENGE)
        body = {
            "appId": self.app.id,
            "appSecret": self.app.secret,
            "accessCode": code,
            "challenge": self.CHALLENGE,
        }
        began = time.perf_counter()
        pair = self.http.post("/auth/token", json=body).json()
        me = self.http.post(
            "/graphql",
            json={"query": "query ActiveUser { activeUser { id name email avatar company role } }"},
            headers={"Authorization": f"Bearer {pair['token']}"},
        )
        elapsed = time.perf_counter() - began
        assert me.json()["data"]["activeUser"]["name"]
        return elapsed

    def close(self) -> None:
        self.http.close()


def callback_to_kernel(server: Any, dev: DevServer, clock: DevClock) -> Sample:
    """One sign-in; the clock runs from sending the callback to ``wait`` returning."""
    request = SignInRequest.new()
    headers = {server.origin: {"Authorization": f"token {server.token}"}}
    with BrowserPlayer(headers_by_origin=headers, honour_refresh_delay=False) as browser:
        started = browser.open(
            server.url + request.start_path(),
            stop_when=lambda url: origin_of(url) != origin_of(server.url),
        )
        assert started is None, "the start did not redirect to Speckle"
        assert browser.stopped_at is not None
        callback = browser.sign_in_and_consent(
            browser.stopped_at, DEMO_EMAIL, DEMO_PASSWORD, stop_at_prefix=server.url
        )
        got: dict[str, Any] = {}
        polling = threading.Event()

        def kernel() -> None:
            with PickupClient(server.url) as pickup:
                polling.set()
                got["credentials"] = pickup.wait(request, timeout=30)
                got["at"] = time.perf_counter()

        waiter = threading.Thread(target=kernel, daemon=True)
        waiter.start()
        polling.wait(10)
        time.sleep(0.05)  # the long poll is held at the server now
        mark = clock.mark()
        began = time.perf_counter()
        page = browser.open(callback)
        waiter.join(30)
    assert page is not None, "the callback failed"
    assert page.response.status_code == 200, "the callback failed"
    assert "credentials" in got, "the kernel got nothing"
    speckle = sum(
        ms
        for _, method, path, ms in clock.since(mark)
        if method == "POST" and path.lower() in ("/auth/token", "/graphql", "/oauth/token")
    )
    return Sample(got["at"] - began, speckle)


def bench_callback(quick: bool) -> dict[str, Any]:
    rounds = 4 if quick else 8
    report: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        dev_server() as (dev, clock),
        jupyter("server", dev, Path(tmp)) as server,
    ):
        floor = Floor(dev)
        try:
            callback_to_kernel(server, dev, clock)  # warm: imports, connections, probe
            floor.measure()
            for latency in (False, True):
                dev.options.latency = latency
                samples = []
                for _ in range(rounds):  # side by side: each sign-in beside its floor
                    sample = callback_to_kernel(server, dev, clock)
                    sample.floor = floor.measure()
                    samples.append(sample)
                report["on" if latency else "off"] = samples
        finally:
            dev.options.latency = False
            floor.close()
    return report


# --------------------------------------------------------------------------- (b)


def bench_browser(quick: bool) -> list[Sample] | str:
    if not Path(CHROMIUM).exists():
        return f"skipped: no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        from browserkit import DEMO as PERSON
        from browserkit import SIGN_IN_BUTTON, NotebookPage, Panel, dev_page, log_in, write_notebook
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        return f"skipped: {exc}"
    rounds = 3 if quick else 5
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory() as tmp, dev_server() as (dev, clock):
        root = Path(tmp)
        with jupyter("notebook", dev, root) as server, sync_playwright() as playwright:
            path = write_notebook(
                server.root_dir / "latency.ipynb", ["import speckle_nb\nspeckle_nb.sign_in()"]
            )
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                ignore_default_args=["--disable-popup-blocking"],
            )
            try:
                context = browser.new_context(viewport={"width": 1200, "height": 860})
                context.set_default_timeout(30_000)
                # Already logged in to Speckle, as a returning user is: the login is not ours.
                speckle = context.new_page()
                speckle.goto(f"{dev.url}/authn/login")
                log_in(speckle, PERSON)
                speckle.close()

                nb = NotebookPage(context.new_page(), server, path).open()
                nb.run_cell(0)
                panel = Panel(nb, 0)
                for index in range(rounds + 1):  # the first round warms everything up
                    panel.expect_state("idle")
                    button = panel.button(SIGN_IN_BUTTON)
                    expect(button).to_be_enabled()
                    mark = clock.mark()
                    began = time.perf_counter()
                    with context.expect_page() as opened:
                        button.click()
                    window = opened.value
                    dev_page(window, "consent")
                    window.get_by_role("button", name="Authorize").click()
                    expect(panel.root).to_contain_text("Signed in as", timeout=30_000)
                    total = time.perf_counter() - began
                    spent = sum(ms for at, *_rest, ms in clock.since(mark) if at <= began + total)
                    if index:
                        samples.append(Sample(total, spent))
                    if not window.is_closed():
                        window.close()
                    panel.button("Sign out").click()
            finally:
                browser.close()
    return samples


# --------------------------------------------------------------------------- report


def print_split(label: str, samples: list[Sample]) -> float:
    total = median_ms([s.total for s in samples])
    speckle = median_ms([s.speckle for s in samples])
    ours = median_ms([s.ours for s in samples])
    print(
        f"  {label:<38} total {total:7.1f} ms   Speckle (dev server) {speckle:7.1f} ms   "
        f"ours {ours:7.1f} ms   ({len(samples)} rounds)"
    )
    return ours


def print_floor(label: str, samples: list[Sample]) -> float:
    total = median_ms([s.total for s in samples])
    floor = median_ms([s.floor for s in samples])
    above = median_ms([s.above_floor for s in samples])
    print(
        f"  {label:<38} total {total:7.1f} ms   server floor (exchange + activeUser) "
        f"{floor:7.1f} ms   ours {above:7.1f} ms"
    )
    return above


def main(argv: list[str] | None = None, *, quick: bool = False) -> int:
    """Run both benchmarks and print the medians. ``argv`` is this script's own options
    (``None``: none — so ``benchmarks/run.py`` can call ``main()`` without its own argv
    being read here); ``quick=True`` is ``--quick``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--skip-browser", action="store_true", help="only (a)")
    args = parser.parse_args([] if argv is None else argv)
    args.quick = args.quick or quick
    began = time.perf_counter()

    print("\n== (a) callback arrival → credentials in the kernel (median)")
    report = bench_callback(args.quick)
    print("  against the server's own floor, measured beside each sign-in:")
    floor_off = print_floor("dev server latency OFF", report["off"])
    floor_on = print_floor("dev server latency ON (as a real one)", report["on"])
    print("  against the dev server's own handler times (its log):")
    print_split("dev server latency OFF", report["off"])
    print_split("dev server latency ON (as a real one)", report["on"])
    worst = max(floor_off, floor_on)
    verdict = "PASS" if worst <= TARGET_A_OURS * 1000 else "MISS"
    print(
        f"  {verdict}  ours (above the floor) ≤ {TARGET_A_OURS * 1000:.0f} ms "
        f"(worst of the two: {worst:.1f} ms)"
    )

    if not args.skip_browser:
        print("\n== (b) click → 'Signed in as' in headless Chromium, Notebook 7 (median)")
        browser = bench_browser(args.quick)
        if isinstance(browser, str):
            print(f"  {browser}")
        else:
            print_split("dev server latency OFF, no human delay", browser)
            total = statistics.median(s.total for s in browser)
            verdict = "PASS" if total <= TARGET_B_TOTAL else "MISS"
            print(f"  {verdict}  total ≤ {TARGET_B_TOTAL:g} s ({total:.2f} s)")
    print(f"\nsign-in latency benchmark done in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
