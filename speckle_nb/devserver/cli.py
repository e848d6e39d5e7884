"""``speckle-nb devserver``: run the dev server in the foreground for a local demo."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TextIO

from .app import DevServer
from .messages import RegistrationError
from .options import DevOptions
from .state import SEED_USERS, DevState


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speckle-nb devserver",
        description="Run a Speckle-compatible server on loopback for demos and tests.",
    )
    parser.add_argument("--port", type=int, default=3000, help="port on localhost (0: any free)")
    parser.add_argument(
        "--latency", action="store_true", help="answer as slowly as a real server (bcrypt)"
    )
    parser.add_argument("--s256", action="store_true", help="serve the unreleased /oauth/token")
    parser.add_argument(
        "--coop", action="store_true", help="send Cross-Origin-Opener-Policy: same-origin"
    )
    parser.add_argument(
        "--consent-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds the success page waits before redirecting (the real page: 2)",
    )
    parser.add_argument(
        "--sso-lapsed",
        action="store_true",
        help="add a workspace with SSO (slug acme-sso, two demo projects) whose SSO "
        "session has lapsed: its projects are hidden and project(id) answers "
        "SSO_SESSION_MISSING_OR_EXPIRED_ERROR",
    )
    parser.add_argument(
        "--app-redirect",
        metavar="URL",
        help="register an app with this redirect URL and print its id and secret",
    )
    return parser


def run_devserver_cli(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    options = DevOptions(
        latency=args.latency,
        oauth_s256=args.s256,
        coop=args.coop,
        consent_delay=args.consent_delay,
        sso_session_lapsed=args.sso_lapsed,
    )
    state = DevState()
    if args.sso_lapsed:
        state.seed_sso_workspace()
    app = None
    if args.app_redirect:
        try:
            app = state.register_app(
                "speckle-nb local demo",
                args.app_redirect,
                ["streams:read", "streams:write", "profile:read", "profile:email", "users:read"],
            )
        except RegistrationError as err:
            stream.write(f"error: {err.message}\n")
            return 2

    def banner(server: DevServer) -> None:
        lines = [f"Speckle dev server on {server.url}", "Users (email / password):"]
        lines += [f"  {email} / {password}  ({name})" for email, password, name, _ in SEED_USERS]
        if app is not None:
            # The one place a secret is printed: a throwaway app on a local dev server
            # that the developer just asked for, and needs to configure their client.
            lines += [
                f"App: id {app.id}  secret {app.secret}",
                f"     redirect URL {app.redirect_url}",
            ]
        lines.append("Built-in apps (secret = id): sca, sdas, connectrV3, explorer, …")
        if args.sso_lapsed:
            lines.append("SSO session lapsed for workspace acme-sso (its projects are hidden)")
        stream.write("\n".join(lines) + "\nCtrl+C to stop.\n")
        stream.flush()

    DevServer.serve_forever(args.port, options=options, state=state, ready=banner)
    return 0
