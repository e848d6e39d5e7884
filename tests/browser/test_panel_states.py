"""Issue 15: a panel never says "Signed in" when nothing works — in headless Chromium, on
JupyterLab 4 and Notebook 7, with a real kernel.

After a kernel restart the old panel's model is cut off from any kernel (ipywidgets marks it
no longer live); the panel must say so, offer no Sign out that reaches nobody, and name one
next step: run the cell again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browserkit import SIGN_IN_BUTTON, BrowserRun, Jupyter, NotebookPage, Panel, write_notebook
from playwright.sync_api import expect
from test_signin import open_panel, sign_in_fully

pytestmark = pytest.mark.browser

SIGN_IN_CELL = "import speckle_nb\nspeckle_nb.sign_in()"

_RESTART = """async () => {
  const ctx = window.jupyterapp.shell.currentWidget.sessionContext;
  await ctx.session.kernel.restart();
}"""


def test_after_a_kernel_restart_the_old_panel_says_its_kernel_is_gone(
    run: BrowserRun, jupyter: Jupyter, tmp_path: Path
) -> None:
    path = write_notebook(tmp_path / "restart.ipynb", [SIGN_IN_CELL, "'another cell'"])
    panel = open_panel(run, path, 0)
    sign_in_fully(run, panel)
    expect(panel.button("Sign out")).to_be_visible()

    panel.page.evaluate(_RESTART)

    panel.expect_state("gone")
    expect(panel.root).to_contain_text("The kernel was restarted or shut down")
    expect(panel.root).to_contain_text("Run the cell again")
    expect(panel.root).not_to_contain_text("Signed in as")
    expect(panel.button("Sign out")).to_have_count(0)
    expect(panel.button(SIGN_IN_BUTTON)).to_have_count(0)
    run.shot_panel(panel, "panel-kernel-gone")

    # The one next step works: the cell run again shows a live panel for the new kernel,
    # which is not signed in.
    nb: NotebookPage = panel.nb
    nb.run_cell(1)  # the new kernel counts from [1] again: take that number before cell 0
    nb.run_cell(0)
    fresh = Panel(nb, 0)
    fresh.expect_state("idle")
    expect(fresh.button(SIGN_IN_BUTTON)).to_be_enabled()
