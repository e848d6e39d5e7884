"""``import speckle_nb`` runs in every kernel start: it must not pull in the heavy stacks.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("ipywidgets", "anywidget", "jupyter_server", "tornado", "specklepy")
#: What ``specklepy`` would drag in with it; none of it belongs to the client either.
SPECKLEPY_STACK = ("gql", "pydantic", "requests")


def modules_after(code: str) -> set[str]:
    """Top-level names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize(
    "code",
    [
        "import speckle_nb",
        "import speckle_nb.graphql",
        "from speckle_nb.graphql import SpeckleClient, AsyncSpeckleClient",
    ],
)
def test_no_heavy_imports(code: str) -> None:
    loaded = modules_after(code)
    assert not loaded & set(HEAVY), f"{code!r} imported {sorted(loaded & set(HEAVY))}"


def test_building_a_client_imports_no_specklepy_stack() -> None:
    code = (
        "import httpx\nfrom speckle_nb.graphql import SpeckleClient\n"
        "SpeckleClient('http://localhost:1', 'x' * 42, transport=httpx.MockTransport(None)).close()"
    )
    loaded = modules_after(code)
    assert not loaded & set(HEAVY + SPECKLEPY_STACK)
    # asyncio costs more to import than httpx; only the async client needs it.
    assert "asyncio" not in loaded - modules_after("import httpx")


def test_public_names_resolve_lazily() -> None:
    code = (
        "import speckle_nb, speckle_nb.graphql as g\n"
        "assert speckle_nb.SpeckleClient is g.SpeckleClient\n"
        "assert speckle_nb.AsyncSpeckleClient is g.AsyncSpeckleClient"
    )
    assert not modules_after(code) & set(HEAVY)
