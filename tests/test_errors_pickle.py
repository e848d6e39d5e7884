"""Every public error crosses a process boundary intact (dask, multiprocessing, ipyparallel pickle
what a worker raises). The classes are discovered, not listed: a new error is covered the day
it is exported."""

from __future__ import annotations

import inspect
import multiprocessing
import pickle
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

import speckle_nb
from speckle_nb import errors


def _all_subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def public_errors() -> list[type[errors.SpeckleError]]:
    exported = {
        value
        for name in speckle_nb.__all__
        if isinstance(value := getattr(speckle_nb, name), type)
        and issubclass(value, errors.SpeckleError)
    }
    defined = {
        cls
        for cls in _all_subclasses(errors.SpeckleError)
        if cls.__module__.startswith("speckle_nb") and not cls.__name__.startswith("_")
    }
    return sorted(exported | defined | {errors.SpeckleError}, key=lambda cls: cls.__name__)


def sample(name: str, hint: Any) -> Any:
    """A distinctive value of the parameter's type, so a lost or swapped attribute shows."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    origin = typing.get_origin(hint) or hint
    if origin is str:
        return f"<{name} value>"
    if origin is bool:
        return True
    if origin is int:
        return 418
    if origin is float:
        return 2.5
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return {"project": {"id": "p1"}, "from": name}
    if isinstance(origin, type) and issubclass(origin, Sequence):
        return [{"message": f"<{name} item>", "extensions": {"code": "FORBIDDEN"}}]
    raise AssertionError(f"no sample value for {name}: {hint!r}; teach sample() this type")


def make(cls: type[errors.SpeckleError]) -> errors.SpeckleError:
    """An instance with every constructor argument given (positional ones by position)."""
    hints = typing.get_type_hints(cls.__init__)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        value = sample(parameter.name, hints[parameter.name])
        if parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[parameter.name] = value
        else:
            args.append(value)
    return cls(*args, **kwargs)


def round_trip(error: errors.SpeckleError, protocol: int = pickle.DEFAULT_PROTOCOL) -> Any:
    # Bytes this test made a line earlier: nothing untrusted is unpickled.
    return pickle.loads(pickle.dumps(error, protocol=protocol))  # noqa: S301


def same(before: errors.SpeckleError, after: errors.SpeckleError) -> None:
    assert type(after) is type(before)
    assert str(after) == str(before)
    assert after.args == before.args
    assert vars(after) == vars(before)
    assert vars(after), "no attributes were compared"
    if isinstance(before, errors.SignInError):
        assert after.reason == before.reason  # type: ignore[attr-defined]


def test_discovery_finds_the_whole_tree() -> None:
    found = {cls.__name__ for cls in public_errors()}
    # A floor, not the list: discovery must at least see the tree errors.py draws.
    assert set(errors.__all__) <= found
    assert {"ServerError", "RateLimitedError", "MissingScopeError"} <= found


@pytest.mark.parametrize("cls", public_errors(), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", [pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL, 2])
def test_error_survives_a_pickle_round_trip(cls: type[errors.SpeckleError], protocol: int) -> None:
    error = make(cls)
    error.__notes__ = ["a note added on the way up"]  # add_note() is 3.11+
    after = round_trip(error, protocol)
    same(error, after)
    assert after.__notes__ == ["a note added on the way up"]


def test_graphql_error_keeps_its_codes_and_partial_data() -> None:
    error = errors.MissingScopeError(
        "This needs streams:write.",
        scope="streams:write",
        server_url="https://speckle.example",
        errors=[{"message": "no", "extensions": {"code": "FORBIDDEN"}}],
        data={"activeUser": {"id": "u1"}},
    )
    after = round_trip(error)
    assert isinstance(after, errors.MissingScopeError)
    assert after.scope == "streams:write"
    assert after.codes == ["FORBIDDEN"]
    assert after.data == {"activeUser": {"id": "u1"}}


def _raise_rate_limited(retry_after: float) -> None:
    raise errors.RateLimitedError(
        "Speckle is rate limiting; retry after 3 s.",
        server_url="https://speckle.example",
        retry_after=retry_after,
    )


def test_error_raised_in_a_worker_process_arrives_whole() -> None:
    """The real boundary: a spawned process raises, the parent catches the same error."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool, pytest.raises(errors.RateLimitedError) as caught:
        # A result that cannot be unpickled never arrives (the pool's thread dies): bound the wait.
        pool.apply_async(_raise_rate_limited, (3.0,)).get(timeout=60)
    assert caught.value.retry_after == 3.0
    assert caught.value.server_url == "https://speckle.example"
    assert str(caught.value) == "Speckle is rate limiting; retry after 3 s."
