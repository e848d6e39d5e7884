"""The panel's front-end files: valid ESM, the agreed words, no HTML built from data."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import speckle_nb.widget.panel as panel_module

ESM = Path(panel_module.__file__).with_name("panel.js")
CSS = Path(panel_module.__file__).with_name("panel.css")


def test_the_esm_parses_as_a_module(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    copy = tmp_path / "panel.mjs"
    copy.write_text(ESM.read_text())
    subprocess.run([node, "--check", str(copy)], check=True, capture_output=True)
    probe = (
        f"const m = await import({str(copy)!r}); "
        "if (typeof m.default.render !== 'function' || typeof m.default.initialize !== 'function')"
        " process.exit(3);"
    )
    subprocess.run([node, "--input-type=module", "-e", probe], check=True, capture_output=True)


def test_the_agreed_ui_text_is_there() -> None:
    text = ESM.read_text()
    for words in (
        '"Sign in to Speckle"',
        '"use an access token instead"',
        '"Finish signing in in the new window"',
        '"Sign out"',
        '"Try again"',
        '"Cancel"',
        "The sign-in window was closed before finishing.",
        "Your browser blocked the sign-in window.",
        "Signed in as ",
    ):
        assert words in text


def test_no_html_is_built_from_strings() -> None:
    text = re.sub(r"(?m)^\s*//.*$", "", ESM.read_text())  # code, not comments
    assert "innerHTML" not in text
    assert "insertAdjacentHTML" not in text
    # opened without "noopener" (it makes window.open return null, hiding a blocked popup)
    assert re.findall(r"window\.open\(([^)]*)\)", text) == ['url, "_blank"']
    assert "win.opener = null" in text


def test_the_css_follows_the_jupyterlab_theme() -> None:
    css = CSS.read_text()
    for variable in (
        "--jp-ui-font-color1",
        "--jp-layout-color1",
        "--jp-brand-color1",
        "--jp-error-color1",
    ):
        assert f"var({variable}," in css  # with a fallback
