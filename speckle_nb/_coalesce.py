"""Many ``execute()`` calls, few HTTP requests: the async client's coalescer and ``batch()``.

Every authenticated request costs a Speckle server a bcrypt check of the token (~65 ms), and
the server runs only a few checks at once; the operations themselves are cheap. So the
calls a notebook makes together should travel together, as one Apollo batch (a JSON array,
which Speckle accepts: ``allowBatchedHttpRequests``).

``Coalescer`` (async): calls made in the same event-loop turn — every task that reaches
``execute()`` before the loop next polls for I/O, which is what ``asyncio.gather`` and a
loop of ``create_task`` produce — are sent when that turn ends: one operation as a plain
request, several as one batch, split at ``MAX_BATCH_SIZE``. No timer: a lone call waits
one turn (microseconds), never a window.

``Batch`` / ``Deferred`` (sync): ``with client.batch() as b: r = b.execute(...)`` queues;
the block's end sends; ``r.result()`` then gives that operation's data or raises its error.

Neither changes what a call returns or raises: each caller gets its own ``Result`` (its own
GraphQL error), and a failure of a request as a whole (token, 429, transport) reaches every
caller in it. Retries (429, token refresh) happen for the request as a whole, in
``_graphql_core.call_flow``, exactly as for a single call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._graphql_core import Operation, Result
from .errors import SpeckleError

if TYPE_CHECKING:
    # Imported where used: asyncio costs more than httpx, and the sync client never needs it.
    import asyncio

__all__ = ["MAX_BATCH_SIZE", "Batch", "Coalescer", "Deferred", "chunked"]

T = TypeVar("T")

#: Most operations in one request. Speckle's ``/graphql`` limit is 50 per second per user
#: and a batch counts one hit per entry (protocol §9): a bigger batch is refused with 429
#: however long the client waits, while one of 50 fits the limit on its own.
MAX_BATCH_SIZE = 50


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_batch_size(size: int) -> int:
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise ValueError(f"max_batch_size must be between 1 and {MAX_BATCH_SIZE}")
    return size


SendOperations = Callable[[Sequence[Operation]], Awaitable[list[Result]]]


class Coalescer:
    """Collects the operations submitted in one event-loop turn and sends them together.

    ``send`` performs one request for a list of operations (one, or a batch) and returns one
    ``Result`` each, in order; it raises for a failure of the request as a whole.
    """

    def __init__(self, send: SendOperations, max_batch_size: int = MAX_BATCH_SIZE) -> None:
        self._send = send
        self._max = check_batch_size(max_batch_size)
        self._pending: list[tuple[Operation, asyncio.Future[Result]]] = []
        self._flush_scheduled = False
        # Strong references: the loop keeps only weak ones to running tasks.
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, operation: Operation) -> Result:
        """Queue ``operation`` and wait for its ``Result`` (or the request's failure)."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((operation, future))
        if not self._flush_scheduled:
            # call_soon runs after every callback already queued for this turn, i.e. after
            # the first step of each task that gather() or create_task() has just scheduled.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        import asyncio

        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        # A caller cancelled before the turn ended wants nothing sent for it.
        live = [(op, future) for op, future in pending if not future.done()]
        for chunk in chunked(live, self._max):
            task = asyncio.ensure_future(self._deliver(chunk))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, chunk: Sequence[tuple[Operation, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._send([op for op, _ in chunk])
            if len(results) != len(chunk):  # the parsers check this; a caller must never hang
                raise RuntimeError(f"{len(results)} results for {len(chunk)} operations")
        except BaseException as exc:
            for _, future in chunk:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:  # cancelled (loop shutting down): the callers are cancelled too
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(chunk, results, strict=True):
            if not future.done():
                future.set_result(result)


class Deferred:
    """The answer to one operation queued in ``SpeckleClient.batch()``.

    Filled when the ``with`` block ends; ``result()`` then returns the operation's ``data``
    or raises its error, exactly as ``execute()`` would have.
    """

    __slots__ = ("_error", "_result")

    def __init__(self) -> None:
        self._result: Result | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        """True once the batch was sent and this operation's answer (or failure) is in."""
        return self._result is not None or self._error is not None

    def result(self) -> dict[str, Any]:
        """The operation's ``data``; raises its ``GraphQLError`` (or the whole request's
        failure) as ``execute()`` does."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise SpeckleError(
                "This result is not there yet: a batch is sent when its `with client.batch()` "
                "block ends. Read `.result()` after the block."
            )
        return self._result.raise_for_errors()

    @property
    def outcome(self) -> Result | None:
        """The raw ``Result`` (``data``, ``errors``, ``error``) once sent, else None."""
        return self._result

    def __repr__(self) -> str:
        state = "pending" if not self.done() else ("failed" if self._error else "done")
        return f"<Deferred {state}>"


class Batch:
    """What ``SpeckleClient.batch()`` yields: ``execute()`` queues and returns a ``Deferred``."""

    def __init__(self) -> None:
        self._queued: list[tuple[Operation, Deferred]] = []
        self._sent = False

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> Deferred:
        """Queue one operation; its answer is on the returned ``Deferred`` after the block."""
        if self._sent:
            raise SpeckleError(
                "This batch was sent already (its `with` block ended); start a new "
                "`with client.batch()` block."
            )
        deferred = Deferred()
        self._queued.append((Operation(query, variables, operation_name), deferred))
        return deferred

    def __len__(self) -> int:
        return len(self._queued)

    def operations(self) -> list[Operation]:
        return [op for op, _ in self._queued]

    def fill(self, results: Sequence[Result]) -> None:
        """Give the first ``len(results)`` ``Deferred``s their ``Result``, in order (all of
        them unless a later request of the batch failed)."""
        self._sent = True
        for (_, deferred), result in zip(self._queued, results, strict=False):
            deferred._result = result

    def fail(self, error: BaseException) -> None:
        """The request failed as a whole: every ``Deferred`` without an answer raises it."""
        self._sent = True
        for _, deferred in self._queued:
            if not deferred.done():
                deferred._error = error
