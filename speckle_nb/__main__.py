"""``speckle-nb demo`` and ``speckle-nb devserver``.

``demo`` runs the whole sign-in offline: the dev server (a Speckle double on loopback) with
a registered app whose redirect URL is this JupyterLab's callback, and JupyterLab on the
getting-started notebook, with the app settings in JupyterLab's environment only.

It stops everything it started — the dev server, JupyterLab and JupyterLab's kernels — on
Ctrl+C, SIGTERM and SIGHUP (a closed terminal). JupyterLab runs in a session of its own, so a
terminal's Ctrl+C reaches only the demo (JupyterLab's own Ctrl+C handler would stop to ask
"Shutdown this Jupyter server (y/[n])?") and the demo stops it in order: see ``_children``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ._names import ENV_APP_ID, ENV_APP_SECRET, ENV_SERVER_URL

DEMO_SCOPES = ["streams:read", "profile:read", "profile:email", "users:read"]
NOTEBOOK = "getting-started.ipynb"
#: What the demo needs beyond the package itself: the ``demo`` extra.
DEMO_MODULES = {"jupyterlab": "JupyterLab", "ipykernel": "ipykernel"}
#: The signals that mean "stop the demo" (SIGHUP: the terminal closed; not on Windows).
STOP_SIGNALS = [
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
]


class _Stop(BaseException):
    """Raised in the main thread by a stop signal, so every ``with``/``finally`` unwinds.

    A BaseException like KeyboardInterrupt: no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def missing_demo_modules() -> list[str]:
    """The names of what the demo needs and this environment lacks."""
    return [
        name for module, name in DEMO_MODULES.items() if importlib.util.find_spec(module) is None
    ]


def _free_port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else one the OS picks."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def _demo_notebook() -> Path:
    """The getting-started notebook: from a source checkout, or the copy shipped in the wheel."""
    for candidate in (
        Path(__file__).resolve().parent.parent / "notebooks" / NOTEBOOK,
        Path(__file__).resolve().parent / "_demo" / NOTEBOOK,
    ):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{NOTEBOOK} is missing from this installation")


def lab_command(port: int, notebook_dir: Path, token: str, *, open_browser: bool) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebook_dir}",
        f"--LabApp.default_url=/lab/tree/{NOTEBOOK}",
        "--ServerApp.port_retries=0",
    ]
    if not open_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI run as root
    return command


def run_demo(args: argparse.Namespace) -> int:
    missing = missing_demo_modules()
    if missing:
        # One line that says what to do, instead of Jupyter's "command not found" usage dump.
        print(
            f"speckle-nb demo needs {' and '.join(missing)}, not installed in this Python. Install: "
            'pip install "speckle-nb[demo]" (in a checkout: pip install -e ".[demo]")',
            file=sys.stderr,
        )
        return 2
    previous = {signum: signal.signal(signum, _raise_stop) for signum in STOP_SIGNALS}
    try:
        return _run_demo(args)
    except _Stop as stop:
        # Ctrl+C is the documented way to stop; other signals keep the shell's convention.
        return 0 if stop.signum == signal.SIGINT else 128 + stop.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_demo(args: argparse.Namespace) -> int:
    from ._children import stop_tree
    from .devserver import DevOptions, DevServer

    jupyter_port = _free_port(args.port)
    workdir = Path(args.notebook_dir or tempfile.mkdtemp(prefix="speckle-nb-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / NOTEBOOK
    if not target.exists():
        shutil.copyfile(_demo_notebook(), target)

    options = DevOptions(latency=args.latency, consent_delay=args.consent_delay)
    with DevServer(port=args.speckle_port, options=options).running() as dev:
        token = secrets.token_urlsafe(24)
        env = os.environ | {ENV_SERVER_URL: dev.url}
        if args.app:
            redirect = f"http://127.0.0.1:{jupyter_port}/speckle-nb/callback"
            app = dev.state.register_app("speckle-nb demo", redirect, DEMO_SCOPES, trusted=False)
            # Only the Jupyter process gets the secret; it is never printed.
            env |= {ENV_APP_ID: app.id, ENV_APP_SECRET: app.secret}
        else:  # the zero-configuration path: Speckle's built-in app, as on a fresh machine
            env = {k: v for k, v in env.items() if not k.startswith("SPECKLE_APP_")}
        print(
            "speckle-nb demo — everything runs on this machine, offline.\n"
            f"  Speckle dev server:  {dev.url}\n"
            f"  sign in as:          {dev.demo_user.email} / speckle-demo\n"
            f"  (also alice@example.org / alice-pass, bob@example.org / bob-pass)\n"
            f"  JupyterLab:          http://127.0.0.1:{jupyter_port}/lab/tree/{NOTEBOOK}"
            f"?token={token}\n"
            f"  notebook folder:     {workdir}\n"
            "Open the JupyterLab link, run the first cell and click 'Sign in to Speckle'.\n"
            "Press Ctrl+C to stop.",
            flush=True,
        )
        command = lab_command(jupyter_port, workdir, token, open_browser=args.browser)
        # Its own session: a terminal's Ctrl+C reaches the demo only, which then stops
        # JupyterLab and its kernels in order. stdin closed: it has no prompt to show.
        lab: subprocess.Popen[bytes] | None = None
        try:
            lab = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, start_new_session=True
            )
            return lab.wait()
        finally:
            print("speckle-nb demo: stopping JupyterLab and the dev server…", flush=True)
            # A second Ctrl+C while stopping must not leave JupyterLab half-stopped.
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
            if lab is not None:
                stop_tree(lab)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["devserver"]:
        from .devserver.cli import run_devserver_cli

        return run_devserver_cli(argv[1:])

    parser = argparse.ArgumentParser(
        prog="speckle-nb", description="Sign in to Speckle from Jupyter notebooks."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the dev server and JupyterLab on the getting-started notebook"
    )
    demo.add_argument("--port", type=int, default=8888, help="JupyterLab port (default 8888)")
    demo.add_argument("--speckle-port", type=int, default=0, help="dev server port (0: any)")
    demo.add_argument("--notebook-dir", help="where to put the notebook (default: a temp dir)")
    demo.add_argument("--latency", action="store_true", help="answer as slowly as a real server")
    demo.add_argument(
        "--consent-delay", type=float, default=0.0, help="pause on the consent page like Speckle"
    )
    demo.add_argument(
        "--browser", action=argparse.BooleanOptionalAction, default=True, help="open a browser"
    )
    demo.add_argument(
        "--app",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="--no-app: register no app, so the kernel signs in with Speckle's built-in "
        "'Desktop Connectors' app (the zero-configuration path)",
    )
    commands.add_parser(
        "devserver", help="run only the Speckle dev server (see `speckle-nb devserver --help`)"
    )
    args = parser.parse_args(argv)
    return run_demo(args)


if __name__ == "__main__":
    raise SystemExit(main())
