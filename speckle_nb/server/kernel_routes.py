"""The routes kernels call without a Jupyter login: ``pickup`` and ``refresh``.

Kernels hold no Jupyter credentials under JupyterHub, so these routes cannot ask for a login.
Each request proves instead that it comes from a kernel this Jupyter server started: it
carries the server's kernel key (``ServiceCore.kernel_key``), which the extension puts in its
own environment at start and which only its kernels inherit. A request without it is refused
before anything else happens — before a body is read, a result is looked up, or Speckle is
called. ``{"action": "ping"}`` alone needs no key: it reveals nothing but the version.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..credentials import normalize_server_url
from ..errors import ConfigurationError, SpeckleError, TokenExchangeError, TransportError
from ..oauth import App
from .core import ServiceCore, not_configured_message
from .flows import Outcome, PickupForbidden
from .start_route import REQUEST_ID

__all__ = ["KernelRoutes"]

_MAX_SECRET_CHARS = 256


class KernelRoutes(ServiceCore):
    """``POST pickup`` and ``POST refresh``, for this server's kernels only."""

    async def pickup(self, body: Any) -> tuple[int, dict[str, Any]]:
        """The kernel's long poll (``action: wait``) or its cancel. Returns (status, JSON)."""
        if isinstance(body, dict) and body.get("action") == "ping":
            # the kernel asks whether the extension is here (answered quietly: a 4xx would be
            # a WARNING line in the server log for every sign_in())
            return 200, {"status": "ready", "version": __version__}
        parsed = _parse_pickup(body, self.settings.pickup_hold)
        if isinstance(parsed, str):
            return 400, {"status": "error", "reason": "bad-request", "message": parsed}
        request_id, secret, hold, action = parsed
        try:
            if action == "cancel":
                self.store.cancel(request_id, secret)
                return 200, Outcome(
                    "cancelled", "The sign-in was cancelled from the notebook."
                ).to_json()
            outcome = await self.store.pickup(request_id, secret, hold)
        except PickupForbidden:
            self.log.warning("speckle-nb: pickup with a wrong secret refused")
            return 403, {
                "status": "error",
                "reason": "forbidden",
                "message": "This kernel may not pick up that sign-in (wrong pickup secret). "
                "Start a new sign-in with `speckle_nb.sign_in()`.",
            }
        if outcome is None:
            return 200, {"status": "pending"}
        self.log.info("speckle-nb: sign-in result (%s) handed to its kernel", outcome.reason)
        return 200, outcome.to_json()

    # ------------------------------------------------------------------ refresh

    async def refresh(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A new token pair for a refresh token, using the app secret held here."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) and body.get(k) for k in ("server_url", "refresh_token")
        ):
            return 400, {
                "status": "error",
                "reason": "bad-request",
                "message": 'Expected JSON {"server_url": "...", "refresh_token": "..."}.',
            }
        try:
            server = normalize_server_url(body["server_url"])
        except ValueError:
            server = ""
        if server not in self.allowed_servers:
            return 403, {
                "status": "error",
                "reason": "server-not-allowed",
                "message": "This Jupyter server refreshes tokens only for "
                f"{', '.join(self.allowed_servers)}.",
            }
        s = self.settings
        try:
            if not s.app_id:
                raise ConfigurationError(not_configured_message())
            pair = await self.auth.refresh(
                App(server, s.app_id, s.app_secret or None), body["refresh_token"]
            )
        except SpeckleError as exc:
            self.log.warning("speckle-nb: token refresh failed: %s", type(exc).__name__)
            reply: dict[str, Any] = {
                "status": "error",
                "reason": _error_word(exc),
                "message": exc.message,
            }
            server_message = getattr(exc, "server_message", None)
            if server_message:
                reply["server_message"] = server_message
            return 200, reply
        return 200, {"status": "ok", "token": pair.token, "refresh_token": pair.refresh_token}


def _error_word(exc: SpeckleError) -> str:
    if isinstance(exc, TransportError):
        return "unreachable"
    if isinstance(exc, ConfigurationError):
        return "not-configured"
    if isinstance(exc, TokenExchangeError):
        return "refused"
    return "failed"


def _parse_pickup(body: Any, max_hold: float) -> tuple[str, str, float, str] | str:
    """``(request, secret, hold, action)``, or the reason the body is malformed."""
    if not isinstance(body, dict):
        return 'Expected a JSON object {"request", "secret", "hold", "action"}.'
    request_id, secret = body.get("request"), body.get("secret")
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        return "'request' must be 16–64 URL-safe characters."
    if not isinstance(secret, str) or not 0 < len(secret) <= _MAX_SECRET_CHARS:
        return "'secret' must be a non-empty string."
    try:
        secret.encode("utf-8")
    except UnicodeEncodeError:  # JSON can carry a lone surrogate ("\ud800")
        return "'secret' must be text that UTF-8 can encode."
    hold = body.get("hold", max_hold)
    if isinstance(hold, bool) or not isinstance(hold, (int, float)) or hold < 0:
        return "'hold' must be a number of seconds ≥ 0."
    action = body.get("action", "wait")
    if action not in ("wait", "cancel"):
        return "'action' must be 'wait', 'cancel' or 'ping'."
    return request_id, secret, min(float(hold), max_hold), str(action)
