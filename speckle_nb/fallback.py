"""Signing in without the server extension (VS Code, Colab, plain IPython): the kernel does it all.

Two ways the access code reaches the kernel (``design.md``, "Without a server extension"):

- **loopback** — the app's redirect URL is ``http://localhost:<port>…`` (``sca``, ``sdas``,
  ``connectrV3`` or an app registered that way) and browser and kernel share a machine:
  ``LoopbackReceiver`` (``listener.py``) listens on ``127.0.0.1:<port>`` for the one redirect;
- **paste** — the user signs in, lands on a page that may not even load, and pastes the
  address from the browser's address bar (or its query, or the bare code).

Either way::

    challenge, url = prepare_fallback_sign_in(app)        # probes S256, checks the secret
    # ... the user opens ``url`` and signs in ...
    creds = complete_from_callback(app, challenge, params_or_pasted_text, source="paste")

``methods.ListenerMethod`` and ``methods.PasteMethod`` string these steps together the way
the panel uses them (listening starts at the click, after the URL exists). The app comes from the kernel's
environment (``kernel_app_from_env``): ``SPECKLE_SERVER_URL``, ``SPECKLE_APP_ID``,
``SPECKLE_APP_SECRET`` and ``SPECKLE_REDIRECT_URL``.

An access code is burned by its first exchange attempt, so it is exchanged exactly once,
with the challenge of the sign-in that asked for it. Pasted text and access codes never
appear in a message, a log line or the loopback page.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import httpx

from ._names import (
    ENV_APP_ID,
    ENV_APP_SECRET,
    ENV_REDIRECT_URL,
    env_text,
    server_url_setting,
)
from .credentials import Credentials, User
from .errors import (
    ConfigurationError,
    MissingScopeError,
    SignInDeniedError,
    SignInError,
    SpeckleError,
)
from .oauth import (
    App,
    AuthClient,
    CallbackParams,
    Challenge,
    Method,
    authorize_url,
    new_challenge,
    parse_callback_url,
)

if TYPE_CHECKING:
    from .graphql import SpeckleClient

__all__ = [
    "BUILTIN_REDIRECT_URLS",
    "complete_from_callback",
    "is_loopback_redirect",
    "kernel_app_from_env",
    "parse_pasted",
    "prepare_fallback_sign_in",
    "redirect_url_from_env",
]

log = logging.getLogger(__name__)

#: Speckle's built-in connector apps with a localhost redirect (``speckle-protocol.md`` §4.3).
#: Their secret equals their id, and their redirect URL is fixed in the server's code.
BUILTIN_REDIRECT_URLS: Mapping[str, str] = {
    "sca": "http://localhost:29363",
    "sdas": "http://localhost:29364",
    "connectrV3": "http://localhost:29355",
}

#: The hosts a loopback redirect URL may name; the listener (``listener.py``) answers for each.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
_BARE_CODE = re.compile(r"[0-9a-fA-F]{42}")


# --------------------------------------------------------------------------- configuration


def kernel_app_from_env(environ: Mapping[str, str] | None = None) -> App | None:
    """The app the kernel signs in with, from ``SPECKLE_APP_ID`` & co; ``None`` without an id.

    ``SPECKLE_SERVER_URL`` defaults to app.speckle.systems. For Speckle's built-in
    localhost apps the secret defaults to the id (the server defines it so). Raises
    ``ConfigurationError`` for a malformed server URL or app id.
    """
    env = os.environ if environ is None else environ
    app_id = env_text(ENV_APP_ID, env)
    if not app_id:
        return None
    server_url = server_url_setting(env)
    secret = env_text(ENV_APP_SECRET, env) or None
    if secret is None and app_id in BUILTIN_REDIRECT_URLS:
        secret = app_id
    try:
        return App(server_url, app_id, secret)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (read from SPECKLE_SERVER_URL / SPECKLE_APP_ID)") from None


def redirect_url_from_env(
    app_id: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The app's registered redirect URL: ``SPECKLE_REDIRECT_URL``, else a built-in app's.

    ``app_id`` defaults to ``SPECKLE_APP_ID``. ``None`` when neither says.
    """
    env = os.environ if environ is None else environ
    explicit = env_text(ENV_REDIRECT_URL, env)
    if explicit:
        return explicit
    app_id = app_id if app_id is not None else env_text(ENV_APP_ID, env)
    return BUILTIN_REDIRECT_URLS.get(app_id or "")


def is_loopback_redirect(url: str) -> bool:
    """True for ``http://localhost[:port]…`` and ``http://127.0.0.1[:port]…``.

    Only plain http: a browser reaches our listener without TLS. ``[::1]`` is not
    accepted because the listener binds 127.0.0.1 only.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme.lower() == "http" and (parts.hostname or "") in LOOPBACK_HOSTS


# --------------------------------------------------------------------------- the sign-in


def prepare_fallback_sign_in(
    app: App,
    *,
    method: Method | None = None,
    transport: httpx.BaseTransport | None = None,
) -> tuple[Challenge, str]:
    """A fresh challenge and the authorize URL to open for it.

    Without ``method`` the server is probed (``GET /oauth/token``): S256 where it has the
    newer endpoint, the plain challenge otherwise. The plain exchange needs the app secret,
    so its absence is reported *now*, before the user signs in and burns a code.
    """
    if method is None:
        with AuthClient(transport=transport) as auth:
            method = "S256" if auth.supports_s256(app.server_url) else "plain"
    if method == "plain" and not app.app_secret:
        raise ConfigurationError(
            f"The app secret for {app.app_id!r} on {app.server_url} is not set, and this "
            "server needs it to finish a sign-in. Set SPECKLE_APP_SECRET, or use a personal "
            "access token (`%speckle_token set`).",
            server_url=app.server_url,
        )
    challenge = new_challenge(method)
    return challenge, authorize_url(app, challenge)


def parse_pasted(text: str, *, redirect_url: str | None = None) -> CallbackParams:
    """What the user pasted: the landing URL, its query string, or the bare 42-hex code.

    Raises ``SignInError`` when there is neither a code nor a denial in it. The message
    says what to paste and never repeats the pasted text (it may hold a secret).
    """
    cleaned = text.strip().strip("\"'<>").strip()
    if _BARE_CODE.fullmatch(cleaned):
        return CallbackParams(access_code=cleaned)
    params = parse_callback_url(cleaned.split("#", 1)[0])
    if params.denied or params.access_code:
        return params
    landing = f"{redirect_url}?access_code=…" if redirect_url else "…?access_code=…"
    raise SignInError(
        "The pasted text has no `access_code=` in it. After you allow access, your browser "
        f"goes to an address like {landing} (the page itself may fail to load — that is "
        "fine): copy that whole address from the address bar and paste it. If too much time "
        "has passed, start the sign-in again."
    )


def complete_from_callback(
    app: App,
    challenge: Challenge,
    params: CallbackParams | str,
    *,
    source: Literal["paste", "loopback"],
    transport: httpx.BaseTransport | None = None,
    redirect_url: str | None = None,
) -> Credentials:
    """Exchange the callback's access code (once) and fetch who signed in.

    ``params`` is a parsed callback or the text the user pasted (see ``parse_pasted``).
    Raises ``SignInDeniedError`` when the user pressed Deny, ``SignInError`` when there is
    no code, ``TokenExchangeError`` with the server's words when the exchange is refused
    (a code used before, expired, a challenge from another sign-in…).
    """
    if isinstance(params, str):
        params = parse_pasted(params, redirect_url=redirect_url)
    if params.denied:
        raise SignInDeniedError(
            f"Access was denied on {app.server_url} (the Deny button), so nobody is signed "
            "in. Start the sign-in again and choose Authorize.",
            server_url=app.server_url,
        )
    if not params.access_code:
        raise SignInError(
            f"{app.server_url} sent the browser back without an access code. Start the "
            "sign-in again.",
            server_url=app.server_url,
        )
    from .graphql import SpeckleClient  # lazy: not needed to import this module

    with AuthClient(transport=transport) as auth:
        pair = auth.exchange(app, params.access_code, challenge)
        user: User | None
        try:
            with SpeckleClient(app.server_url, pair.token, transport=transport) as client:
                try:
                    user = client.active_user()
                except MissingScopeError:
                    user = None  # an app without profile:read: signed in, but nameless
                scopes = _app_scopes(client, app.app_id)
        except BaseException:
            # Nobody will hold this token: revoke it rather than leave it valid for a century.
            with contextlib.suppress(SpeckleError):
                auth.logout(app.server_url, pair.token, pair.refresh_token)
            raise
    return Credentials(
        server_url=app.server_url,
        token=pair.token,
        user=user,
        refresh_token=pair.refresh_token,
        scopes=scopes,
        source=source,
        app_id=app.app_id,
    )


_APP_SCOPES_QUERY = "query AppScopes($id: String!) { app(id: $id) { scopes { name } } }"


def _app_scopes(client: SpeckleClient, app_id: str) -> tuple[str, ...]:
    """The scopes an app token carries: all of its app's (Speckle has no per-request scopes).

    Best effort: ``()`` when the server does not say.
    """
    try:
        data = client.execute(_APP_SCOPES_QUERY, {"id": app_id})
    except SpeckleError as exc:
        log.debug("Could not read the scopes of app %s: %s", app_id, type(exc).__name__)
        return ()
    app = data.get("app")
    scopes = app.get("scopes") if isinstance(app, Mapping) else None
    if not isinstance(scopes, list):
        return ()
    return tuple(
        str(s["name"]) for s in scopes if isinstance(s, Mapping) and isinstance(s.get("name"), str)
    )
