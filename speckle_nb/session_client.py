"""The session's client: a ``SpeckleClient`` that tells the session when the server says the
sign-in no longer works, so every live panel can show it instead of "Signed in".

Two answers mean that: ``InvalidTokenError`` once any refresh has been tried (the token is
dead, and renewing it failed or was not possible), and ``WorkspaceSsoError`` (the token works,
but a workspace's single sign-on session lapsed). The error is raised to the caller as before;
the session only hears of it first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ._coalesce import Batch
from ._graphql_core import OperationLike, Result
from .errors import InvalidTokenError, SpeckleError, WorkspaceSsoError
from .graphql import SpeckleClient

__all__ = ["SessionClient"]


class SessionClient(SpeckleClient):
    """``SpeckleClient`` plus ``on_failure(client, error)``, called before the error is raised."""

    def __init__(
        self,
        *args: Any,
        on_failure: Callable[[SessionClient, SpeckleError], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_failure = on_failure

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        # active_user(), server_info() and projects() all go through here.
        try:
            return super().execute(query, variables, operation_name)
        except (InvalidTokenError, WorkspaceSsoError) as exc:
            self._on_failure(self, exc)
            raise

    def execute_many(self, operations: Sequence[OperationLike]) -> list[Result]:
        # Each operation's GraphQL errors stay on its Result; a dead token fails them all.
        try:
            return super().execute_many(operations)
        except InvalidTokenError as exc:
            self._on_failure(self, exc)
            raise

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        # A dead token fails the whole batch when its block ends.
        try:
            with super().batch() as queued:
                yield queued
        except InvalidTokenError as exc:
            self._on_failure(self, exc)
            raise
