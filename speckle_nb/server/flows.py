"""Sign-in flows and their results, in memory: pure logic plus asyncio waiters, no tornado.

Two tables, both bounded by ``max_flows``:

* **flows**, by flow id (the value of the browser's signed cookie): the challenge and where a
  sign-in stands. A flow is ``pending`` until its callback, ``exchanging`` while the code is
  being exchanged, then ``ended`` with a reason. Ended flows stay as tombstones until the
  flow's own expiry, so a replayed callback is told "already finished" rather than "unknown".
* **entries**, by request id (chosen by the kernel): the hash of the kernel's pickup secret,
  the request's current flow, and once it is known the outcome, handed out exactly once.

A request's pickup secret is bound when the (Jupyter-authenticated) browser starts the flow,
never by the unauthenticated pickup, so nobody can create state here without a Jupyter login.

Outcomes carry credentials nobody else may see. Credentials that will never be handed out
(the kernel cancelled, the result expired unclaimed, a stale exchange finished late) go to
``on_discard`` so the caller can revoke them at the Speckle server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .._names import pickup_hash
from ..credentials import Credentials
from ..oauth import Challenge

__all__ = [
    "MAX_FLOW_LIFETIME",
    "EndReason",
    "Flow",
    "FlowStore",
    "Outcome",
    "PickupForbidden",
    "StartRefused",
    "pickup_hash",
]

#: Speckle's access codes live 10 minutes; a flow may not outlive the code it waits for.
MAX_FLOW_LIFETIME = 600.0

Clock = Callable[[], float]
EndReason = Literal[
    "signed-in",
    "denied",
    "expired",
    "superseded",
    "replaced",
    "cancelled",
    "failed",
    "misconfigured",  # failed in a way only the administrator can fix (the kernel says so)
]

_MESSAGES = {
    "denied": (
        "You chose Deny on the Speckle page, so the notebook was not signed in. "
        "Start the sign-in again and choose Authorize."
    ),
    "expired": (
        "The sign-in was not finished in time and expired. "
        "Click 'Sign in to Speckle' again and finish within {minutes} minutes."
    ),
    "superseded": (
        "A newer sign-in was started in the same browser, so this one was stopped. "
        "Finish the newest sign-in window, or start again."
    ),
    "cancelled": "The sign-in was cancelled from the notebook. Start it again when you are ready.",
}


def short_id(flow_id: str) -> str:
    """A name for a flow in logs that does not reveal the cookie value."""
    return hashlib.sha256(flow_id.encode("ascii")).hexdigest()[:8]


@dataclass(eq=False)
class Flow:
    """One trip through Speckle's sign-in page, bound to one browser by its cookie."""

    flow_id: str = field(repr=False)
    request_id: str
    server_url: str
    challenge: Challenge = field(repr=False)
    created_at: float
    expires_at: float
    status: Literal["pending", "exchanging", "ended"] = "pending"
    ended_reason: EndReason | None = None

    @property
    def short_id(self) -> str:
        return short_id(self.flow_id)


@dataclass(frozen=True)
class Outcome:
    """What the kernel's pickup receives: credentials, or a reason and a message."""

    reason: str  # "ok", or a SignInError reason: denied|expired|superseded|cancelled|failed
    message: str
    credentials: Credentials | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.credentials is not None

    def to_json(self) -> dict[str, Any]:
        if self.credentials is None:
            return {"status": "error", "reason": self.reason, "message": self.message}
        creds = self.credentials
        return {
            "status": "ok",
            "credentials": {
                "server_url": creds.server_url,
                "token": creds.token,
                "refresh_token": creds.refresh_token,
                "user": creds.user.to_dict() if creds.user else None,
                "scopes": list(creds.scopes),
                "app_id": creds.app_id,
            },
        }


class PickupForbidden(Exception):
    """The pickup secret does not match the request's."""


class StartRefused(Exception):
    """``start`` cannot begin a flow for this request; ``reason`` is a short word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(eq=False)
class _Entry:
    request_id: str
    pickup_hash: str = field(repr=False)
    flow_id: str | None = field(repr=False)
    created_at: float
    expires_at: float  # only meaningful once ``outcome`` is set
    outcome: Outcome | None = None


class FlowStore:
    """All sign-ins of one Jupyter server. Call it from one event loop (tornado's)."""

    def __init__(
        self,
        *,
        flow_lifetime: float = MAX_FLOW_LIFETIME,
        result_lifetime: float = 120.0,
        max_flows: int = 1000,
        clock: Clock = time.monotonic,
        log: logging.Logger | None = None,
        on_discard: Callable[[Credentials], None] | None = None,
    ) -> None:
        if not 0 < flow_lifetime <= MAX_FLOW_LIFETIME:
            raise ValueError(f"flow_lifetime must be in (0, {MAX_FLOW_LIFETIME:g}] seconds")
        if result_lifetime <= 0 or max_flows < 1:
            raise ValueError("result_lifetime and max_flows must be positive")
        self.flow_lifetime = flow_lifetime
        self.result_lifetime = result_lifetime
        self.max_flows = max_flows
        #: The time source for expiry (``time.monotonic``); tests swap in a fake one.
        self.clock = clock
        self._log = log or logging.getLogger(__name__)
        self._on_discard = on_discard
        # Insertion order is age order: the first item is the oldest (evicted first).
        self._flows: dict[str, Flow] = {}
        self._entries: dict[str, _Entry] = {}
        self._changed: asyncio.Event | None = None
        #: How many pickups are held open right now (observable by tests and diagnostics).
        self.held_pickups = 0

    # ------------------------------------------------------------------ inspection

    def counts(self) -> dict[str, int]:
        """How many flows (tombstones included) and request entries are held."""
        return {"flows": len(self._flows), "entries": len(self._entries)}

    def get(self, flow_id: str) -> Flow | None:
        """The flow a callback's cookie names (pending, exchanging or a tombstone), if any."""
        self.purge()
        return self._flows.get(flow_id)

    # ------------------------------------------------------------------ start

    def start(
        self,
        *,
        request_id: str,
        pickup_hash: str,
        server_url: str,
        challenge: Challenge,
        browser_flow_id: str | None = None,
    ) -> Flow:
        """A new pending flow for ``request_id``; the browser's previous pending flow ends
        ``superseded``, and an earlier flow for the same request is replaced silently."""
        self.purge()
        now = self.clock()
        self._make_room(now)
        entry = self._entries.get(request_id)
        if entry is not None:
            if not hmac.compare_digest(entry.pickup_hash, pickup_hash):
                raise StartRefused(
                    "request-taken",
                    "This sign-in link belongs to another notebook kernel. Start the sign-in "
                    "from your notebook with `speckle_nb.sign_in()`.",
                )
            if entry.outcome is not None and entry.outcome.reason == "cancelled":
                raise StartRefused("cancelled", _MESSAGES["cancelled"])
            if entry.outcome is not None and entry.outcome.ok:
                creds = entry.outcome.credentials
                who = creds.user.name if creds and creds.user else "you"
                raise StartRefused(
                    "already-signed-in",
                    f"This sign-in already finished (signed in as {who}). Go back to the "
                    "notebook: it picks the result up by itself.",
                )
        if browser_flow_id is not None:
            previous = self._flows.get(browser_flow_id)
            if previous is not None and previous.status == "pending":
                if previous.request_id == request_id:
                    self._end(previous, "replaced")
                else:
                    self._end(previous, "superseded", _MESSAGES["superseded"])
        flow = Flow(
            flow_id=secrets.token_urlsafe(24),
            request_id=request_id,
            server_url=server_url,
            challenge=challenge,
            created_at=now,
            expires_at=now + self.flow_lifetime,
        )
        if entry is not None and entry.flow_id in self._flows:
            older = self._flows[entry.flow_id]
            if older.status == "pending":
                self._end(older, "replaced")
        if entry is None:
            entry = _Entry(request_id, pickup_hash, None, created_at=now, expires_at=now)
            self._entries[request_id] = entry
        entry.flow_id = flow.flow_id
        entry.outcome = None
        entry.expires_at = flow.expires_at
        self._flows[flow.flow_id] = flow
        self._notify()
        return flow

    def refuse(
        self, request_id: str, pickup_hash: str, message: str, reason: str = "failed"
    ) -> bool:
        """Tell a fresh request's kernel that its start was refused (``reason``: ``failed``,
        or ``misconfigured`` for what only the administrator can fix).

        Only for a request nobody has started yet: an existing entry (maybe another
        kernel's, maybe a flow in progress) is left alone. Returns whether it recorded.
        """
        self.purge()
        if request_id in self._entries:
            return False
        now = self.clock()
        self._make_room(now)
        self._entries[request_id] = _Entry(
            request_id,
            pickup_hash,
            None,
            created_at=now,
            expires_at=now + self.result_lifetime,
            outcome=Outcome(reason, message),
        )
        self._notify()
        return True

    # ------------------------------------------------------------------ callback

    def begin_exchange(self, flow: Flow) -> None:
        """Mark ``flow`` as being exchanged, so a second callback for it is refused."""
        if flow.status != "pending":
            raise ValueError(f"flow {flow.short_id} is {flow.status}, not pending")
        flow.status = "exchanging"

    def complete(self, flow: Flow, credentials: Credentials) -> bool:
        """Store the credentials for the kernel. False (and discarded) when the flow was
        ended meanwhile (cancelled, or replaced by a newer start for its request)."""
        entry = self._entries.get(flow.request_id)
        if flow.status != "exchanging" or entry is None or entry.flow_id != flow.flow_id:
            self._log.info("speckle-nb: flow %s finished after it was ended", flow.short_id)
            if flow.status == "exchanging":
                flow.status, flow.ended_reason = "ended", "replaced"
            self._discard(credentials)
            return False
        flow.status, flow.ended_reason = "ended", "signed-in"
        entry.outcome = Outcome("ok", "", credentials)
        entry.expires_at = self.clock() + self.result_lifetime
        self._notify()
        return True

    def fail(self, flow: Flow, reason: EndReason, message: str) -> None:
        """End a pending or exchanging flow with ``reason``; its kernel is told ``message``."""
        if flow.status != "ended":
            self._end(flow, reason, message)

    # ------------------------------------------------------------------ kernel side

    async def pickup(self, request_id: str, secret: str, hold: float) -> Outcome | None:
        """The request's outcome, exactly once; None if there is none within ``hold`` s.

        Raises ``PickupForbidden`` at once when the request is bound to another secret.
        A request nobody has started yet (the user has not clicked) is simply pending.
        """
        digest = pickup_hash(secret)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, hold)
        while True:
            self.purge()
            entry = self._entries.get(request_id)
            wait = deadline - loop.time()
            if entry is not None:
                if not hmac.compare_digest(entry.pickup_hash, digest):
                    raise PickupForbidden
                if entry.outcome is not None:
                    del self._entries[request_id]
                    return entry.outcome
                flow = self._flows.get(entry.flow_id or "")
                if flow is not None and flow.status == "pending":
                    # wake up when it expires, so the kernel hears "expired" at once
                    wait = min(wait, max(0.05, flow.expires_at - self.clock()))
            if wait <= 0:
                return None
            event = self._event()
            self.held_pickups += 1
            try:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), wait)
            finally:
                self.held_pickups -= 1

    def cancel(self, request_id: str, secret: str) -> bool:
        """End the request's flow ``cancelled``; its pickup then answers "cancelled" (once).
        Returns whether there was anything to cancel. ``PickupForbidden`` for a wrong secret.
        A request nobody has started is not recorded (no state without a Jupyter login)."""
        self.purge()
        entry = self._entries.get(request_id)
        if entry is None:
            return False
        if not hmac.compare_digest(entry.pickup_hash, pickup_hash(secret)):
            raise PickupForbidden
        flow = self._flows.get(entry.flow_id or "")
        if flow is not None and flow.status != "ended":
            flow.status, flow.ended_reason = "ended", "cancelled"
        if entry.outcome is not None and entry.outcome.credentials is not None:
            self._discard(entry.outcome.credentials)
        # A poll held for this request (the kernel's waiting thread) hears it at once.
        entry.outcome = Outcome("cancelled", _MESSAGES["cancelled"])
        entry.expires_at = self.clock() + self.result_lifetime
        self._notify()
        return True

    # ------------------------------------------------------------------ housekeeping

    def purge(self) -> None:
        """End flows past their life (their kernels hear "expired") and drop old records."""
        now = self.clock()
        for flow in list(self._flows.values()):
            if now < flow.expires_at:
                continue
            if flow.status == "pending":
                minutes = f"{self.flow_lifetime / 60:g}"
                self._end(flow, "expired", _MESSAGES["expired"].format(minutes=minutes))
            # Tombstones outlive the flow a little, so a late callback hears "expired" or
            # "already finished"; an exchange in progress finishes first.
            if flow.status == "ended" and now >= flow.expires_at + self.result_lifetime:
                del self._flows[flow.flow_id]
        for entry in list(self._entries.values()):
            if entry.outcome is not None and now >= entry.expires_at:
                del self._entries[entry.request_id]
                if entry.outcome.credentials is not None:
                    self._log.info(
                        "speckle-nb: a sign-in result was never picked up; discarding it"
                    )
                    self._discard(entry.outcome.credentials)

    def _make_room(self, now: float) -> None:
        """Keep both tables under ``max_flows`` by ending or dropping the oldest records."""
        while len(self._flows) >= self.max_flows:
            oldest = next(iter(self._flows.values()))
            if oldest.status == "pending":
                self._log.warning(
                    "speckle-nb: %d sign-ins in progress; ending the oldest (%s)",
                    len(self._flows),
                    oldest.short_id,
                )
                minutes = f"{self.flow_lifetime / 60:g}"
                self._end(oldest, "expired", _MESSAGES["expired"].format(minutes=minutes))
            del self._flows[oldest.flow_id]
        while len(self._entries) >= self.max_flows:
            request_id, entry = next(iter(self._entries.items()))
            del self._entries[request_id]
            if entry.outcome is not None and entry.outcome.credentials is not None:
                self._discard(entry.outcome.credentials)

    def _end(self, flow: Flow, reason: EndReason, message: str | None = None) -> None:
        flow.status, flow.ended_reason = "ended", reason
        self._log.info("speckle-nb: flow %s ended: %s", flow.short_id, reason)
        entry = self._entries.get(flow.request_id)
        if message is not None and entry is not None and entry.flow_id == flow.flow_id:
            entry.outcome = Outcome(reason, message)
            entry.expires_at = self.clock() + self.result_lifetime
            self._notify()

    def _discard(self, credentials: Credentials) -> None:
        if self._on_discard is not None:
            self._on_discard(credentials)

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        """Wake every held pickup; each re-checks its own request."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None
