"""The hub service's memory: sign-ins in progress and results waiting for their kernel.

No tornado and no HTTP here, only the rules:

* a *request* is the kernel's (its id and the SHA-256 of a pickup secret only the kernel holds);
  the first browser that starts it binds it to that browser's **hub user**;
* a *flow* is one trip to Speckle: its challenge, the request it completes, and the hub user
  whose browser started it. The browser holds the flow id in a signed cookie;
* a callback completes a flow once (taking it out first), so a replayed callback finds nothing;
* a result is handed to the request's own hub user, proving the pickup secret, once.

Everything lives in this process only: a restarted service knows no flow, and says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..oauth import Challenge

__all__ = ["Flow", "FlowStore", "PickupRefused", "Request"]

#: A flow the browser did not finish in this time is dropped (Speckle's codes live 10 min).
FLOW_LIFETIME = 15 * 60.0
#: A finished result nobody collected is dropped after this.
RESULT_LIFETIME = 10 * 60.0


class PickupRefused(Exception):
    """The caller may not see this request (another hub user, or the wrong pickup secret)."""


@dataclass(eq=False)
class Request:
    """A kernel's sign-in request, bound to the hub user who started it."""

    id: str
    user: str
    pickup_hash: str
    created: float = field(default_factory=time.monotonic)
    #: ``{"status": "ok", "credentials": …}`` or ``{"status": "error", "reason", "message"}``.
    result: dict[str, Any] | None = field(default=None, repr=False)
    finished: float | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def finish(self, result: dict[str, Any]) -> None:
        if self.result is None:
            self.result = result
            self.finished = time.monotonic()
            self.ready.set()


@dataclass(eq=False)
class Flow:
    """One trip to Speckle, started by ``user``'s browser for ``request``."""

    id: str
    request: Request
    server_url: str
    challenge: Challenge = field(repr=False)
    created: float = field(default_factory=time.monotonic)


def pickup_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class FlowStore:
    """Flows by id, requests by id; single event loop, so no locks."""

    def __init__(self) -> None:
        self._flows: dict[str, Flow] = {}
        self._requests: dict[str, Request] = {}

    # ------------------------------------------------------------------ browser side

    def start(
        self, *, user: str, request_id: str, pickup: str, server_url: str, challenge: Challenge
    ) -> Flow:
        """A new flow for ``user``'s browser. A request already bound to another user (or
        another pickup hash) is refused: one kernel's request cannot be taken over."""
        self.expire()
        request = self._requests.get(request_id)
        if request is None:
            request = self._requests[request_id] = Request(request_id, user, pickup)
        elif (
            request.user != user
            or not hmac.compare_digest(request.pickup_hash, pickup)
            or request.result is not None
        ):
            raise PickupRefused(request_id)
        flow = Flow(secrets.token_urlsafe(24), request, server_url, challenge)
        self._flows[flow.id] = flow
        return flow

    def take(self, flow_id: str) -> Flow | None:
        """The flow the cookie names, taken out: a second callback finds nothing."""
        self.expire()
        return self._flows.pop(flow_id, None)

    def end(self, flow_id: str, reason: str, message: str) -> None:
        """End a flow without a code (superseded by a newer one in the same browser)."""
        flow = self._flows.pop(flow_id, None)
        if flow is not None:
            flow.request.finish({"status": "error", "reason": reason, "message": message})

    # ------------------------------------------------------------------ kernel side

    def lookup(self, request_id: str, user: str, secret: str) -> Request | None:
        """The request for its own user with the right secret; None while no browser has
        started it yet (the kernel polls before the click). ``PickupRefused`` otherwise."""
        self.expire()
        request = self._requests.get(request_id)
        if request is None:
            return None
        if request.user != user or not hmac.compare_digest(
            request.pickup_hash, pickup_hash(secret)
        ):
            raise PickupRefused(request_id)
        return request

    def collect(self, request: Request) -> dict[str, Any]:
        """Hand the result out once, then forget the request."""
        assert request.result is not None
        self._requests.pop(request.id, None)
        return request.result

    def cancel(self, request: Request) -> None:
        for flow_id in [f.id for f in self._flows.values() if f.request is request]:
            del self._flows[flow_id]
        request.finish(
            {"status": "error", "reason": "cancelled", "message": "The sign-in was cancelled."}
        )
        self._requests.pop(request.id, None)

    # ------------------------------------------------------------------ housekeeping

    def expire(self) -> None:
        now = time.monotonic()
        for flow_id, flow in list(self._flows.items()):
            if now - flow.created > FLOW_LIFETIME:
                del self._flows[flow_id]
                flow.request.finish(_expired())
        for request_id, request in list(self._requests.items()):
            done = request.finished is not None and now - request.finished > RESULT_LIFETIME
            if done or now - request.created > FLOW_LIFETIME + RESULT_LIFETIME:
                del self._requests[request_id]

    def __len__(self) -> int:
        return len(self._flows)


def _expired() -> dict[str, Literal["error"] | str]:
    return {
        "status": "error",
        "reason": "expired",
        "message": "The sign-in took too long and expired. Click Try again.",
    }
