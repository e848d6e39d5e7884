"""The package installs as users get it: the extension enabled by shipped config, the CLI on PATH."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_server_extension_is_enabled_and_validates() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)  # colour codes
    line = next(line for line in text.splitlines() if "speckle_nb" in line and "enabled" in line)
    assert "enabled" in line
    # "Validating speckle_nb..." is followed by "speckle_nb 0.1.0 OK" when the module loads.
    assert "speckle_nb" in text
    assert " OK" in text.split("Validating speckle_nb", 1)[1].split("\n")[1]


@pytest.mark.slow
def test_wheel_ships_the_enable_config_and_typing_marker(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("speckle_nb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    config = next(n for n in names if n.endswith("jupyter_server_config.d/speckle_nb.json"))
    assert ".data/data/etc/jupyter/" in config
    enabled = json.loads(zipfile.ZipFile(wheel).read(config))
    assert enabled == {"ServerApp": {"jpserver_extensions": {"speckle_nb": True}}}
    assert "speckle_nb/py.typed" in names
    assert any(n.endswith("speckle_nb/widget/panel.js") for n in names)


def test_cli_help_lists_both_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "speckle_nb", "--help"], capture_output=True, text=True, check=True
    )
    assert "demo" in result.stdout
    assert "devserver" in result.stdout
