"""One panel on screen per ``sign_in()`` call, also when the call is a cell's last expression.

Runs cells in IPython's test shell (``IPython.testing.globalipapp``) and counts what reaches
its display publisher, which is where both ``display()`` and a cell's result end up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.testing import globalipapp

from speckle_nb.devserver import DevServer

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def shell(dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    ip = globalipapp.get_ipython()  # type: ignore[no-untyped-call]  # the process-wide shell
    monkeypatch.setattr(ip, "display_pub", CapturingDisplayPublisher())  # type: ignore[no-untyped-call]
    ip.run_cell("import speckle_nb")
    yield ip
    ip.run_cell("speckle_nb.SignInPanel.close_all()")


def panels_shown(ip: Any) -> list[str]:
    """The model id of every widget view published so far."""
    outputs = [o if isinstance(o, dict) else vars(o) for o in ip.display_pub.outputs]
    return [o["data"][WIDGET_MIME]["model_id"] for o in outputs if WIDGET_MIME in o["data"]]


def run(ip: Any, code: str) -> Any:
    result = ip.run_cell(code, store_history=True)
    result.raise_error()
    return result


@pytest.mark.parametrize(
    "cell",
    [
        "speckle_nb.sign_in()",
        "speckle_nb.sign_in();",
        "p = speckle_nb.sign_in()",
        "p = speckle_nb.sign_in()\np",
        "x = 1\nspeckle_nb.sign_in()",
    ],
    ids=["last-expression", "semicolon", "assigned", "assigned-then-named", "after-code"],
)
def test_one_panel_per_call(shell: Any, cell: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, cell)
    assert len(panels_shown(shell)) == 1
    assert "SignInPanel(" not in capsys.readouterr().out  # no text result either


def test_two_calls_two_panels(shell: Any) -> None:
    run(shell, "a = speckle_nb.sign_in()\nb = speckle_nb.sign_in()\nb")
    shown = panels_shown(shell)
    assert len(shown) == 2
    assert len(set(shown)) == 2


def test_showing_the_panel_again_later_works(shell: Any) -> None:
    run(shell, "p = speckle_nb.sign_in()")
    run(shell, "p")  # a later cell naming it: a second view, on purpose
    run(shell, "from IPython.display import display\ndisplay(p)")
    shown = panels_shown(shell)
    assert len(shown) == 3
    assert len(set(shown)) == 1  # three views of one panel


def test_sign_out_result_is_plain_text(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "speckle_nb.sign_out()")
    out = capsys.readouterr().out
    assert "Not signed in to any Speckle server" in out
    assert "'Not signed in" not in out  # not a quoted str repr
