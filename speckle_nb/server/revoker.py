"""Revoking tokens nobody will receive, until Speckle confirms it.

A sign-in's token that is never handed to a kernel (the kernel cancelled, the result expired
unclaimed, ``activeUser`` failed right after the exchange) would stay valid at Speckle for a
century (app tokens have no real expiry; the refresh token lives six months). It is revoked
with ``POST /auth/logout``. Speckle may be failing at exactly that moment — it often is, when
``activeUser`` failed — so one attempt is not enough: each token is tried again with a
growing pause (1 s, doubling, at most ``MAX_PAUSE``) until Speckle answers. Only Speckle's own
answers end the retries: ``200 {"message": …}`` (revoked), or the 400 it gives for a token it
does not know (already revoked). A 200 whose body is not Speckle's JSON (a proxy's page) is
not taken as a revocation.

Log lines name the server and the number of attempts, never the token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .._graphql_core import parse_retry_after
from ..credentials import Credentials
from ..errors import RateLimitedError
from ..oauth import logout_request

__all__ = ["FIRST_PAUSE", "MAX_PAUSE", "MAX_PENDING", "Revoker"]

#: The pause after the first failed attempt; it doubles after each further failure.
FIRST_PAUSE = 1.0
#: The longest pause between two attempts for one token.
MAX_PAUSE = 300.0
#: At most this many tokens wait for a retry; beyond, the oldest is given up (and logged).
MAX_PENDING = 1000


@dataclass(eq=False)
class _Pending:
    credentials: Credentials = field(repr=False)
    attempts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Revoker:
    """Revokes tokens in the background, trying again until Speckle confirms.

    ``client`` returns the HTTP client to use (the service's, on its lent transport);
    ``timeout`` bounds each attempt.
    """

    def __init__(
        self,
        client: Callable[[], httpx.AsyncClient],
        *,
        log: logging.Logger,
        first_pause: float = FIRST_PAUSE,
        max_pause: float = MAX_PAUSE,
    ) -> None:
        self._client = client
        self._log = log
        self.first_pause = first_pause
        self.max_pause = max_pause
        self._pending: dict[int, _Pending] = {}

    @property
    def pending(self) -> int:
        """How many tokens are not confirmed revoked yet."""
        return len(self._pending)

    def revoke_later(self, credentials: Credentials) -> None:
        """Start revoking ``credentials`` in the background (needs a running event loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._log.warning(
                "speckle-nb: an unclaimed token at %s could not be revoked (no event loop)",
                credentials.server_url,
            )
            return
        while len(self._pending) >= MAX_PENDING:
            oldest = next(iter(self._pending.values()))
            self._give_up(oldest, "too many tokens waiting to be revoked")
        item = _Pending(credentials)
        self._pending[id(item)] = item
        item.task = loop.create_task(self._run(item))

    async def close(self) -> None:
        """Stop the retries, make one last attempt for each token still valid (each bounded
        by the client's timeout), and log every token that stays valid."""
        items = list(self._pending.values())
        for item in items:
            if item.task is not None:
                item.task.cancel()
        await asyncio.gather(*(i.task for i in items if i.task is not None), return_exceptions=True)

        async def last_try(item: _Pending) -> None:
            item.attempts += 1
            outcome, _ = await self._attempt(item.credentials)
            if outcome is None:
                self._pending.pop(id(item), None)
            else:
                self._give_up(item, f"{outcome}; the Jupyter server stopped")

        await asyncio.gather(*(last_try(i) for i in items if id(i) in self._pending))

    async def _run(self, item: _Pending) -> None:
        try:
            await self._retry(item)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug, not Speckle failing: say so once, do not spin
            self._log.exception("speckle-nb: revoking an unclaimed token failed unexpectedly")
            self._give_up(item, "an unexpected error")

    async def _retry(self, item: _Pending) -> None:
        pause = self.first_pause
        while True:
            item.attempts += 1
            outcome, retry_after = await self._attempt(item.credentials)
            if outcome is None:
                self._pending.pop(id(item), None)
                return
            wait = min(max(pause, retry_after or 0.0), self.max_pause)
            self._log.warning(
                "speckle-nb: could not revoke an unclaimed token at %s (%s, attempt %d); "
                "trying again in %g s",
                item.credentials.server_url,
                outcome,
                item.attempts,
                wait,
            )
            await asyncio.sleep(wait)
            pause = min(pause * 2, self.max_pause)

    async def _attempt(self, credentials: Credentials) -> tuple[str | None, float | None]:
        """``(None, None)`` when Speckle confirmed; else ``(what went wrong, Retry-After)``."""
        request = logout_request(
            credentials.server_url, credentials.token, credentials.refresh_token
        )
        try:
            response = await self._client().send(request)
        except httpx.HTTPError as exc:
            return type(exc).__name__, None
        status = response.status_code
        if status == 200 and _is_speckle_json(response):
            self._log.info("speckle-nb: revoked an unclaimed token at %s", credentials.server_url)
            return None, None
        if status == 400:
            # Speckle's answer for a token it does not know: revoked already (a retry after
            # an attempt whose answer was lost), or never valid. Nothing is left to revoke.
            self._log.info(
                "speckle-nb: an unclaimed token at %s was already revoked", credentials.server_url
            )
            return None, None
        if status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            return RateLimitedError.__name__, wait
        return f"HTTP {status}" if status != 200 else "HTTP 200 without Speckle's answer", None

    def _give_up(self, item: _Pending, why: str) -> None:
        if self._pending.pop(id(item), None) is None:
            return
        if item.task is not None and not item.task.done():
            item.task.cancel()
        self._log.warning(
            "speckle-nb: gave up revoking an unclaimed token at %s after %d attempt(s) (%s); "
            "it stays valid until the user revokes the app's access in their Speckle profile",
            item.credentials.server_url,
            item.attempts,
            why,
        )


def _is_speckle_json(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict)
