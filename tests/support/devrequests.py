"""Count, at the dev server, the requests it answered (its access log, one line each)."""

from __future__ import annotations

import logging
import threading

__all__ = ["DevRequests"]


class DevRequests(logging.Handler):
    """Counts, at the dev server, every request it answered (``"POST /auth/token"``): read
    from its access log, which it writes once per request just before the answer leaves:
    a request whose answer the caller holds is already counted.

        with DevRequests() as seen:
            ...
            seen.wait_for("POST /auth/token")
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[str] = []
        self._changed = threading.Condition()
        self._logger = logging.getLogger("speckle_nb.devserver")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        parts = record.getMessage().split()  # "<status> <METHOD> <path> <ms>ms"
        if len(parts) >= 3 and parts[0].isdigit():
            with self._changed:
                self.seen.append(f"{parts[1]} {parts[2]}")
                self._changed.notify_all()

    def wait_for(self, entry: str, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: entry in self.seen, timeout):
                raise AssertionError(f"the dev server never answered {entry}: {self.seen}")

    def __enter__(self) -> DevRequests:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
