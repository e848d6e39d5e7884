"""The Jupyter server extension: configuration, start-up log, and the routes it adds.

Enabled on install by ``jupyter-config/jupyter_server_config.d/speckle_nb.json``. Configure it
as ``c.SpeckleNB.<trait>`` in ``jupyter_server_config.py`` or with the environment variables
named beside each trait (the config file wins). ``docs/server-extension.md`` lists them all.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Float, Instance, Int, List, Unicode, default, validate

from .._names import (
    DEFAULT_SERVER_URL,
    ENV_ALLOWED_SERVERS,
    ENV_APP_ID,
    ENV_APP_SECRET,
    ENV_JUPYTER_PID,
    ENV_JUPYTER_URL,
    ENV_REDIRECT_URL,
    KERNEL_KEY_ENV,
    env_text,
    server_url_setting,
)
from .core import MIN_KERNEL_KEY
from .flows import MAX_FLOW_LIFETIME
from .handlers import ROUTES, SERVICE_SETTING
from .redirect import hub_env, named_server_problem, startup_hint
from .registered import MAX_REDIRECT_URL_CHARS, too_long_message
from .save_guard import register_save_guard
from .service import Settings, SignInService

__all__ = ["DEFAULT_SERVER_URL", "SpeckleNB"]


#: What kernels started after the server is bound inherit (see ``speckle_nb.discovery``).

_WILDCARD = {"", "0.0.0.0", "*"}  # noqa: S104 - names, not a bind


class SpeckleNB(ExtensionApp):
    """Sign in to Speckle from Jupyter: start, callback and result pickup routes."""

    name = "speckle_nb"
    description = "Sign in to Speckle from a notebook and get a ready GraphQL client."
    load_other_extensions = True

    server_url = Unicode(
        help="The Speckle server users sign in to, e.g. https://app.speckle.systems. "
        "Environment: SPECKLE_SERVER_URL.",
    ).tag(config=True)

    @default("server_url")
    def _server_url_default(self) -> str:
        return server_url_setting()

    app_id = Unicode(
        help="The id of the Speckle app registered for this Jupyter deployment (the server's "
        "Developer settings → Applications). Empty: sign-in is off and /start says what to set. "
        "Environment: SPECKLE_APP_ID.",
    ).tag(config=True)

    @default("app_id")
    def _app_id_default(self) -> str:
        return env_text(ENV_APP_ID)

    app_secret = Unicode(
        help="The app's secret. It stays in the Jupyter server process: the code exchange and "
        "token refresh happen here, never in a kernel or the browser. Environment: "
        "SPECKLE_APP_SECRET.",
    ).tag(config=True)

    @default("app_secret")
    def _app_secret_default(self) -> str:
        return env_text(ENV_APP_SECRET)

    redirect_url = Unicode(
        help="The redirect URL registered on the Speckle app, when it cannot be derived: "
        "behind a proxy that rewrites paths, or on a named JupyterHub server. Empty: derived "
        "from the request ({origin}{base_url}speckle-nb/callback, or under JupyterHub "
        "{hub}/hub/user-redirect/speckle-nb/callback). Environment: SPECKLE_REDIRECT_URL.",
    ).tag(config=True)

    @default("redirect_url")
    def _redirect_url_default(self) -> str:
        return env_text(ENV_REDIRECT_URL)

    allowed_servers = List(
        Unicode(),
        help="More Speckle servers a notebook may ask to sign in to (sign_in(server_url=...)), "
        "besides server_url. Each must know the same app id and secret. Environment: "
        "SPECKLE_ALLOWED_SERVERS (comma-separated).",
    ).tag(config=True)

    @default("allowed_servers")
    def _allowed_servers_default(self) -> list[str]:
        return [s.strip() for s in env_text(ENV_ALLOWED_SERVERS).split(",") if s.strip()]

    flow_lifetime = Float(
        MAX_FLOW_LIFETIME,
        help="Seconds a started sign-in may take before it expires (at most 600: Speckle's "
        "access codes live 10 minutes).",
    ).tag(config=True)

    @validate("flow_lifetime")
    def _check_flow_lifetime(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if value <= 0:
            raise ValueError("c.SpeckleNB.flow_lifetime must be positive")
        if value > MAX_FLOW_LIFETIME:
            self.log.warning(
                "speckle-nb: flow_lifetime %g s capped at %g s (Speckle's access code life)",
                value,
                MAX_FLOW_LIFETIME,
            )
        return min(value, MAX_FLOW_LIFETIME)

    result_lifetime = Float(
        120.0,
        help="Seconds a finished sign-in waits for its kernel to pick it up; an unclaimed "
        "token is then revoked.",
    ).tag(config=True)

    max_flows = Int(
        1000,
        help="At most this many sign-ins (and as many results) are held in memory; the oldest "
        "is ended first.",
    ).tag(config=True)

    pickup_hold = Float(
        30.0,
        help="Longest time a kernel's pickup request is held open waiting for a result "
        "(a long poll: a JupyterHub single-user server logs every request).",
    ).tag(config=True)

    trust_forwarded_headers = Bool(
        None,
        allow_none=True,
        help="Honour X-Forwarded-Proto/-Host and Forwarded when deriving the browser's origin "
        "(redirect URL, Secure cookie). Default: ServerApp.trust_xheaders (on under "
        "JupyterHub).",
    ).tag(config=True)

    http_timeout = Float(
        15.0,
        help="Seconds to wait for the Speckle server (probe, code exchange, activeUser, refresh).",
    ).tag(config=True)

    http_transport = Instance(
        httpx.AsyncBaseTransport,
        allow_none=True,
        help="The httpx transport for requests to Speckle (tests pass a MockTransport). "
        "None: real network.",
    ).tag(config=True)

    service = Instance(SignInService, allow_none=True, help="The sign-in logic (set at start).")

    _purger: PeriodicCallback | None = None

    def _trusts_forwarded(self) -> bool:
        if self.trust_forwarded_headers is not None:
            return bool(self.trust_forwarded_headers)
        return bool(getattr(self.serverapp, "trust_xheaders", False))

    def _settings(self) -> Settings:
        assert self.serverapp is not None
        return Settings(
            server_url=self.server_url,
            app_id=self.app_id.strip(),
            app_secret=self.app_secret.strip(),
            base_url=self.serverapp.base_url,
            redirect_url=self.redirect_url.strip(),
            allowed_servers=tuple(self.allowed_servers),
            hub=hub_env(os.environ),
            flow_lifetime=self.flow_lifetime,
            result_lifetime=self.result_lifetime,
            max_flows=self.max_flows,
            pickup_hold=self.pickup_hold,
            trust_forwarded_headers=self._trusts_forwarded(),
            http_timeout=self.http_timeout,
        )

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        log = self.serverapp.log
        settings = self._settings()
        # Kernels inherit this process's environment, and only this process needs the
        # secret. (Not a boundary against the user's own code: see docs/security.md.)
        os.environ.pop(ENV_APP_SECRET, None)
        # Every kernel this server starts inherits the kernel key, and only those: it is what
        # pickup and refresh ask for (see docs/security.md). Set before any kernel starts.
        # One the server was started with is kept (an admin's, so that kernels outliving a
        # restart stay this server's kernels); else a fresh random one.
        inherited = os.environ.get(KERNEL_KEY_ENV, "").strip()
        if inherited and len(inherited) < MIN_KERNEL_KEY:
            log.warning(
                "speckle-nb: ignoring %s from the environment: shorter than %d characters; "
                "using a random key",
                KERNEL_KEY_ENV,
                MIN_KERNEL_KEY,
            )
            inherited = ""
        self.service = SignInService(
            settings, log=log, transport=self.http_transport, kernel_key=inherited or None
        )
        os.environ[KERNEL_KEY_ENV] = self.service.kernel_key
        self.settings[SERVICE_SETTING] = self.service
        # Keeps a token printed by mistake out of saved notebooks; chains with other hooks.
        register_save_guard(self.serverapp.contents_manager)
        self._log_startup(settings)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # a server started as usual: _start_jupyter_server_extension starts the purge
        else:
            # Embedded in a running loop (pytest-jupyter, some hosts) the start hook may never
            # run; purging must not depend on it.
            self._start_purger()

    def _log_startup(self, settings: Settings) -> None:
        assert self.serverapp is not None
        log = self.serverapp.log
        hint, exact = startup_hint(
            configured=settings.redirect_url, base_url=settings.base_url, hub=settings.hub
        )
        if not settings.app_id:
            log.warning(
                "speckle-nb: no Speckle app configured (set SPECKLE_APP_ID and "
                "SPECKLE_APP_SECRET, or c.SpeckleNB.app_id/app_secret); sign-in is off"
            )
        problem = named_server_problem(configured=settings.redirect_url, hub=settings.hub)
        if problem:
            log.warning("speckle-nb: %s", problem)
        # Speckle refuses a redirect URL over 100 characters: say so now, not after a sign-in.
        # A template's origin is unknown; its shortest possible form is "http://a…".
        shortest = len(hint) if exact else len("http://a") + len(hint.split(">", 1)[-1])
        if shortest > MAX_REDIRECT_URL_CHARS:
            log.warning(
                "speckle-nb: %s",
                too_long_message(hint, at_least=None if exact else shortest),
            )
        log.info(
            "speckle-nb: the Speckle app on %s must have this redirect URL registered%s: %s",
            self.service.allowed_servers[0] if self.service else settings.server_url,
            "" if exact else " (template; GET speckle-nb/status shows the exact URL)",
            hint,
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(ROUTES)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Once the server is bound, tell kernels started from now on where it is, and
        start clearing expired sign-ins (an unclaimed result's token is revoked) on a timer
        rather than only when a request happens to touch the store."""
        self._start_purger()
        url = loopback_url(serverapp)
        if url is None:
            self.log.info("speckle-nb: not publishing a URL for kernels (UNIX socket)")
            return
        os.environ[ENV_JUPYTER_URL] = url
        os.environ[ENV_JUPYTER_PID] = str(os.getpid())

    def _start_purger(self) -> None:
        if self.service is None or self._purger is not None:
            return
        s = self.service.settings
        every = min(30.0, s.flow_lifetime / 2, s.result_lifetime / 2)
        # Runs on the server's event loop, so the store's revocations are scheduled there.
        self._purger = PeriodicCallback(self.service.store.purge, 1000 * every)
        self._purger.start()

    async def stop_extension(self) -> None:
        if self._purger is not None:
            self._purger.stop()
            self._purger = None
        if self.service is not None:
            if os.environ.get(KERNEL_KEY_ENV) == self.service.kernel_key:
                del os.environ[KERNEL_KEY_ENV]
            await self.service.close()  # last try at pending revocations, closes the transport


def loopback_url(serverapp: Any) -> str | None:
    """The server's own URL for a kernel on this machine (base URL included, ending in /).

    Like ``ServerApp.connection_url``, but a wildcard bind becomes the loopback address, which
    always reaches the server from its own machine, rather than the host name.
    """
    if getattr(serverapp, "sock", ""):
        return None
    ip = str(serverapp.ip or "")
    if ip in _WILDCARD or ip == "localhost":
        host = "127.0.0.1"
    elif ip == "::":
        host = "[::1]"
    else:
        host = f"[{ip}]" if ":" in ip else ip
    scheme = "https" if getattr(serverapp, "certfile", "") else "http"
    base = serverapp.base_url if serverapp.base_url.endswith("/") else serverapp.base_url + "/"
    return f"{scheme}://{host}:{serverapp.port}{base}"
