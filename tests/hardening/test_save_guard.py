"""The save-time guard: a printed token never reaches the saved ``.ipynb``.

Pure tests of the scrub (what is a token, what is not, every output shape, widget state),
the hook on jupyter_server's real ``FileContentsManager`` (chained with a configured
``pre_save_hook``), and the whole path: a real Jupyter server with the extension, a real kernel
that signs in with ``use_token`` and prints the session's token in every way a cell can show
it, a save through the contents API, and the file on disk.
"""

from __future__ import annotations

import copy
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import FileContentsManager

from speckle_nb.server.save_guard import (
    MARKER,
    pre_save_hook,
    register_save_guard,
    scrub_notebook,
    scrub_text,
)


def token() -> str:
    return secrets.token_hex(21)  # 42 lowercase hex, like Speckle's


# ------------------------------------------------------------------------------- what a token is


@pytest.mark.parametrize(
    "template",
    [
        "{t}",
        "token: {t}\n",
        "'{t}'",
        '"{t}"',
        "Bearer {t}",
        "https://app.speckle.systems/?access_code={t}&x=1",
        "access_code%3D{t}",  # URL-encoded
        "\x1b[0;31m{t}\x1b[0m",  # ANSI colour, as in tracebacks
        "'\\n{t}'",  # a repr'd string with an escaped newline in front
        "<td>{t}</td>",
        "(token={t})",
        "token_{t}",
    ],
)
def test_a_token_is_found_in_any_context(template: str) -> None:
    t = token()
    text = template.format(t=t)
    scrubbed, count = scrub_text(text)
    assert count == 1
    assert t not in scrubbed
    assert scrubbed == template.format(t=MARKER)


@pytest.mark.parametrize(
    "value",
    [
        secrets.token_hex(16),  # a Speckle object id: 32 hex
        secrets.token_hex(20),  # a git SHA: 40 hex
        secrets.token_hex(32),  # a SHA-256 digest (the pickup hash): 64 hex
        secrets.token_hex(21) + "a",  # 43 hex
        secrets.token_hex(21)[:41],  # 41 hex
        secrets.token_hex(21).upper(),  # uppercase hex is not a Speckle token
        "g" + secrets.token_hex(21)[1:],  # a non-hex letter in it
        "x" + secrets.token_hex(21),  # part of a longer word
        secrets.token_hex(21) + "z",
    ],
)
def test_other_hex_is_left_alone(value: str) -> None:
    text = f"id {value} end"
    assert scrub_text(text) == (text, 0)


def test_counts_every_token_and_keeps_the_rest() -> None:
    a, b = token(), token()
    text = f"a={a}, b={b}, again {a}; object {secrets.token_hex(16)}"
    scrubbed, count = scrub_text(text)
    assert count == 3
    assert a not in scrubbed
    assert b not in scrubbed
    assert scrubbed.count(MARKER) == 3
    assert scrubbed.endswith(text.rsplit(" ", 1)[1])  # the object id survives


# ------------------------------------------------------------------------------- notebooks


def notebook_with(t: str) -> dict[str, Any]:
    """Every place an output can carry text, each holding ``t``; plus what must not change."""
    png = "iVBORw0KGgo" + "A" * 40
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            source="print(speckle_nb.client()._token)",
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text=f"{t}\n"),
                nbformat.v4.new_output("stream", name="stderr", text=["line 1\n", f"tok {t}\n"]),
                nbformat.v4.new_output(
                    "execute_result",
                    data={
                        "text/plain": f"'{t}'",
                        "text/html": [f"<b>{t}</b>"],
                        "application/json": {"creds": {"token": t, "list": [t]}},
                        "text/markdown": f"`{t}`",
                        "image/svg+xml": f"<svg><text>{t}</text></svg>",
                        "image/png": png,
                    },
                    metadata={"note": f"meta {t}"},
                    execution_count=1,
                ),
                nbformat.v4.new_output(
                    "display_data",
                    data={"text/plain": f"{t}", "application/vnd.custom+json": {"t": t}},
                ),
                nbformat.v4.new_output(
                    "error",
                    ename="InvalidTokenError",
                    evalue=f"token {t} is not valid",
                    traceback=[f"\x1b[0;31mInvalidTokenError\x1b[0m: token {t}", "other line"],
                ),
            ],
        ),
        nbformat.v4.new_code_cell(source=f'speckle_nb.use_token("{t}")'),  # typed by the user
        nbformat.v4.new_markdown_cell(source="no secrets here"),
    ]
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": {"m1": {"model_name": "X", "state": {"value": f"token {t}", "n": 3}}},
            "version_major": 2,
            "version_minor": 0,
        }
    }
    as_json: dict[str, Any] = json.loads(nbformat.writes(nb))
    return as_json


def test_scrub_notebook_removes_every_output_and_widget_state_copy() -> None:
    t = token()
    nb = notebook_with(t)
    original = copy.deepcopy(nb)
    scrubbed, report = scrub_notebook(nb)

    assert nb == original, "the input notebook was changed"
    text = json.dumps(scrubbed)
    outputs_and_state = json.dumps([scrubbed["cells"][0]["outputs"], scrubbed["metadata"]])
    assert t not in outputs_and_state
    assert report.widget_state == 1
    # stdout, stderr, 6 in execute_result (+1 metadata), 2 display_data, evalue + traceback
    assert report.outputs == 2 + 6 + 1 + 2 + 2
    assert report.removed == outputs_and_state.count(MARKER)
    # the user's source is left as typed (and counted), and so is everything else
    assert report.in_sources == 1
    assert scrubbed["cells"][1] == original["cells"][1]
    assert text.count(t) == 1
    execute_result = scrubbed["cells"][0]["outputs"][2]
    assert (
        execute_result["data"]["image/png"]
        == original["cells"][0]["outputs"][2]["data"]["image/png"]
    )
    assert execute_result["data"]["application/json"] == {
        "creds": {"token": MARKER, "list": [MARKER]}
    }
    assert scrubbed["cells"][0]["outputs"][4]["traceback"][0].startswith(
        "\x1b[0;31mInvalidTokenError\x1b[0m: token " + MARKER
    )
    # still a valid notebook
    nbformat.validate(nbformat.from_dict(scrubbed))


def test_a_clean_notebook_comes_back_unchanged_and_shared() -> None:
    nb = notebook_with(secrets.token_hex(16))  # an object id, not a token
    scrubbed, report = scrub_notebook(nb)
    assert report.removed == report.in_sources == 0
    assert scrubbed["cells"] is nb["cells"]
    assert scrubbed["metadata"] is nb["metadata"]


def test_the_hook_rewrites_notebook_models_and_logs_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = token()
    model = {"type": "notebook", "format": "json", "content": notebook_with(t)}
    with caplog.at_level(logging.WARNING):
        pre_save_hook(model=model, path="work/analysis.ipynb", contents_manager=None)
    assert t not in json.dumps(model["content"]["cells"][0])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("14 Speckle token(s)" in m and "work/analysis.ipynb" in m for m in warnings)
    assert any("cell source" in m for m in warnings)
    assert not any(t in m for m in warnings)


@pytest.mark.parametrize(
    "model",
    [
        {"type": "file", "format": "text", "content": "TOKEN = '" + "a" * 42 + "'"},
        {"type": "directory", "content": None},
        {"type": "notebook", "content": None},
        {"type": "notebook", "content": {"cells": "not a list", "metadata": []}},
        {"type": "notebook", "content": {"cells": [None, {"outputs": [None, 3, {"data": 5}]}]}},
    ],
)
def test_the_hook_leaves_other_models_alone_and_never_raises(model: dict[str, Any]) -> None:
    before = copy.deepcopy(model)
    pre_save_hook(model=model, path="x", contents_manager=None)
    assert model == before


# ------------------------------------------------------------------------------- on a real manager


@pytest.fixture
def manager(tmp_path: Path) -> FileContentsManager:
    return FileContentsManager(root_dir=str(tmp_path))


def test_registered_on_a_file_contents_manager_chained_with_a_configured_hook(
    manager: FileContentsManager, tmp_path: Path
) -> None:
    seen: list[str] = []

    def configured(model: dict[str, Any], path: str, contents_manager: Any, **kw: Any) -> None:
        seen.append(path)  # an admin's own hook (e.g. stripping outputs) keeps running

    manager.pre_save_hook = configured
    assert register_save_guard(manager) is True
    assert register_save_guard(manager) is False  # idempotent: loading twice adds nothing
    t = token()
    nb = notebook_with(t)
    manager.save({"type": "notebook", "format": "json", "content": nb}, "n.ipynb")

    on_disk = (tmp_path / "n.ipynb").read_text()
    assert seen == ["n.ipynb"]
    assert on_disk.count(t) == 1  # only the source the user typed
    assert MARKER in on_disk
    saved = nbformat.read(tmp_path / "n.ipynb", as_version=4)
    nbformat.validate(saved)
    # the checkpoint copies the scrubbed file
    manager.create_checkpoint("n.ipynb")
    checkpoints = list((tmp_path / ".ipynb_checkpoints").glob("*.ipynb"))
    assert checkpoints
    assert all(t not in p.read_text().split('"source"')[0] for p in checkpoints)


# ------------------------------------------------------------------------------- the whole path


@pytest.fixture(scope="module")
def dev() -> Iterator[Any]:
    from speckle_nb.devserver import DevServer

    with DevServer().running() as server:
        yield server


@pytest.mark.slow
@pytest.mark.kernel
def test_a_token_printed_in_a_real_kernel_is_not_in_the_saved_file(
    dev: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from kernelkit import WebSocketKernel
    from support.jupyter import JupyterServer, artifacts_dir

    root = tmp_path / "notebooks"
    logs = artifacts_dir(f"hardening-{request.node.name}")
    server = JupyterServer("server", root_dir=root, log_path=logs / "jupyter.log")
    server.extra_env.update(
        {
            "SPECKLE_SERVER_URL": dev.url,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "SPECKLE_NB_DATA_DIR": str(tmp_path / "remembered"),
            "SPECKLE_USERDATA_PATH": str(tmp_path / "desktop-accounts"),
        }
    )
    pat = dev.state.create_token(dev.demo_user.id, scopes=["profile:read", "streams:read"])
    cells = [
        "import speckle_nb\n"
        f"speckle_nb.use_token(open({str(tmp_path / 'pat')!r}).read(), server_url={dev.url!r})",
        "print(speckle_nb.client()._token)",  # the mistake this guard is for
        "speckle_nb.client()._token",  # as the cell's value (text/plain repr)
        "from IPython.display import HTML, JSON, display\n"
        "t = speckle_nb.client()._token\n"
        "display(HTML(f'<code>{t}</code>')); display(JSON({'token': t}))",
        "raise ValueError('the token is ' + speckle_nb.client()._token)",
    ]
    (tmp_path / "pat").write_text(pat)
    with server.running():
        kernel = WebSocketKernel(server.url, server.token)
        try:
            executions = [kernel.finish(kernel.start(code), timeout=60) for code in cells]
        finally:
            kernel.close()
        assert executions[0].error is None, executions[0].stderr
        assert executions[1].stdout.strip() == pat, "the cell did not print the session's token"
        assert executions[4].error is not None

        nb = nbformat.v4.new_notebook()
        for code, execution in zip(cells, executions, strict=True):
            outputs = []
            for msg in execution.messages:  # what a frontend turns into outputs
                kind = msg["header"]["msg_type"]
                if kind in ("stream", "display_data", "execute_result", "error"):
                    outputs.append(nbformat.v4.output_from_msg(msg))
            nb.cells.append(nbformat.v4.new_code_cell(source=code, outputs=outputs))
        model_text = nbformat.writes(nb)
        assert model_text.count(pat) >= 5, "the outputs do not hold the token as printed"

        log_mark = server.log_size()
        reply = server.api(
            "PUT",
            "api/contents/printed.ipynb",
            json={"type": "notebook", "format": "json", "content": json.loads(model_text)},
        )
        assert reply.status_code in (200, 201), reply.text

        on_disk = (root / "printed.ipynb").read_text()
        assert pat not in on_disk, (
            "the saved file holds the token: the extension does not register the save guard "
            "(register_save_guard(self.serverapp.contents_manager) in SpeckleNB.initialize_settings)"
        )
        assert on_disk.count(MARKER) >= 5
        nbformat.validate(nbformat.reads(on_disk, as_version=4))
        log = server.log_text(log_mark)
        assert "removed" in log
        assert "printed.ipynb" in log
        assert pat not in server.log_text()
