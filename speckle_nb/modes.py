"""Choosing how this kernel signs in: one table of ways, the first that applies wins.

=====================================  ==========  ===========================================
way (in order)                         mode        applies when
=====================================  ==========  ===========================================
the Jupyter server's extension         extension   the server that started the kernel answers
                                                   and has a Speckle app
the kernel's app, over a listener      loopback    ``SPECKLE_APP_ID`` & co, redirect on
                                                   ``http://localhost:<port>``, browser not
                                                   known to be elsewhere, port free
the kernel's app, pasted address       paste       ``SPECKLE_APP_ID`` & co
Speckle's built-in app, over listener  loopback    browser not known to be elsewhere, port
                                                   29355 free
Speckle's built-in app, pasted         paste       always (every Speckle server has it)
a personal access token                token       always
=====================================  ==========  ===========================================

Each way says why it does *not* apply (``why_not``); the chosen one's ``ModeChoice`` keeps
every skipped way's reason for the panel's *details*. The built-in app is ``connectrV3``
("Desktop Connectors", ``protocol §4.3``): public, secret = id, consent page shown, redirect
``http://localhost:29355`` — what Speckle's own C# SDK signs in with. Nothing here signs in:
``methods.py`` holds the ways' steps, ``signin.py`` drives the panel.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .methods import (
    ExtensionMethod,
    ListenerMethod,
    Mode,
    PasteMethod,
    SignInMethod,
    TokenMethod,
)

if TYPE_CHECKING:
    from .oauth import App

__all__ = [
    "BUILTIN_APP_ID",
    "BUILTIN_APP_NAME",
    "BUILTIN_REDIRECT_URL",
    "ENV_BUILTIN_APP",
    "Context",
    "Mode",
    "ModeChoice",
    "browser_location",
    "choose",
    "choose_mode",
    "read_context",
]

#: Speckle's built-in public app a kernel signs in with when nothing else is set up.
BUILTIN_APP_ID = "connectrV3"
BUILTIN_APP_NAME = "Desktop Connectors"
BUILTIN_REDIRECT_URL = "http://localhost:29355"
#: ``off`` (or ``0``, ``false``, ``no``) keeps kernels from using the built-in app: an admin
#: who wants only their own app (or tokens) used sets it in the kernels' environment.
ENV_BUILTIN_APP = "SPECKLE_NB_BUILTIN_APP"

Where = Literal["here", "elsewhere", "unknown"]


@dataclass(frozen=True)
class Context:
    """What the kernel knows when it picks a way to sign in."""

    #: The Speckle server a browser sign-in of the kernel goes to (the extension picks its own).
    server_url: str
    #: The server the user asked for (``sign_in(url)``, the panel's picker, SPECKLE_SERVER_URL).
    asked_server: str | None = None
    jupyter_url: str | None = None
    jupyter_source: str = ""
    #: The extension's answer to a ping (None: no extension answered).
    extension: Mapping[str, object] | None = None
    #: Why the extension is not used though it may answer (the page said so).
    extension_refused: str | None = None
    kernel_app: App | None = None
    kernel_app_problem: str | None = None
    kernel_redirect: str | None = None
    browser: Where = "unknown"
    browser_why: str = ""
    #: The value of SPECKLE_NB_BUILTIN_APP when it turns the built-in app off, else "".
    builtin_off: str = ""
    #: Ports a listener found taken when it tried (they are not probed again).
    busy_ports: frozenset[int] = frozenset()
    #: The pickup client of the extension's ping, handed to the extension way (else closed).
    pickup: object | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ModeChoice:
    """The chosen way, why (in words the panel shows up front) and why not the others."""

    method: SignInMethod
    reason: str
    #: Which app signs in and why, then each skipped way and its reason (the panel's details).
    details: tuple[str, ...] = ()
    #: Offer the paste field beside the listener (the browser may be on another computer).
    paste_too: bool = False
    builtin: bool = False
    #: Why the ways above this one were skipped, to build on when this one fails too.
    why: str = ""
    jupyter_url: str | None = None
    #: What the choice was made from, to choose again when something changes.
    context: Context | None = field(default=None, repr=False, compare=False)

    @property
    def mode(self) -> Mode:
        return self.method.mode

    @property
    def app(self) -> App | None:
        return self.method.app

    @property
    def redirect_url(self) -> str | None:
        return self.method.redirect_url


# ---------------------------------------------------------------------- where is the browser


def browser_location(
    jupyter_url: str | None, environ: Mapping[str, str] | None = None
) -> tuple[Where, str]:
    """Whether the browser showing this notebook runs on the kernel's computer, and why we
    think so. Only ``here`` lets a localhost redirect reach the kernel for sure."""
    env = os.environ if environ is None else environ
    if "google.colab" in sys.modules or env.get("COLAB_RELEASE_TAG"):
        return "elsewhere", "Google Colab runs this kernel on Google's computers"
    if any(env.get(name) for name in ("BINDER_LAUNCH_HOST", "BINDER_REQUEST", "BINDER_REPO_URL")):
        return "elsewhere", "Binder runs this kernel on its own computers"
    if env.get("JUPYTERHUB_SERVICE_URL") or env.get("JUPYTERHUB_API_URL"):
        return "elsewhere", "a JupyterHub runs this kernel on its server, not your computer"
    if jupyter_url:
        host = (urlsplit(jupyter_url).hostname or "").lower()
        if host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
            return "here", "the Jupyter server listens on this computer's loopback address"
        return "unknown", f"the Jupyter server at {jupyter_url} may be used from another computer"
    return "unknown", "the kernel cannot tell where your browser runs"


# ---------------------------------------------------------------------- the table


@dataclass(frozen=True)
class _Way:
    label: str
    why_not: Callable[[Context], str | None]
    build: Callable[[Context, str], ModeChoice]


def _extension_why_not(ctx: Context) -> str | None:
    if ctx.jupyter_url is None:
        return (
            "no Jupyter server with the speckle-nb extension started this kernel "
            "(VS Code, Colab, a console or plain IPython)"
        )
    if ctx.extension_refused:
        return ctx.extension_refused
    if ctx.extension is None:
        return f"the Jupyter server at {ctx.jupyter_url} has no working speckle-nb extension"
    if ctx.extension.get("app_configured") is False:
        return (
            f"the speckle-nb extension of the Jupyter server at {ctx.jupyter_url} has no "
            "Speckle app configured (its administrator can register one: "
            "docs/server-extension.md)"
        )
    return None


def _extension(ctx: Context, why: str) -> ModeChoice:
    from .pickup import PickupClient

    pickup = ctx.pickup
    assert isinstance(pickup, PickupClient)
    return ModeChoice(
        ExtensionMethod(pickup),
        f"Signing in through the Jupyter server at {ctx.jupyter_url} "
        f"(its speckle-nb extension answered; found via {ctx.jupyter_source}).",
        jupyter_url=ctx.jupyter_url,
    )


def _kernel_app_why_not(ctx: Context) -> str | None:
    if ctx.kernel_app_problem:
        return ctx.kernel_app_problem
    app = ctx.kernel_app
    if app is None:
        return "no Speckle app is configured for the kernel (SPECKLE_APP_ID, SPECKLE_APP_SECRET)"
    if ctx.asked_server is not None and app.server_url != ctx.asked_server:
        return (
            f"the kernel's app (SPECKLE_APP_ID) belongs to {app.server_url}, not {ctx.asked_server}"
        )
    return None


def _listener_why_not(redirect: str | None, ctx: Context) -> str | None:
    from .fallback import is_loopback_redirect
    from .listener import port_in_use

    if not redirect or not is_loopback_redirect(redirect):
        return (
            f"its redirect URL ({redirect or 'SPECKLE_REDIRECT_URL unset'}) is not on this computer"
        )
    if ctx.browser == "elsewhere":
        return f"your browser cannot reach this kernel's localhost: {ctx.browser_why}"
    port = urlsplit(redirect).port or 80
    if port in ctx.busy_ports or port_in_use(port):
        return (
            f"port {port} is in use (a Speckle desktop connector signing in, or another "
            "notebook?), so the kernel cannot listen there"
        )
    return None


def _kernel_listener_why_not(ctx: Context) -> str | None:
    return _kernel_app_why_not(ctx) or _listener_why_not(ctx.kernel_redirect, ctx)


def _kernel_listener(ctx: Context, why: str) -> ModeChoice:
    assert ctx.kernel_app is not None
    assert ctx.kernel_redirect is not None
    paste_too = ctx.browser != "here"
    return ModeChoice(
        ListenerMethod(ctx.kernel_app, ctx.kernel_redirect),
        f"Signing in with the kernel's app: {why}. Its redirect URL {ctx.kernel_redirect} is "
        "on this computer, so the kernel listens there for the sign-in.",
        paste_too=paste_too,
        why=why,
    )


def _kernel_paste(ctx: Context, why: str) -> ModeChoice:
    assert ctx.kernel_app is not None
    return ModeChoice(
        PasteMethod(ctx.kernel_app, ctx.kernel_redirect),
        f"Signing in with the kernel's app: {why}. After signing in, paste the address your "
        "browser lands on.",
        why=why,
    )


def _builtin_app(ctx: Context) -> App:
    from .oauth import App

    return App(ctx.server_url, BUILTIN_APP_ID, BUILTIN_APP_ID)


_CONSENT = (
    f"Speckle will ask you to authorize “{BUILTIN_APP_NAME}”: that is Speckle's own public "
    "app for desktop connectors, which needs no setup; it signs this notebook in with the "
    "same access a desktop connector gets."
)


def _builtin_why_not(ctx: Context) -> str | None:
    if ctx.builtin_off:
        return f"the built-in app is turned off here ({ENV_BUILTIN_APP}={ctx.builtin_off})"
    return None


def _builtin_listener_why_not(ctx: Context) -> str | None:
    return _builtin_why_not(ctx) or _listener_why_not(BUILTIN_REDIRECT_URL, ctx)


def _builtin_listener(ctx: Context, why: str) -> ModeChoice:
    paste_too = ctx.browser != "here"
    also = (
        " If your browser runs on another computer, that address will not load there: "
        "paste it into the field below instead."
        if paste_too
        else ""
    )
    return ModeChoice(
        ListenerMethod(_builtin_app(ctx), BUILTIN_REDIRECT_URL),
        f"Signing in to {ctx.server_url} with Speckle's built-in app: {why}. {_CONSENT} The "
        f"kernel listens on {BUILTIN_REDIRECT_URL} for the answer.{also}",
        paste_too=paste_too,
        builtin=True,
        why=why,
    )


def _builtin_paste(ctx: Context, why: str) -> ModeChoice:
    return ModeChoice(
        PasteMethod(_builtin_app(ctx), BUILTIN_REDIRECT_URL),
        f"Signing in to {ctx.server_url} with Speckle's built-in app: {why}. {_CONSENT} After "
        f"you authorize, your browser goes to {BUILTIN_REDIRECT_URL}/?access_code=…, a page "
        "that will not load (that is expected): copy that address from the address bar and "
        "paste it here.",
        builtin=True,
        why=why,
    )


def _token(ctx: Context, why: str) -> ModeChoice:
    return ModeChoice(TokenMethod(), f"Using a personal access token: {why}.", why=why)


_WAYS: tuple[_Way, ...] = (
    _Way("the Jupyter server's extension", _extension_why_not, _extension),
    _Way("the kernel's app over a listener", _kernel_listener_why_not, _kernel_listener),
    _Way("the kernel's app with a pasted address", _kernel_app_why_not, _kernel_paste),
    _Way(
        f"Speckle's built-in app ({BUILTIN_APP_ID}) over a listener",
        _builtin_listener_why_not,
        _builtin_listener,
    ),
    _Way(
        f"Speckle's built-in app ({BUILTIN_APP_ID}) with a pasted address",
        _builtin_why_not,
        _builtin_paste,
    ),
    _Way("a personal access token", lambda ctx: None, _token),
)


def choose(ctx: Context) -> ModeChoice:
    """The first way that applies, with every way that does not and why (for *details*)."""
    skipped: list[tuple[int, str, str]] = []
    chosen: int | None = None
    for index, way in enumerate(_WAYS):
        reason = way.why_not(ctx)
        if reason is None:
            chosen = index if chosen is None else chosen
        else:
            skipped.append((index, way.label, reason))
    assert chosen is not None  # the token way always applies
    why = _why([reason for index, _label, reason in skipped if index < chosen])
    choice = _WAYS[chosen].build(ctx, why)
    details = [_signs_in_with(choice, ctx)]
    details += [f"Not {label}: {reason}." for _index, label, reason in skipped]
    return dataclasses.replace(choice, details=tuple(details), context=ctx)


def _why(reasons: list[str]) -> str:
    """The skipped ways' reasons as one clause (duplicates dropped, kept short)."""
    unique = list(dict.fromkeys(reasons))[:3]
    if not unique:
        return "it is the first way that applies"
    return ", and ".join(unique)


def _signs_in_with(choice: ModeChoice, ctx: Context) -> str:
    if choice.mode == "extension":
        return (
            "Signs in with the Speckle app configured in the Jupyter server's extension "
            f"({(ctx.extension or {}).get('app_id') or 'its app'})."
        )
    if choice.mode == "token":
        return "Signs in with a personal access token you paste (no app)."
    app = choice.app
    assert app is not None
    if choice.builtin:
        return (
            f"Signs in with Speckle's built-in public app “{BUILTIN_APP_NAME}” ({BUILTIN_APP_ID}, "
            f"redirect {BUILTIN_REDIRECT_URL}) on {app.server_url}, because no app of your own "
            "is set up. An administrator can register one: docs/security.md."
        )
    return f"Signs in with the kernel's app {app.app_id} on {app.server_url} (SPECKLE_APP_ID)."


# ---------------------------------------------------------------------- reading the kernel


def read_context(
    server_url: str | None,
    *,
    default_server: str,
    extension_refused: str | None = None,
    probe: bool = True,
) -> Context:
    """What this kernel can reach: its Jupyter server and extension, its app, its browser."""
    from .discovery import find_jupyter_server
    from .fallback import kernel_app_from_env, redirect_url_from_env

    server = find_jupyter_server()
    info = None
    pickup = None
    if server is not None and probe and extension_refused is None:
        from .pickup import PickupClient

        pickup = PickupClient(server.url)
        info = pickup.ping_info()
        if info is None:
            pickup.close()
            pickup = None
    app: App | None = None
    problem: str | None = None
    try:
        app = kernel_app_from_env()
    except ConfigurationError as exc:
        problem = str(exc).rstrip(".")
    redirect = redirect_url_from_env(app.app_id) if app is not None else None
    browser, browser_why = browser_location(server.url if server else None)
    builtin = os.environ.get(ENV_BUILTIN_APP, "").strip()
    return Context(
        server_url=server_url or default_server,
        asked_server=server_url,
        jupyter_url=server.url if server else None,
        jupyter_source=server.source if server else "",
        extension=info,
        extension_refused=extension_refused,
        kernel_app=app,
        kernel_app_problem=problem,
        kernel_redirect=redirect,
        browser=browser,
        browser_why=browser_why,
        builtin_off=builtin if builtin.lower() in ("off", "0", "false", "no") else "",
        pickup=pickup,
    )


def choose_mode(
    server_url: str | None = None,
    *,
    default_server: str,
    extension_refused: str | None = None,
) -> ModeChoice:
    """Read the kernel's context and choose (see the table above)."""
    from .hub_source import hub_service_choice

    hub = hub_service_choice()
    if hub is not None:  # on a hub with the speckle-nb service, it alone holds the app
        return hub
    ctx = read_context(
        server_url, default_server=default_server, extension_refused=extension_refused
    )
    choice = choose(ctx)
    if ctx.pickup is not None and choice.mode != "extension":
        ctx.pickup.close()  # type: ignore[attr-defined]
        choice = dataclasses.replace(choice, context=dataclasses.replace(ctx, pickup=None))
    return choice
