"""One sign-in in headless Chromium through the hub: the hub's login page, JupyterLab, the panel.

The browser layer's helpers (``tests/browser/browserkit.py``) drive the notebook, the panel and
the Speckle pages; only the way in differs: the hub's login form instead of a server token.
Playwright runs on a thread of its own: its sync API refuses to start in a thread where
another Playwright (the browser layer's session-wide one) already runs its event loop.
"""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hubkit import ALICE, HUB_PASSWORD, HubBrowser, HubSetup
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

_TESTS = Path(__file__).resolve().parents[1]
for _path in (_TESTS, _TESTS / "browser"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

from browserkit import (  # noqa: E402
    ALICE as ALICE_ON_SPECKLE,
)
from browserkit import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    NotebookPage,
    Panel,
    sign_in_on_speckle,
    write_notebook,
)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "hub"
SIGN_IN_CELL = "import speckle_nb\nspeckle_nb.sign_in()"
WHOAMI_CELL = "print(speckle_nb.client().active_user().name)"
#: JupyterLab's news toast would sit over the notebook; a user setting turns it off.
NEWS_OFF = ("@jupyterlab/apputils-extension", "notification", {"fetchNews": "false"})


class HubLab:
    """What ``browserkit.NotebookPage`` needs to know of a server: JupyterLab under the hub."""

    def __init__(self, hub_url: str, user: str, home: Path) -> None:
        self.hub_url = hub_url
        self.user = user
        self.root_dir = home

    def page_url(self, notebook: str | None = None, *, token: bool = False) -> str:
        return f"{self.hub_url}/user/{self.user}/lab/tree/{notebook or ''}"


def hub_log_in(page: Page, hub_url: str, user: str) -> None:
    """The hub's own login form, as a person fills it in."""
    page.goto(f"{hub_url}/hub/login")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill(HUB_PASSWORD)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=60_000)


def leave_evidence(context: BrowserContext) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for index, open_page in enumerate(context.pages):
        (ARTIFACTS / f"chromium-page{index}.url").write_text(open_page.url + "\n")
        open_page.screenshot(path=str(ARTIFACTS / f"chromium-page{index}.png"), timeout=5000)


def sign_in_in_chromium(hub_setup: HubSetup, notebook: Path) -> None:
    hub = hub_setup.hub
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            # a person's browser blocks popups: the panel must open its window in the click
            ignore_default_args=["--disable-popup-blocking"],
        )
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        try:
            page = context.new_page()
            hub_log_in(page, hub.url, ALICE.hub_name)
            lab = HubLab(hub.url, ALICE.hub_name, notebook.parent)
            nb = NotebookPage(page, lab, notebook).open(token=False)  # type: ignore[arg-type]
            nb.run_cell(0)
            panel = Panel(nb, 0)
            panel.expect_state("idle")

            window = panel.click_for_window()
            panel.expect_state("waiting")
            sign_in_on_speckle(window, ALICE_ON_SPECKLE)
            panel.expect_state("signed_in", timeout=30_000)
            expect(panel.root).to_contain_text(
                f"Signed in as {ALICE.speckle_name} ({ALICE.email}) on {hub_setup.dev.url}"
            )
            nb.run_cell(1)
            assert nb.output_text(1).strip() == ALICE.speckle_name
        except BaseException:
            leave_evidence(context)
            raise
        finally:
            context.close()
            browser.close()


def test_sign_in_in_chromium_through_the_hub(hub_setup: HubSetup, alice: HubBrowser) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}. Install Debian's build with "
            "`apt-get install -y chromium` (scripts/test.sh does); never `playwright install`.",
            pytrace=False,
        )
    home = hub_setup.hub.root / "home" / ALICE.hub_name
    package, plugin, values = NEWS_OFF
    settings = (
        home / ".jupyter" / "lab" / "user-settings" / package / f"{plugin}.jupyterlab-settings"
    )
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(values))
    notebook = write_notebook(home / "hub-sign-in.ipynb", [SIGN_IN_CELL, WHOAMI_CELL])
    with ThreadPoolExecutor(1, thread_name_prefix="chromium") as pool:
        pool.submit(sign_in_in_chromium, hub_setup, notebook).result(timeout=150)
