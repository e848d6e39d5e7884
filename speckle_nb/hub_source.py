"""The kernel's side of speckle-nb on JupyterHub: credentials from the hub, never a secret.

Two hub setups reach a kernel through its environment (``speckle_nb.hub.configure`` sets it on
the single-user servers, and kernels inherit it with ``JUPYTERHUB_API_TOKEN``, a token of the
hub user who owns the server):

``SPECKLE_NB_HUB_SERVICE_URL``
    The ``speckle-nb`` hub service signs in from notebooks. The panel's button opens the
    service's ``start`` (on the hub's origin, next to ``/user/<name>/``), and the kernel picks
    the result up from the service, proving who it is with its hub token and the request's
    pickup secret: ``hub_service_choice()`` is a ``ModeChoice`` the panel uses as it uses the
    Jupyter server extension. Refreshes go through the service (it holds the app secret).
``SPECKLE_NB_HUB_LOGIN``
    Speckle is the hub's login: the hub keeps the user's tokens in ``auth_state`` and renews
    them (``refresh_user``). The kernel reads its own user's at ``GET {api}/users/<name>``
    (``admin:auth_state!user`` in the server role), so ``speckle_nb.client()`` works in the
    first cell, with no click.

Only the standard library and httpx here: this runs in every kernel on a hub.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from . import errors
from .credentials import Credentials, User, normalize_server_url
from .methods import ExtensionMethod
from .pickup import PickupClient, _verify

if TYPE_CHECKING:
    from .methods import Flow
    from .modes import ModeChoice
    from .oauth import TokenPair
    from .session import Session

__all__ = [
    "HubService",
    "HubServiceMethod",
    "hub_login_credentials",
    "hub_service",
    "hub_service_choice",
    "refresh_via_hub",
    "sign_out_line",
]

SERVICE_ENV = "SPECKLE_NB_HUB_SERVICE_URL"
LOGIN_ENV = "SPECKLE_NB_HUB_LOGIN"
SERVICE_RESTARTED = (
    "The speckle-nb hub service restarted during the sign-in, so it expired. Click Try again "
    "(or run speckle_nb.sign_in() again)."
)
RELOGIN = (
    "Log in to JupyterHub again (File → Log Out, then log in with Speckle); new kernels are "
    "then signed in by themselves."
)

# After sign_out() this kernel stops taking the hub's token by itself (sign_in() takes it again).
_declined = threading.Event()


def _hub_token() -> str | None:
    return os.environ.get("JUPYTERHUB_API_TOKEN") or None


# ---------------------------------------------------------------------- the hub service


@dataclass(frozen=True)
class HubService:
    """Where this kernel's hub service is, and the hub token it proves itself with."""

    url: str  # …/services/speckle-nb/ (the service's own prefix)
    token: str = field(repr=False)
    start_prefix: str  # from the page's base URL to the hub's ``services/``

    def pickup_client(self) -> PickupClient:
        return HubServicePickup(self.url, self.token)


class HubServiceMethod(ExtensionMethod):
    """The extension's way, with the hub service in the extension's place: the start path
    leads from the page to the service, the pickup client carries the hub token."""

    def __init__(self, service: HubService) -> None:
        super().__init__(service.pickup_client())
        self.service = service

    def start(self, server_url: str | None) -> tuple[Flow | None, dict[str, Any]]:
        flow, traits = super().start(server_url)
        traits["start_path"] = self.service.start_prefix + traits["start_path"]
        return flow, traits


class HubServicePickup(PickupClient):
    """A ``PickupClient`` for the hub service: the same JSON routes, under ``services/``,
    with the kernel's hub token on every request."""

    def __init__(self, service_url: str, token: str, **kwargs: Any) -> None:
        # The client posts to "speckle-nb/<route>": the service's prefix is services/speckle-nb/.
        parent = service_url.rstrip("/").rsplit("/", 1)[0] + "/"
        super().__init__(parent, **kwargs)
        self._http.headers["Authorization"] = f"token {token}"
        self.service_url = service_url

    def __repr__(self) -> str:
        return f"HubServicePickup({self.service_url!r})"

    def _check_instance(self, request: Any, reply: httpx.Response) -> None:
        try:
            super()._check_instance(request, reply)
        except errors.SignInExpiredError:
            raise errors.SignInExpiredError(
                SERVICE_RESTARTED, server_url=request.server_url
            ) from None

    def _json(self, reply: httpx.Response) -> dict[str, Any]:
        if reply.status_code in (401, 403):
            try:
                body = reply.json()
            except ValueError:
                body = {}
            message = body.get("message") if isinstance(body, dict) else None
            raise errors.SignInError(
                str(message or "The speckle-nb hub service refused this kernel's hub token.")
            )
        return super()._json(reply)


def hub_service() -> HubService | None:
    """The hub service this kernel's server was given, or None outside that setup."""
    url, token = os.environ.get(SERVICE_ENV, ""), _hub_token()
    if not url or not token:
        return None
    url = url if url.endswith("/") else url + "/"
    return HubService(url, token, _relative_to_services())


def _relative_to_services() -> str:
    """``../../services/`` for a page under ``/user/alice/`` on a hub at ``/``.

    The panel joins its page's base URL and the start path; relative steps keep the browser
    on the origin it uses for the hub (the service's internal URL is for kernels only)."""
    page_base = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/user/x/")
    hub_base = os.environ.get("JUPYTERHUB_BASE_URL", "/")
    depth = len([p for p in page_base.split("/") if p])
    return "../" * depth + hub_base.strip("/") + ("/" if hub_base.strip("/") else "") + "services/"


def hub_service_choice() -> ModeChoice | None:
    """The panel's way in when the hub service is configured, else None."""
    from .modes import ModeChoice

    service = hub_service()
    if service is None:
        return None
    return ModeChoice(
        method=HubServiceMethod(service),
        reason=(
            "Signing in through this JupyterHub's speckle-nb service (it holds the Speckle "
            "app; your kernel proves who you are with its hub token)."
        ),
        details=(
            "Signs in with the Speckle app of the hub's speckle-nb service "
            "(SPECKLE_NB_HUB_SERVICE_URL); no app secret reaches this server or kernel.",
        ),
        jupyter_url=service.url,
    )


# ---------------------------------------------------------------------- Speckle as the hub's login


def _hub_api() -> tuple[str, str, str] | None:
    if not os.environ.get(LOGIN_ENV):
        return None
    api, user, token = (
        os.environ.get("JUPYTERHUB_API_URL", ""),
        os.environ.get("JUPYTERHUB_USER", ""),
        _hub_token(),
    )
    if not (api and user and token):
        return None
    return api.rstrip("/"), user, token


def _ask_hub(method: str, path: str) -> tuple[str, httpx.Response] | None:
    """``method`` ``path`` (``{user}`` filled in) at the hub's API as this kernel's user, or
    None outside a Speckle-login hub; returns the user's name and the hub's answer."""
    found = _hub_api()
    if found is None:
        return None
    api, user, token = found
    try:
        with httpx.Client(timeout=30, trust_env=False, verify=_verify(api)) as http:
            reply = http.request(
                method,
                f"{api}/{path.format(user=quote(user, safe=''))}",
                headers={"Authorization": f"token {token}"},
            )
    except httpx.HTTPError as exc:
        raise errors.TransportError(
            f"JupyterHub's API at {api} could not be reached ({type(exc).__name__})."
        ) from None
    return user, reply


def read_auth_state() -> dict[str, Any] | None:
    """This user's ``auth_state`` from the hub (which renews it first when it is due)."""
    answered = _ask_hub("GET", "users/{user}")
    if answered is None:
        return None
    user, reply = answered
    if reply.status_code in (401, 403):
        # The hub ended the login: refresh_user found the token dead and Speckle refused
        # to renew it (or the user logged out).
        raise errors.InvalidTokenError(
            f"JupyterHub no longer holds a working Speckle sign-in for {user}: Speckle refused "
            f"to renew it, or you logged out. {RELOGIN}"
        )
    if reply.status_code != 200:
        raise errors.ServerError(
            f"JupyterHub's API answered HTTP {reply.status_code} for {user}.",
            status_code=reply.status_code,
        )
    state = reply.json().get("auth_state")
    if not isinstance(state, dict):
        raise errors.ConfigurationError(
            "JupyterHub gave this kernel no auth_state: the hub's server role needs the "
            "scope admin:auth_state!user (speckle_nb.hub.configure(c, login=True) adds it), "
            "and JUPYTERHUB_CRYPT_KEY must be set for the hub."
        )
    return state


def _credentials_from(state: dict[str, Any]) -> Credentials | None:
    token, server = state.get("access_token"), state.get("speckle_server_url")
    if not isinstance(token, str) or not isinstance(server, str):
        return None
    user = state.get("speckle_user")
    refresh = state.get("refresh_token")
    return Credentials(
        server_url=normalize_server_url(server),
        token=token,
        user=User.from_graphql(user) if isinstance(user, dict) else None,
        refresh_token=refresh if isinstance(refresh, str) else None,
        source="hub",
    )


def hub_login_credentials(
    session: Session, server_url: str | None = None, *, explicit: bool = False
) -> Credentials | None:
    """Store and return the hub's Speckle credentials for this user (Speckle login setup).

    ``explicit``: a ``sign_in()`` call, which also takes them after a ``sign_out()``."""
    if _hub_api() is None or (_declined.is_set() and not explicit):
        return None
    state = read_auth_state()
    creds = _credentials_from(state or {})
    if creds is None or (server_url is not None and creds.server_url != server_url):
        return None
    _declined.clear()
    session.store(creds)
    return creds


def _renew_at_hub() -> None:
    """Ask the hub to renew this user's token now (``speckle_nb.hub.renew``)."""
    answered = _ask_hub("POST", "speckle-nb/users/{user}/renew")
    if answered is None:
        return
    _, reply = answered
    if reply.status_code == 409:
        try:
            why = str(reply.json().get("message") or "")
        except ValueError:
            why = ""
        raise errors.InvalidTokenError(
            f"{why or 'JupyterHub could not renew your Speckle sign-in.'} {RELOGIN}"
        )


def refresh_via_hub(creds: Credentials) -> TokenPair | None:
    """A working token pair from the hub side: the service refreshes with the app secret;
    under Speckle login the hub renews ``auth_state`` and the kernel reads it again."""
    from .oauth import TokenPair

    if creds.source == "hub":
        _renew_at_hub()
        fresh = _credentials_from(read_auth_state() or {})
        if fresh is None or fresh.token == creds.token:
            raise errors.InvalidTokenError(
                f"{creds.server_url} refused the token JupyterHub holds for you, and the hub "
                f"could not renew it. {RELOGIN}",
                server_url=creds.server_url,
            )
        return TokenPair(fresh.token, fresh.refresh_token)
    service = hub_service()
    if service is None or creds.source != "sign-in" or not creds.refresh_token:
        return None
    with service.pickup_client() as pickup:
        return pickup.refresh(creds.server_url, creds.refresh_token)


def sign_out_line(creds: Credentials) -> str:
    """What ``sign_out()`` does to credentials that came from the hub login, in words."""
    _declined.set()
    url = creds.server_url
    return (
        f"Signed out of {url} in this kernel: the token is forgotten here and "
        "speckle_nb.client() no longer uses it. Not ended: your JupyterHub login with "
        "Speckle, and the token the hub holds for you (it was not revoked, other kernels "
        "keep working, and speckle_nb.sign_in() signs this kernel in again). To end it, log "
        f"out of JupyterHub; to withdraw the app's access, use your account settings on {url}."
    )
