"""The routes kernels call without a Jupyter login: ``pickup`` and ``refresh``.

Kernels hold no Jupyter credentials under JupyterHub, so these routes cannot ask for a login.
Each request proves instead that it comes from a kernel this Jupyter server started: it
carries the server's kernel key (``ServiceCore.kernel_key``), which the extension puts in its
own environment at start and which only its kernels inherit. A request without it is refused
(403) before anything else happens: no result is looked up, no flow changes, Speckle is not
called. ``{"action": "ping"}`` alone needs no key: it reveals the version and whether the
caller counts as one of this server's kernels, nothing more.
"""

from __future__ import annotations

import hmac
from typing import Any

from .. import __version__
from .._names import KERNEL_KEY_ENV, NOT_A_KERNEL
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

    def is_kernel(self, kernel_key: str | None) -> bool:
        """Whether a request carries this server's kernel key (compared in constant time)."""
        if not kernel_key:
            return False
        try:
            return hmac.compare_digest(kernel_key.encode("utf-8"), self.kernel_key.encode())
        except UnicodeEncodeError:  # a header tornado decoded as latin-1 can hold anything
            return False

    def refuse_non_kernel(self, route: str, kernel_key: str | None) -> tuple[int, dict[str, Any]]:
        """The 403 for a request that does not prove it comes from one of our kernels."""
        self.log.warning(
            "speckle-nb: %s refused: %s (not a kernel of this server)",
            route,
            "wrong kernel key" if kernel_key else "no kernel key",
        )
        return 403, {
            "status": "error",
            "reason": NOT_A_KERNEL,
            "message": "This Jupyter server answers sign-in requests only from kernels it "
            "started itself (they inherit its kernel key, "
            f"{KERNEL_KEY_ENV}), and this request did not come from one. Run "
            "`speckle_nb.sign_in()` in a notebook opened on this Jupyter server; a kernel "
            "started elsewhere (another Jupyter server, VS Code) signs in without it.",
        }

    async def pickup(self, body: Any, kernel_key: str | None) -> tuple[int, dict[str, Any]]:
        """The kernel's long poll (``action: wait``) or its cancel. Returns (status, JSON).

        ``kernel_key`` is what the request carried in ``X-Speckle-NB-Kernel-Key``: without
        this server's key, nothing but a ping is answered."""
        if isinstance(body, dict) and body.get("action") == "ping":
            # the kernel asks whether the extension is here (answered quietly: a 4xx would be
            # a WARNING line in the server log for every sign_in()), and whether it counts as
            # one of this server's kernels (else it must sign in another way); without an
            # app, the kernel signs in with Speckle's built-in one
            return 200, {
                "status": "ready",
                "version": __version__,
                "kernel": self.is_kernel(kernel_key),
                "app_configured": bool(self.settings.app_id),
            }
        if not self.is_kernel(kernel_key):
            return self.refuse_non_kernel("pickup", kernel_key)
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

    async def refresh(self, body: Any, kernel_key: str | None) -> tuple[int, dict[str, Any]]:
        """A new token pair for a refresh token, using the app secret held here — for this
        server's kernels only: the secret exists so that a refresh token alone is worthless."""
        if not self.is_kernel(kernel_key):
            return self.refuse_non_kernel("refresh", kernel_key)
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
