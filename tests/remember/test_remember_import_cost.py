"""``import speckle_nb`` runs in every kernel start: none of these modules may load with it."""

from __future__ import annotations

import json
import subprocess
import sys

MINE = (
    "speckle_nb.fallback",
    "speckle_nb.listener",
    "speckle_nb.remember",
    "speckle_nb.local_accounts",
    "speckle_nb.magics",
)
HEAVY = ("IPython", "keyring", "sqlite3", "http.server")


def loaded_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_speckle_nb_loads_none_of_them() -> None:
    loaded = loaded_after("import speckle_nb")
    assert not loaded & set(MINE + HEAVY)


def test_remember_imports_keyring_only_when_used() -> None:
    loaded = loaded_after("import speckle_nb.remember, speckle_nb.local_accounts")
    assert "keyring" not in loaded
    assert "IPython" not in loaded
