"""Layer 5: headless Chromium (Debian's, through Playwright) on JupyterLab 4 and Notebook 7.

One browser per test module; one dev server per session (on ``localhost``); one Jupyter server per
frontend (on ``127.0.0.1``, base URL ``/a%40b/``), shared by that frontend's scenarios; a new
browser context (cookies, storage), fresh notebooks and fresh kernels per test. When a test
fails, every page it opened is screenshotted and the server logs of its time window are written
to ``artifacts/<test>/`` before anything is closed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# `support` lives in tests/; make it importable however pytest was started.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from browserkit import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    BrowserRun,
    Dev,
    Jupyter,
    LogCapture,
    spy_on_secrets,
)
from playwright.sync_api import Browser, sync_playwright  # noqa: E402
from support.jupyter import JupyterServer, artifacts_dir, free_port  # noqa: E402

from speckle_nb.devserver import DevOptions, DevServer  # noqa: E402

FRONTENDS = ("lab", "notebook")
#: Scopes of the app the Jupyter server signs in with.
APP_SCOPES = ("profile:read", "profile:email", "streams:read", "streams:write", "users:read")
#: Save widget state with the notebook: scenario 5 checks what that state holds.
FRONTEND_SETTINGS = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(node: pytest.Item) -> bool:
    """Failed, or failed as expected (an xfail's evidence shows the bug it stands for)."""
    return any(r.failed or hasattr(r, "wasxfail") for r in node.stash.get(_REPORTS, {}).values())


# pytest-jupyter (loaded by tests/conftest.py) has two autouse fixtures that would adopt
# Playwright's running event loop and fail closing it. This layer starts its Jupyter servers as
# subprocesses and runs no asyncio code of its own, so both are switched off here.
@pytest.fixture
def jp_asyncio_loop() -> None:
    return None


@pytest.fixture
def jp_server_cleanup() -> None:
    return None


# -- processes shared by the session (Chromium: by the module) -----------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Chromium, per test module: Playwright's sync API keeps an event loop marked running
    while it lives, which would break the asyncio fixtures of the suites that run after this
    one in the same session (pytest-jupyter's loop fixture takes the running loop)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}. Install Debian's build with "
            "`apt-get install -y chromium` (scripts/test.sh does); never `playwright install`.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            # Playwright turns the popup blocker off by default; a person's browser has it on,
            # and the panel must open its window inside the click to get past it.
            ignore_default_args=["--disable-popup-blocking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def dev() -> Iterator[Dev]:
    """The Speckle double, on ``localhost`` (Jupyter is on ``127.0.0.1``: another site)."""
    capture = LogCapture()
    logger = logging.getLogger("speckle_nb.devserver")
    previous_level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        with DevServer(options=DevOptions()).running() as server:
            wrapped = Dev(server=server, log=capture)
            spy_on_secrets(wrapped)
            yield wrapped
    finally:
        logger.removeHandler(capture)
        logger.setLevel(previous_level)


@pytest.fixture(scope="session", params=FRONTENDS)
def jupyter(
    request: pytest.FixtureRequest, dev: Dev, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Jupyter]:
    """JupyterLab 4 or Notebook 7 with the extension, configured for an app on the dev server."""
    flavor = request.param
    server = JupyterServer(
        flavor,
        # Every test's tmp_path lies under the base temp dir, so the server sees its notebooks.
        root_dir=tmp_path_factory.getbasetemp(),
        state_dir=tmp_path_factory.mktemp(f"jupyter-{flavor}-state"),
        log_path=artifacts_dir(f"browser-{flavor}") / "jupyter.log",
        port=free_port(),
        settings=FRONTEND_SETTINGS,
    )
    app = dev.state.register_app(
        f"speckle-nb browser tests ({flavor})", server.redirect_url(), APP_SCOPES
    )
    server.extra_env.update(
        SPECKLE_SERVER_URL=dev.url, SPECKLE_APP_ID=app.id, SPECKLE_APP_SECRET=app.secret
    )
    with server.running():
        status = server.api("GET", "speckle-nb/status")
        if status.status_code != 200:
            pytest.fail(
                f"the speckle_nb server extension does not answer on jupyter {flavor} "
                f"(GET speckle-nb/status: {status.status_code}); log {server.log_path}:\n"
                f"{server.log_tail()}",
                pytrace=False,
            )
        yield Jupyter(server=server, app=app)


# -- one test ---------------------------------------------------------------------------------


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``artifacts/<test>/``, emptied first so what it holds is this run's."""
    path = artifacts_dir(request.node.nodeid.split("::", 1)[-1])
    for child in path.iterdir():
        if child.is_file():
            child.unlink()
    return path


@pytest.fixture
def run(
    request: pytest.FixtureRequest, chromium: Browser, jupyter: Jupyter, dev: Dev, artifacts: Path
) -> Iterator[BrowserRun]:
    """This test's browser contexts; on failure they leave screenshots and logs behind."""
    browser_run = BrowserRun(chromium, jupyter, dev, artifacts)
    try:
        yield browser_run
    finally:
        try:
            if _failed(request.node):
                browser_run.leave_evidence()
        finally:
            browser_run.close()
            jupyter.server.shutdown_kernels()


@pytest.fixture
def dev_options(dev: Dev) -> Iterator[Any]:
    """The dev server's live switches; whatever a test changes is put back afterwards."""
    saved = dict(vars(dev.options))
    try:
        yield dev.options
    finally:
        for name, value in saved.items():
            setattr(dev.options, name, value)
