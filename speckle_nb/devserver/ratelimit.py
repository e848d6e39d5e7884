"""Fixed-window request counting, one window per source (user id or client address)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    reset_at_s: float
    """Epoch seconds at which the current window ends."""


class RateLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def consume(
        self, source: str, points: int, *, limit: int, window_s: float, now_s: float
    ) -> Decision:
        """Spend ``points``; refused when the window would go over ``limit``.

        A refused request spends nothing, so a client that waits for ``Retry-After``
        gets through.
        """
        with self._lock:
            start, used = self._windows.get(source, (now_s, 0))
            if now_s - start >= window_s:
                start, used = now_s, 0
            reset_at = start + window_s
            if used + points > limit:
                self._windows[source] = (start, used)
                return Decision(False, max(limit - used, 0), reset_at)
            used += points
            self._windows[source] = (start, used)
            return Decision(True, limit - used, reset_at)

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
