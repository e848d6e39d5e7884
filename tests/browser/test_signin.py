"""Issue 6: the sign-in, end to end, in headless Chromium on JupyterLab 4 and Notebook 7.

Every scenario runs in both frontends (the ``jupyter`` fixture is parametrized). Nothing is
mocked: the panel runs in the page, the extension in the Jupyter server, the kernel is real,
and the Speckle side is the dev server, signed in to through its own login and consent pages.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
from browserkit import (
    ALICE,
    BOB,
    DEMO,
    SIGN_IN_BUTTON,
    BrowserRun,
    Jupyter,
    NotebookPage,
    Panel,
    Person,
    dev_page,
    log_in,
    sign_in_on_speckle,
    write_notebook,
)
from playwright.sync_api import Response, expect
from support.jupyter import REPO_ROOT

pytestmark = pytest.mark.browser

GETTING_STARTED = REPO_ROOT / "notebooks" / "getting-started.ipynb"
SIGN_IN_CELL = "import speckle_nb\nspeckle_nb.sign_in()"
WHOAMI_CELL = "print(speckle_nb.client().active_user().name)"
#: The panel notices a closed window within its 1 s poll plus a 2.5 s grace (panel.js); timers
#: of a page in the background are aligned to whole seconds, and the machine may be busy.
CLOSED_NOTICE_S = 1.0 + 2.5
#: How long a "person" stays on the dev server's login page in the COOP scenario.
TYPING_S = CLOSED_NOTICE_S + 2.0


def signed_in_text(person: Person, dev_url: str) -> str:
    return f"Signed in as {person.name} ({person.email}) on {dev_url}"


def sign_in_notebook(tmp_path: Path, name: str = "signin") -> tuple[Path, int, int]:
    """A notebook with the sign-in cell and a cell printing the active user's name after it.

    Scenario notebooks are small ones written here; the real getting-started notebook is
    exercised by scenario 1 (``getting_started``).
    """
    path = write_notebook(tmp_path / f"{name}.ipynb", [SIGN_IN_CELL, WHOAMI_CELL])
    return path, 0, 1


def getting_started(tmp_path: Path) -> tuple[Path, int, int]:
    """A copy of notebooks/getting-started.ipynb (outputs and widget state cleared).

    Returns the copy's path, the index of its sign-in cell and of the cell after it that
    prints ``active_user()``'s name (inserted when the notebook has none).
    """
    nb = nbformat.read(GETTING_STARTED, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    sign_in = next((i for i in code if "sign_in(" in nb.cells[i].source), None)
    assert sign_in is not None, f"{GETTING_STARTED.name} has no code cell calling sign_in()"
    whoami = next(
        (i for i in code if i > sign_in and re.search(r"active_user\(\)", nb.cells[i].source)),
        None,
    )
    if whoami is None:
        whoami = sign_in + 1
        nb.cells.insert(whoami, nbformat.v4.new_code_cell(WHOAMI_CELL))
    for i in code:
        nb.cells[i].outputs, nb.cells[i].execution_count = [], None
    nb.metadata.pop("widgets", None)
    path = tmp_path / GETTING_STARTED.name
    nbformat.write(nb, path)
    return path, sign_in, whoami


def open_panel(
    run: BrowserRun, path: Path, sign_in_cell: int, context: Any = None, *, blocks: bool = False
) -> Panel:
    """Open the notebook in a new page, run the sign-in cell, return its idle panel
    (``blocks``: the cell waits in ``sign_in(wait=True)`` until signed in)."""
    nb = NotebookPage(run.new_page(context), run.jupyter.server, path).open()
    nb.run_cell(sign_in_cell, finish=not blocks)
    panel = Panel(nb, sign_in_cell)
    panel.expect_state("idle")
    expect(panel.button(SIGN_IN_BUTTON)).to_be_enabled()
    return panel


def whoami(panel: Panel, cell: int) -> str:
    panel.nb.run_cell(cell)
    return panel.nb.output_text(cell).strip()


def sign_in_fully(run: BrowserRun, panel: Panel, person: Person = DEMO) -> None:
    """Click the button, sign in on the dev server, Authorize; the panel says who."""
    window = panel.click_for_window()
    panel.expect_state("waiting")
    sign_in_on_speckle(window, person)
    panel.expect_state("signed_in")
    expect(panel.root).to_contain_text(signed_in_text(person, run.dev.url))


# -- 1 -------------------------------------------------------------------------------------------


def test_1_sign_in_from_getting_started(run: BrowserRun, jupyter: Jupyter, tmp_path: Path) -> None:
    path, sign_in_cell, whoami_cell = getting_started(tmp_path)
    # The notebook signs in with wait=True (so Run All works): the cell runs until signed in.
    panel = open_panel(run, path, sign_in_cell, blocks=True)
    docs = jupyter.flavor == "lab"  # the README shows JupyterLab
    run.shot_panel(panel, "panel-idle", docs=docs)

    window = panel.click_for_window()
    panel.expect_state("waiting")
    expect(panel.root).to_contain_text("Finish signing in in the new window")
    expect(panel.button("Cancel")).to_be_visible()
    run.shot_panel(panel, "panel-waiting", docs=docs)

    sign_in_on_speckle(window, DEMO)
    panel.expect_state("signed_in")
    expect(panel.root).to_contain_text(signed_in_text(DEMO, run.dev.url))
    expect(panel.button("Sign out")).to_be_visible()
    panel.nb.wait_cell_done(sign_in_cell)
    run.shot_panel(panel, "panel-signed-in", docs=docs)

    assert whoami(panel, whoami_cell) == DEMO.name
    run.shot(panel.nb.page, "notebook-signed-in")


# -- 2 -------------------------------------------------------------------------------------------


def test_2_deny_then_try_again(run: BrowserRun, jupyter: Jupyter, tmp_path: Path) -> None:
    path, sign_in_cell, whoami_cell = sign_in_notebook(tmp_path)
    panel = open_panel(run, path, sign_in_cell)

    window = panel.click_for_window()
    sign_in_on_speckle(window, DEMO, decision="Deny")
    panel.expect_state("error")
    expect(panel.root).to_contain_text(re.compile(r"\bdeni|\bDeny\b", re.IGNORECASE))
    expect(panel.button("Try again")).to_be_visible()
    run.shot_panel(panel, "panel-error", docs=jupyter.flavor == "lab")

    # Try again opens a new window; the dev server still knows this browser: consent only.
    again = panel.click_for_window("Try again")
    panel.expect_state("waiting")
    dev_page(again, "consent")
    sign_in_on_speckle(again, DEMO)
    panel.expect_state("signed_in")
    expect(panel.root).to_contain_text(signed_in_text(DEMO, run.dev.url))
    assert whoami(panel, whoami_cell) == DEMO.name


# -- 3 -------------------------------------------------------------------------------------------


def test_3_window_closed_before_finishing(run: BrowserRun, tmp_path: Path) -> None:
    path, sign_in_cell, _ = sign_in_notebook(tmp_path)
    panel = open_panel(run, path, sign_in_cell)

    window = panel.click_for_window()
    dev_page(window, "login")
    panel.expect_state("waiting")
    window.close()

    # Not "waiting" any more, and it says why and what to do next.
    panel.expect_state(re.compile(r"^(problem|error)$"), timeout=(CLOSED_NOTICE_S + 5) * 1000)
    expect(panel.root).to_contain_text(re.compile(r"window was closed", re.IGNORECASE))
    expect(panel.button("Try again")).to_be_visible()
    expect(panel.root).not_to_contain_text("Finish signing in in the new window")
    run.shot_panel(panel, "panel-window-closed")


# -- 4 -------------------------------------------------------------------------------------------


def test_4_two_tabs_two_users_at_once(run: BrowserRun, tmp_path: Path) -> None:
    # Two browser profiles: each has its own Jupyter login, its own dev-server session and
    # its own flow cookie (one browser may hold one sign-in at a time).
    people = {"alice": ALICE, "bob": BOB}
    panels: dict[str, Panel] = {}
    cells: dict[str, int] = {}
    for who in people:
        path, sign_in_cell, whoami_cell = sign_in_notebook(tmp_path, who)
        panels[who] = open_panel(run, path, sign_in_cell, run.new_context(who))
        cells[who] = whoami_cell

    # Both sign-ins are under way before either finishes.
    windows = {who: panels[who].click_for_window() for who in people}
    for who, person in people.items():
        log_in(windows[who], person)
    for who in people:
        panels[who].expect_state("waiting")
    for who, person in people.items():
        sign_in_on_speckle(windows[who], person)

    for who, person in people.items():
        panels[who].expect_state("signed_in")
        expect(panels[who].root).to_contain_text(signed_in_text(person, run.dev.url))
    for who, person in people.items():
        assert whoami(panels[who], cells[who]) == person.name


# -- 5 -------------------------------------------------------------------------------------------


def _widget_states(saved: dict[str, Any]) -> list[dict[str, Any]]:
    widgets = saved.get("metadata", {}).get("widgets", {})
    state = widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return [m.get("state", {}) for m in state.values()]


def _panel_state(saved: dict[str, Any]) -> dict[str, Any] | None:
    return next((s for s in _widget_states(saved) if "user_name" in s and "state" in s), None)


def _saved_with_signed_in_panel(saved: dict[str, Any]) -> bool:
    panel = _panel_state(saved)
    return panel is not None and panel.get("state") == "signed_in"


def _assert_holds_none(text: str, secrets: dict[str, list[str]], where: str) -> None:
    for kind, values in secrets.items():
        for value in values:
            # The whole secret, and the part of a Speckle token after its 10-char id.
            for piece in {value, value[10:]} if len(value) >= 32 else {value}:
                assert piece not in text, f"{where} holds the {kind} ({len(value)} chars)"


def _access_codes_in(requests: list[str]) -> list[str]:
    codes = []
    for line in requests:
        url = line.rsplit(" ", 1)[-1]
        if "speckle-nb/callback" in url:
            codes += parse_qs(urlsplit(url).query).get("access_code", [])
    return codes


@pytest.mark.parametrize("signed_in_by", ["sign-in", "token-paste"])
def test_5_saved_notebook_holds_no_secret(
    run: BrowserRun, jupyter: Jupyter, tmp_path: Path, signed_in_by: str
) -> None:
    path, sign_in_cell, whoami_cell = sign_in_notebook(tmp_path)
    panel = open_panel(run, path, sign_in_cell)
    secrets: dict[str, list[str]] = {"app secret": [jupyter.app.secret]}

    if signed_in_by == "sign-in":
        sign_in_fully(run, panel)
    else:
        demo = run.dev.state.user_by_email(DEMO.email)
        pasted = run.dev.state.create_token(demo.id, ["profile:read", "profile:email"], name="pat")
        secrets["pasted token"] = [pasted]
        panel.root.get_by_role("button", name="use an access token instead").click()
        field = panel.root.get_by_label("Personal access token")
        expect(field).to_have_attribute("type", "password")
        field.fill(pasted)
        panel.root.get_by_role("button", name="Use token").click()
        panel.expect_state("signed_in")
        expect(panel.root).to_contain_text(signed_in_text(DEMO, run.dev.url))
        # The field gave the token up the moment it was sent.
        assert not panel.root.locator("input[type=password]").evaluate_all(
            "els => els.some(e => e.value)"
        )

    assert whoami(panel, whoami_cell) == DEMO.name
    saved = panel.nb.save(
        lambda d: _saved_with_signed_in_panel(d) and bool(d["cells"][whoami_cell].get("outputs"))
    )

    # Non-trivial: the outputs and the panel's widget state are in the file.
    text = path.read_text(encoding="utf-8")
    panel_state = _panel_state(saved)
    assert panel_state is not None
    assert panel_state["user_name"] == DEMO.name
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for o in saved["cells"][sign_in_cell]["outputs"]
    )
    assert "".join(saved["cells"][whoami_cell]["outputs"][0]["text"]).strip() == DEMO.name

    if signed_in_by == "sign-in":
        secrets["token"] = run.secrets_issued("token")
        secrets["refresh token"] = run.secrets_issued("refresh_token")
        codes = _access_codes_in(run.requests)
        secrets["access code"] = codes
        # The check is only as good as what it looks for: all of it must have been seen.
        assert len(secrets["token"]) == 1
        assert len(secrets["refresh token"]) == 1
        assert codes
        assert codes == run.secrets_issued("access_code")
    _assert_holds_none(text, secrets, f"the saved {path.name}")
    _assert_holds_none(json.dumps(saved), secrets, f"the saved {path.name} (decoded)")
    _assert_holds_none(
        jupyter.server.log_text(since=run.jupyter_log_from), secrets, "the Jupyter server's log"
    )


# -- 6 -------------------------------------------------------------------------------------------


def stays_waiting(panel: Panel, seconds: float) -> bool:
    """Watch the panel for ``seconds``: False as soon as it leaves "waiting"."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if panel.state() != "waiting":
            return False
        time.sleep(0.1)
    return True


def _watch_coop(run: BrowserRun, panel: Panel) -> list[str]:
    """The COOP header of every dev-server document this test's browser loads."""
    seen: list[str] = []

    def on_response(response: Response) -> None:
        if response.url.startswith(run.dev.url) and response.request.resource_type == "document":
            seen.append(response.headers.get("cross-origin-opener-policy", ""))

    panel.page.context.on("response", on_response)
    return seen


def test_6_coop_on_the_speckle_side(run: BrowserRun, tmp_path: Path, dev_options: Any) -> None:
    dev_options.coop = True
    path, sign_in_cell, whoami_cell = sign_in_notebook(tmp_path)
    panel = open_panel(run, path, sign_in_cell)
    coop = _watch_coop(run, panel)

    window = panel.click_for_window()
    dev_page(window, "login")
    # The dev server's page is now in a browsing context group of its own: the notebook page
    # has no link to it, and `win.closed` reads true there although the window is open. A
    # person takes a few seconds to type their password, in that window (it has the focus);
    # the panel must neither call the window closed nor lose the sign-in.
    kept_waiting = stays_waiting(panel, TYPING_S)
    waiting_text = panel.text()
    assert not window.is_closed()
    sign_in_on_speckle(window, DEMO)

    # Completed without `window.opener`: callback page -> BroadcastChannel -> kernel pickup.
    panel.expect_state("signed_in")
    expect(panel.root).to_contain_text(signed_in_text(DEMO, run.dev.url))
    assert coop
    assert set(coop) == {"same-origin"}
    assert whoami(panel, whoami_cell) == DEMO.name
    assert kept_waiting, f"the panel left 'waiting' while the window was open: {waiting_text}"
