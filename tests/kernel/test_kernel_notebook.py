"""Layer 4: notebooks/getting-started.ipynb runs top to bottom ("Run All") with nbclient.

The user this stands for opened the notebook in JupyterLab (as ``speckle-nb demo`` does) and
pressed Run All: the sign-in cell blocks in ``sign_in(wait=True)`` while they click the
button and sign in, then every cell below runs. So the kernel here signs in through the real
Jupyter server's extension: nbclient starts it with the variables the extension publishes
to the kernels its server starts (its URL, its pid as the kernel's parent, its kernel key), and
a thread plays the person's browser as soon as the panel's state names its start path — read
from the widget state the kernel sends, as the view reads it. Nothing in the notebook is
changed for the test.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import nbformat
from kernelkit import play_extension_sign_in
from nbclient import NotebookClient
from support.jupyter import JupyterServer

from speckle_nb._names import KERNEL_KEY_ENV
from speckle_nb.devserver import DevServer
from speckle_nb.discovery import ENV_JUPYTER_PID, ENV_JUPYTER_URL

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "getting-started.ipynb"
REPO = str(NOTEBOOK.parents[1])


class RunAll(NotebookClient):
    """nbclient, plus the person: the first time a panel's state names a start path, sign
    in through the Jupyter server in a background thread (the cell is blocked meanwhile)."""

    def __init__(self, nb: Any, jupyter: JupyterServer, **kwargs: Any) -> None:
        super().__init__(nb, **kwargs)
        self.jupyter = jupyter
        self.browser: threading.Thread | None = None
        self.browser_failure: BaseException | None = None

    def handle_comm_msg(self, outs: list[Any], msg: dict[str, Any], cell_index: int) -> None:
        super().handle_comm_msg(outs, msg, cell_index)
        state = self.widget_state.get(msg["content"].get("comm_id"), {})
        start_path = state.get("start_path")
        if start_path and self.browser is None:
            self.browser = threading.Thread(target=self._sign_in, args=(start_path,))
            self.browser.start()

    def _sign_in(self, start_path: str) -> None:
        try:
            page = play_extension_sign_in(self.jupyter.url, self.jupyter.token, start_path)
            assert page.status_code == 200, page.text
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.browser_failure = exc


def kernel_env(jupyter: JupyterServer, dev: DevServer, tmp: Path) -> dict[str, str]:
    """The environment a kernel of that Jupyter server gets: the server's own (Speckle
    server, app id), what the extension publishes, and no developer state."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SPECKLE_", "JPY_", "JUPYTER_", "JUPYTERHUB_"))
    }
    # No keyring, remembered sign-ins or desktop accounts of the developer's (as conftest's
    # isolated_env, which cannot be imported by name: every test folder has a conftest).
    env.update(
        {
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "SPECKLE_NB_DATA_DIR": str(tmp / "remembered"),
            "SPECKLE_USERDATA_PATH": str(tmp / "desktop-accounts"),
        }
    )
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([REPO, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "SPECKLE_SERVER_URL": dev.url,
            ENV_JUPYTER_URL: jupyter.url,
            # The key the extension gives the kernels it starts: without it, pickup refuses
            # this kernel, which then signs in without the extension (nobody clicks that here).
            KERNEL_KEY_ENV: jupyter.kernel_key,
            # jupyter_client sets JPY_PARENT_PID to the process that starts the kernel (here,
            # this one): the extension's pid is what the kernel checks it against.
            ENV_JUPYTER_PID: str(os.getpid()),
        }
    )
    return env


def code_cell(nb: Any, marker: str) -> Any:
    return next(c for c in nb.cells if c.cell_type == "code" and marker in c.source)


def outputs_text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def test_run_all_signs_in_and_runs_every_cell(
    jupyter: JupyterServer, dev: DevServer, tmp_path: Path
) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    runner = RunAll(
        nb,
        jupyter,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with runner.setup_kernel(env=kernel_env(jupyter, dev, tmp_path)):
        for index, cell in enumerate(nb.cells):
            runner.execute_cell(cell, index)  # raises CellExecutionError on any red output

        # A kernel without specklepy: the same cell prints why, with no traceback.
        specklepy_cell = code_cell(nb, "to_specklepy()")
        without = nbformat.v4.new_code_cell(
            "import sys\n"
            "for name in ('specklepy', 'specklepy.api', 'specklepy.api.client'):\n"
            "    sys.modules[name] = None  # `import` now raises ImportError\n"
            + specklepy_cell.source
        )
        nb.cells.append(without)  # in memory only: nbclient writes outputs back by index
        runner.execute_cell(without, len(nb.cells) - 1)
    assert runner.browser is not None, "the panel never offered a start URL"
    runner.browser.join(timeout=60)
    assert runner.browser_failure is None, runner.browser_failure

    whoami = code_cell(nb, "active_user()")
    assert outputs_text(whoami).strip() == dev.demo_user.name
    projects = code_cell(nb, "client.projects(")
    assert len(outputs_text(projects).splitlines()) == 10
    assert "authenticated: True" in outputs_text(specklepy_cell)  # specklepy is installed here
    assert "pip install" in outputs_text(without)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(out.get("output_type") != "error" for c in code for out in c.outputs)
