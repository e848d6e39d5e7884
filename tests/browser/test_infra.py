"""The browser layer's own footing, with no sign-in in it: if this fails, the scenarios cannot
say anything. A notebook opens under the non-root base URL, its kernel starts, Shift+Enter runs
a cell, the output shows, Ctrl+S writes it to disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from browserkit import BrowserRun, Jupyter, NotebookPage, write_notebook

pytestmark = pytest.mark.browser


def test_notebook_runs_a_cell_and_saves(run: BrowserRun, jupyter: Jupyter, tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "smoke.ipynb", ["print(1 + 1)", "import os; print(os.getpid())"]
    )
    nb = NotebookPage(run.new_page(), jupyter.server, path).open()
    assert "%40" in nb.page.url  # the page really sits under the escaped base URL

    nb.run_cell(0)
    assert nb.output_text(0).strip() == "2"
    nb.run_cell(1)
    kernel_pid = nb.output_text(1).strip()
    assert kernel_pid.isdigit()

    saved = nb.save(lambda d: bool(d["cells"][1].get("outputs")))
    assert saved["cells"][0]["outputs"][0]["text"] in ("2\n", ["2\n"])
    assert "".join(saved["cells"][1]["outputs"][0]["text"]).strip() == kernel_pid
