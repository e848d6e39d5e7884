"""Drive the notebook frontends and the dev server's pages the way a person does.

Notebooks: click into a cell, Shift+Enter, Ctrl+S, in JupyterLab 4 or Notebook 7. Selectors are
the ones both frontends share (``.jp-Notebook .jp-Cell .cm-content``); kernel readiness is read
from ``window.jupyterapp`` (the servers run with ``expose_app_in_browser``), because the
toolbar's idle marker alone lost a Shift+Enter in 2 of 3 runs.

The panel: its root is ``.speckle-nb`` with ``data-state`` = idle | waiting | signed_in | error |
problem (``problem`` is an error only the browser saw, such as a closed window). Buttons are
found by their role and visible text, as a person finds them.

The dev server: every page names itself in ``<meta name="speckle-dev-page">``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Request, expect
from support.jupyter import REPO_ROOT, JupyterServer, wait_until

#: ``SPECKLE_NB_UPDATE_DOCS_IMAGES=1`` copies the panel's screenshots here.
DOCS_IMAGES = REPO_ROOT / "docs" / "images"
#: Debian's Chromium (never a downloaded build), with the flags this machine needs.
CHROMIUM = os.environ.get("SPECKLE_NB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1200, "height": 860}
DEFAULT_TIMEOUT_MS = 20_000
#: What ``spy_on_secrets`` records.
SECRET_KINDS = ("token", "refresh_token", "access_code")

CELL = ".jp-Notebook .jp-Cell"

_KERNEL_READY = """() => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = widget && widget.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""

_PROMPT_DONE = re.compile(r"\[\d+\]")
_PROMPT_RUNNING = re.compile(r"\[\*\]")


def write_notebook(path: Path, sources: Sequence[str]) -> Path:
    """A notebook of code cells with the python3 kernelspec (no kernel picker pops up)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def read_notebook_json(path: Path) -> dict[str, Any] | None:
    """The file as JSON, or ``None`` while it is missing or half-written."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def use_real_focus(page: Page) -> None:
    """Give ``page`` the browser's real window focus instead of Playwright's emulated one.

    Playwright makes every page report ``document.hasFocus()``. A person's notebook tab loses
    the focus to the sign-in window and gets it back when that closes, and the panel relies on
    it (it does not call a window closed while the person is in it). Call after navigating: a
    new document gets the emulation again.
    """
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    finally:
        cdp.detach()


class NotebookPage:
    """One notebook open in one browser page."""

    def __init__(self, page: Page, jupyter: JupyterServer, path: Path) -> None:
        self.page = page
        self.jupyter = jupyter
        self.path = path
        self.relpath = path.relative_to(jupyter.root_dir).as_posix()

    # -- opening -------------------------------------------------------------------------

    def open(self, *, token: bool = True) -> NotebookPage:
        self.page.goto(self.jupyter.page_url(self.relpath, token=token))
        use_real_focus(self.page)
        self.page.locator(f"{CELL}.jp-CodeCell .cm-content").first.wait_for()
        self.wait_kernel_ready()
        return self

    def wait_kernel_ready(self, timeout: float = 60_000) -> None:
        self.page.wait_for_function(_KERNEL_READY, timeout=timeout)

    # -- cells ---------------------------------------------------------------------------

    @property
    def cells(self) -> Locator:
        return self.page.locator(CELL)

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea")

    def _prompt(self, index: int) -> str:
        return self.cell(index).locator(".jp-InputPrompt").inner_text().strip()

    def run_cell(self, index: int, *, timeout: float = 30.0, finish: bool = True) -> None:
        """Click into cell ``index``, Shift+Enter, and wait until its prompt shows ``[n]``
        (``finish=False``: only until it shows ``[*]``, for a cell that blocks, such as
        ``sign_in(wait=True)``)."""
        before = self._prompt(index)
        self.wait_kernel_ready()
        self.cell(index).locator(".cm-content").click()
        self.page.keyboard.press("Shift+Enter")
        done = _PROMPT_DONE if finish else _PROMPT_RUNNING
        wait_until(
            lambda: (p := self._prompt(index)) != before and done.search(p),
            timeout=timeout,
            what=f"cell {index} to {'finish' if finish else 'start'} running",
            interval=0.05,
        )

    def wait_cell_done(self, index: int, *, timeout: float = 30.0) -> None:
        """Wait until cell ``index`` (started with ``finish=False``) shows ``[n]``."""
        wait_until(
            lambda: _PROMPT_DONE.search(self._prompt(index)),
            timeout=timeout,
            what=f"cell {index} to finish running",
            interval=0.05,
        )

    def output_text(self, index: int) -> str:
        return self.output(index).inner_text()

    # -- saving --------------------------------------------------------------------------

    def save(
        self, until: Callable[[dict[str, Any]], bool], *, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Ctrl+S, then wait until the file on disk satisfies ``until``; return its JSON."""
        self.cell(0).locator(".jp-InputPrompt").click()  # focus the notebook, not a text field
        self.page.keyboard.press("Control+s")

        def saved() -> dict[str, Any] | None:
            value = read_notebook_json(self.path)
            return value if value is not None and until(value) else None

        return wait_until(saved, timeout=timeout, what=f"{self.path.name} to be saved")


# -- the dev server and the test's browser ---------------------------------------------------


class LogCapture(logging.Handler):
    """Keeps the dev server's log records (it runs in this process, in its own thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Dev:
    """The running dev server, its log, and the secrets it handed out (for scenario 5)."""

    server: Any
    log: LogCapture
    secrets_seen: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return str(self.server.url)

    @property
    def state(self) -> Any:
        return self.server.state

    @property
    def options(self) -> Any:
        return self.server.options

    def record(self, kind: str, value: str) -> None:
        with self.lock:
            self.secrets_seen.setdefault(kind, []).append(value)

    def seen(self, kind: str) -> list[str]:
        with self.lock:
            return list(self.secrets_seen.get(kind, []))


def spy_on_secrets(dev: Dev) -> None:
    """Wrap the dev state's token-issuing methods so tests know every secret it handed out.

    The state keeps only digests of tokens; the values themselves exist only in the answer.
    The wrappers sit on this instance (the dev server is a test double of Speckle, not our
    code under test), return what the real method returns, and record it.
    """
    state = dev.state

    def wrap_pair(name: str) -> None:
        original = getattr(state, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            pair = original(*args, **kwargs)
            dev.record("token", pair.token)
            dev.record("refresh_token", pair.refresh_token)
            return pair

        setattr(state, name, spy)

    for name in ("exchange", "exchange_s256", "refresh"):
        if hasattr(state, name):
            wrap_pair(name)

    mint = state.mint_access_code

    def mint_spy(*args: Any, **kwargs: Any) -> str:
        code = mint(*args, **kwargs)
        dev.record("access_code", code)
        return str(code)

    state.mint_access_code = mint_spy


@dataclass
class Jupyter:
    """A frontend's Jupyter server and the Speckle app it signs in with."""

    server: JupyterServer
    app: Any

    @property
    def flavor(self) -> str:
        return self.server.flavor


class BrowserRun:
    """One test's browser contexts and pages, with their console and request logs."""

    def __init__(self, browser: Browser, jupyter: Jupyter, dev: Dev, artifacts: Path) -> None:
        self.browser = browser
        self.jupyter = jupyter
        self.dev = dev
        self.artifacts = artifacts
        self.contexts: list[BrowserContext] = []
        self.console: list[str] = []
        self.requests: list[str] = []
        # Where this test's share of the shared logs and of the dev server's secrets begins.
        self.jupyter_log_from = jupyter.server.log_size()
        self._dev_log_from = len(dev.log.lines)
        self._secrets_from = {kind: len(dev.seen(kind)) for kind in SECRET_KINDS}

    def new_context(self, label: str = "") -> BrowserContext:
        """A fresh browser profile: its own cookies, so its own Jupyter and Speckle logins."""
        context = self.browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        tag = label or f"context{len(self.contexts)}"

        def on_page(page: Page) -> None:
            page.on("console", lambda msg: self.console.append(f"[{tag}] {msg.type}: {msg.text}"))
            page.on("pageerror", lambda err: self.console.append(f"[{tag}] pageerror: {err}"))

        def on_request(req: Request) -> None:
            self.requests.append(f"[{tag}] {req.method} {req.url}")

        context.on("page", on_page)
        context.on("request", on_request)
        self.contexts.append(context)
        return context

    def new_page(self, context: BrowserContext | None = None) -> Page:
        return (context or self.new_context()).new_page()

    def secrets_issued(self, kind: str) -> list[str]:
        """The dev server's secrets of ``kind`` handed out since this test began."""
        return self.dev.seen(kind)[self._secrets_from[kind] :]

    def shot(self, target: Page | Locator, name: str) -> Path:
        """A screenshot of a page or element into this test's artifacts."""
        path = self.artifacts / f"{name}.png"
        target.screenshot(path=str(path))
        return path

    def shot_panel(self, panel: Panel, name: str, *, docs: bool = False) -> Path:
        """The panel with a margin of notebook around it (no cell chrome), into the artifacts
        and, with ``docs`` and SPECKLE_NB_UPDATE_DOCS_IMAGES=1, into docs/images/<name>.png."""
        panel.root.scroll_into_view_if_needed()
        box = panel.root.bounding_box()
        assert box is not None, "the panel is not on screen"
        margin = 6
        clip = {
            "x": max(box["x"] - margin, 0),
            "y": max(box["y"] - margin, 0),
            "width": box["width"] + 2 * margin,
            "height": box["height"] + 2 * margin,
        }
        path = self.artifacts / f"{name}.png"
        panel.page.screenshot(path=str(path), clip=clip, animations="disabled")
        if docs and os.environ.get("SPECKLE_NB_UPDATE_DOCS_IMAGES") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / f"{name}.png")
        return path

    def leave_evidence(self) -> None:
        """Screenshots of every open page and this test's slice of every log."""
        for c, context in enumerate(self.contexts):
            for p, page in enumerate(context.pages):
                stem = self.artifacts / f"failure-context{c}-page{p}"
                stem.with_suffix(".url").write_text(page.url + "\n")
                try:
                    page.screenshot(
                        path=str(stem.with_suffix(".png")), full_page=True, timeout=5000
                    )
                except Exception as exc:  # mid-navigation or crashed: keep going
                    self.console.append(f"(no screenshot of context {c} page {p}: {exc})")
        server = self.jupyter.server
        (self.artifacts / "jupyter.log").write_text(server.log_text(since=self.jupyter_log_from))
        dev_lines = self.dev.log.lines[self._dev_log_from :]
        (self.artifacts / "devserver.log").write_text("\n".join(dev_lines) + "\n")
        (self.artifacts / "console.log").write_text("\n".join(self.console) + "\n")
        (self.artifacts / "requests.log").write_text("\n".join(self.requests) + "\n")

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


# -- the sign-in panel and the dev server's pages ----------------------------------------------

PANEL = ".speckle-nb"
SIGN_IN_BUTTON = "Sign in to Speckle"


@dataclass(frozen=True)
class Person:
    email: str
    password: str
    name: str


DEMO = Person("demo@example.org", "speckle-demo", "Demo User")
ALICE = Person("alice@example.org", "alice-pass", "Alice Archer")
BOB = Person("bob@example.org", "bob-pass", "Bob Builder")


class Panel:
    """The sign-in panel shown in the output of one cell."""

    def __init__(self, nb: NotebookPage, cell_index: int) -> None:
        self.nb = nb
        self.page = nb.page
        self.cell = nb.cell(cell_index)
        self.root = self.cell.locator(PANEL)

    def expect_state(self, state: str | re.Pattern[str], *, timeout: float = 20_000) -> None:
        expect(self.root).to_have_attribute("data-state", state, timeout=timeout)

    def state(self) -> str | None:
        return self.root.get_attribute("data-state")

    def button(self, name: str) -> Locator:
        return self.root.get_by_role("button", name=name, exact=True)

    def click_for_window(self, name: str = SIGN_IN_BUTTON) -> Page:
        """Click a button that opens the sign-in window; return that window."""
        with self.page.context.expect_page() as opened:
            self.button(name).click()
        window = opened.value
        window.wait_for_load_state("domcontentloaded")
        return window

    def text(self) -> str:
        return self.root.inner_text()


def dev_page(window: Page, kind: str, *, timeout: float = 20_000) -> None:
    """Wait until ``window`` shows the dev server's page of ``kind`` (login, consent, …)."""
    window.locator(f'meta[name="speckle-dev-page"][content="{kind}"]').wait_for(
        state="attached", timeout=timeout
    )


def log_in(window: Page, person: Person) -> None:
    """Fill in and send the dev server's login form (the window must show it)."""
    dev_page(window, "login")
    window.get_by_label("Email").fill(person.email)
    window.get_by_label("Password").fill(person.password)
    window.get_by_role("button", name="Log in").click()


def decide(window: Page, decision: str) -> None:
    """Click Authorize or Deny on the consent page. The window may close itself afterwards."""
    dev_page(window, "consent")
    window.get_by_role("button", name=decision, exact=True).click()


def sign_in_on_speckle(window: Page, person: Person, decision: str = "Authorize") -> None:
    """Log in (when the dev server does not know this browser yet) and decide on consent."""
    marker = window.locator('meta[name="speckle-dev-page"]')
    marker.wait_for(state="attached")
    if marker.get_attribute("content") == "login":
        log_in(window, person)
    decide(window, decision)
