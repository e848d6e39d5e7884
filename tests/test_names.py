"""One definition for every name the kernel and the Jupyter server share (``speckle_nb._names``).

A string literal equal to one of its values anywhere else in ``speckle_nb`` (docstrings aside)
is a second definition that can drift. The dev server is left out: it plays Speckle, a separate
program with names of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

from speckle_nb import _names, pickup
from speckle_nb.server import flows

PACKAGE = Path(_names.__file__).resolve().parent
SHARED = {
    name: value for name, value in vars(_names).items() if name.isupper() and isinstance(value, str)
}


def docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def second_definitions() -> list[str]:
    by_value = {value: name for name, value in SHARED.items()}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "_names.py" or relative.startswith("devserver/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = docstring_nodes(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in by_value
                and id(node) not in docstrings
            ):
                found.append(f"{relative}:{node.lineno} spells {by_value[node.value]}")
    return found


def test_the_shared_names_are_found() -> None:
    # A floor, so that a broken discovery cannot make the test below pass on nothing.
    assert {"DEFAULT_SERVER_URL", "ENV_SERVER_URL", "ENV_TOKEN", "INSTANCE_HEADER"} <= set(SHARED)


def test_no_shared_name_is_spelled_out_twice() -> None:
    assert second_definitions() == []


def test_both_sides_hash_the_pickup_secret_with_one_function() -> None:
    assert flows.pickup_hash is _names.pickup_hash
    request = pickup.SignInRequest.new()
    assert request.pickup_hash == _names.pickup_hash(request.pickup_secret)
