"""Speckle as the hub's login, in headless Chromium: the hub's login button, the dev server's
login and consent pages, JupyterLab, and a first cell that answers with no click.

Runs on the session's login hub (``conftest.login_setup``), as bob (``test_hub_login`` is alice).
"""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from servicekit import LoginSetup

_TESTS = Path(__file__).resolve().parents[1]
for _path in (_TESTS, _TESTS / "browser"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

from browserkit import (  # noqa: E402
    BOB,
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    NotebookPage,
    sign_in_on_speckle,
    write_notebook,
)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "hub"
FIRST_CELL = "import speckle_nb\nprint(speckle_nb.client().active_user().name)"
PANEL_CELL = "speckle_nb.sign_in()"


class HubLab:
    def __init__(self, hub_url: str, user: str, home: Path) -> None:
        self.hub_url = hub_url
        self.user = user
        self.root_dir = home

    def page_url(self, notebook: str | None = None, *, token: bool = False) -> str:
        return f"{self.hub_url}/user/{self.user}/lab/tree/{notebook or ''}"


def log_in_and_run(setup: LoginSetup) -> None:
    hub = setup.hub
    user = BOB.email
    home = hub.root / "home" / user
    home.mkdir(parents=True, exist_ok=True)
    notebook = write_notebook(home / "first-cell.ipynb", [FIRST_CELL, PANEL_CELL])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        try:
            page = context.new_page()
            page.goto(f"{hub.url}/hub/login")
            page.get_by_text("Sign in with Speckle").click()
            sign_in_on_speckle(page, BOB)  # the dev server's login and consent pages
            page.wait_for_url(re.compile(r"/user/bob(@|%40)example\.org/lab"), timeout=60_000)
            lab = HubLab(hub.url, user, home)
            nb = NotebookPage(page, lab, notebook).open(token=False)  # type: ignore[arg-type]
            nb.run_cell(0, timeout=60)
            assert nb.output_text(0).strip() == BOB.name  # no click anywhere
            nb.run_cell(1, timeout=60)
            expect(nb.output(1)).to_contain_text(f"Signed in through JupyterHub as {BOB.name}")
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for index, open_page in enumerate(context.pages):
                open_page.screenshot(path=str(ARTIFACTS / f"login-page{index}.png"), timeout=5000)
            raise
        finally:
            context.close()
            browser.close()


def test_chromium_logs_in_with_speckle_and_the_first_cell_answers(
    login_setup: LoginSetup,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium).")
    with ThreadPoolExecutor(1, thread_name_prefix="chromium") as pool:
        pool.submit(log_in_and_run, login_setup).result(timeout=180)
