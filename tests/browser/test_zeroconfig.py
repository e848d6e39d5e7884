"""Issue 11: signing in with no setup, in headless Chromium on a JupyterLab whose speckle-nb
extension has no Speckle app. The kernel signs in with Speckle's built-in public app
(connectrV3, "Desktop Connectors"): over its listener on 127.0.0.1:29355 when the browser runs
on the kernel's computer, by pasting the unreachable address the window lands on otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from browserkit import (
    DEMO,
    SIGN_IN_BUTTON,
    BrowserRun,
    Dev,
    Jupyter,
    NotebookPage,
    Panel,
    dev_page,
    log_in,
    write_notebook,
)
from playwright.sync_api import expect
from support.jupyter import JupyterServer, artifacts_dir, free_port
from test_signin import (
    WHOAMI_CELL,
    _assert_holds_none,
    _panel_state,
    _saved_with_signed_in_panel,
    signed_in_text,
    whoami,
)

pytestmark = pytest.mark.browser

LANDING = "http://localhost:29355"
#: As conftest.py's: widget state saved with the notebook (what the secret check reads).
FRONTEND_SETTINGS = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}


@pytest.fixture(scope="module")
def jupyter(dev: Dev, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    """JupyterLab with the extension enabled and no Speckle app anywhere (only the server URL)."""
    server = JupyterServer(
        "lab",
        root_dir=tmp_path_factory.getbasetemp(),
        state_dir=tmp_path_factory.mktemp("jupyter-noapp-state"),
        log_path=artifacts_dir("browser-lab-noapp") / "jupyter.log",
        port=free_port(),
        settings=FRONTEND_SETTINGS,
    )
    server.extra_env.update(SPECKLE_SERVER_URL=dev.url)
    with server.running():
        status = server.api("GET", "speckle-nb/status").json()
        assert status["app_configured"] is False
        yield Jupyter(server=server, app=None)


def open_panel(run: BrowserRun, path: Path) -> Panel:
    nb = NotebookPage(run.new_page(), run.jupyter.server, path).open()
    nb.run_cell(0)
    panel = Panel(nb, 0)
    panel.expect_state("idle")
    expect(panel.button(SIGN_IN_BUTTON)).to_be_enabled()
    return panel


def consent_page_names_desktop_connectors(window: object) -> None:
    log_in(window, DEMO)  # type: ignore[arg-type]
    dev_page(window, "consent")  # type: ignore[arg-type]
    expect(window.locator("body")).to_contain_text("Desktop Connectors")  # type: ignore[attr-defined]
    window.get_by_role("button", name="Authorize", exact=True).click()  # type: ignore[attr-defined]


def saved_holds_no_secret(run: BrowserRun, panel: Panel, path: Path, codes: list[str]) -> None:
    saved = panel.nb.save(
        lambda d: _saved_with_signed_in_panel(d) and bool(d["cells"][1].get("outputs"))
    )
    state = _panel_state(saved)
    assert state is not None
    assert state["builtin_app"] is True
    secrets = {
        "token": run.secrets_issued("token"),
        "refresh token": run.secrets_issued("refresh_token"),
        "access code": codes,
    }
    # The check is only as good as what it looks for: all of it must have been seen.
    assert len(secrets["token"]) == 1
    assert len(secrets["refresh token"]) == 1
    assert codes == run.secrets_issued("access_code")
    _assert_holds_none(path.read_text(encoding="utf-8"), secrets, f"the saved {path.name}")
    _assert_holds_none(json.dumps(saved), secrets, f"the saved {path.name} (decoded)")
    _assert_holds_none(
        run.jupyter.server.log_text(since=run.jupyter_log_from),
        secrets,
        "the Jupyter server's log",
    )


def test_no_setup_signs_in_over_the_kernels_listener(run: BrowserRun, tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "noapp.ipynb", ["import speckle_nb\nspeckle_nb.sign_in()", WHOAMI_CELL]
    )
    panel = open_panel(run, path)
    # Said before the consent page shows it: which app, and why that name.
    expect(panel.root).to_contain_text("authorize “Desktop Connectors”")
    expect(panel.root).to_contain_text("has no Speckle app configured")
    run.shot_panel(panel, "panel-no-setup", docs=True)

    window = panel.click_for_window()
    panel.expect_state("waiting")
    assert any("/authn/verify/connectrV3/" in line for line in run.requests)
    consent_page_names_desktop_connectors(window)
    # Speckle sends the window to the kernel's listener, which says it can be closed.
    expect(window.locator("body")).to_contain_text("You can close this tab.", timeout=20_000)
    panel.expect_state("signed_in")
    expect(panel.root).to_contain_text(signed_in_text(DEMO, run.dev.url))
    assert whoami(panel, 1) == DEMO.name

    codes = [
        c
        for line in run.requests
        if line.rsplit(" ", 1)[-1].startswith(LANDING)
        for c in parse_qs(urlsplit(line.rsplit(" ", 1)[-1]).query).get("access_code", [])
    ]
    assert len(codes) == 1
    saved_holds_no_secret(run, panel, path, codes)


def test_browser_elsewhere_pastes_the_unreachable_address(run: BrowserRun, tmp_path: Path) -> None:
    # The kernel learns it runs on Binder (as a real Binder's environment tells it).
    path = write_notebook(
        tmp_path / "elsewhere.ipynb",
        [
            "import os\nos.environ['BINDER_REQUEST'] = 'v2/gh/someone/repo/HEAD'\n"
            "import speckle_nb\nspeckle_nb.sign_in()",
            WHOAMI_CELL,
        ],
    )
    panel = open_panel(run, path)
    expect(panel.root).to_contain_text(f"{LANDING}/?access_code=…")  # said before it happens
    expect(panel.root).to_contain_text("will not load")
    run.shot_panel(panel, "panel-paste", docs=True)

    window = panel.click_for_window()
    panel.expect_state("waiting")
    # Nothing listens there: the window ends on an error page whose address holds the code.
    with window.expect_event(
        "requestfailed", lambda r: r.url.startswith(f"{LANDING}/?access_code="), timeout=20_000
    ) as failed:
        consent_page_names_desktop_connectors(window)
    landing = failed.value.url
    field = panel.root.get_by_label("The address your browser landed on")
    field.fill(landing)
    panel.root.get_by_role("button", name="Finish sign-in").click()
    panel.expect_state("signed_in")
    expect(panel.root).to_contain_text(signed_in_text(DEMO, run.dev.url))
    assert not field.count() or not field.input_value()  # the field gave the address up
    assert whoami(panel, 1) == DEMO.name
    saved_holds_no_secret(run, panel, path, parse_qs(urlsplit(landing).query)["access_code"])
