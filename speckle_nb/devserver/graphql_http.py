"""GraphQL over HTTP the way Apollo Server 4 answers it (§7.1, §13.5, §13.12). No tornado.

CSRF prevention, batching, ``Accept`` negotiation and Apollo's error codes; the
schema and its authorization live in ``schema.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationType,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)

from .schema import GraphQLContext, dev_schema

CSRF_MESSAGE = (
    "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). "
    "Please either specify a 'content-type' header (with a type that is not one of "
    "application/x-www-form-urlencoded, multipart/form-data, text/plain) or provide a "
    "non-empty value for one of the following headers: x-apollo-operation-name, "
    "apollo-require-preflight\n"
)
JSON_TYPE = "application/json; charset=utf-8"
GRAPHQL_RESPONSE_TYPE = "application/graphql-response+json; charset=utf-8"
_NON_PREFLIGHTED = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
PREFLIGHT_HEADERS = ("x-apollo-operation-name", "apollo-require-preflight")


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def dumps(value: object) -> str:
    """``JSON.stringify`` spacing, plus the newline Apollo appends."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


def bad_request(message: str, status: int = 400, code: str = "BAD_REQUEST") -> Answer:
    return Answer(status, {"errors": [{"message": message, "extensions": {"code": code}}]})


def mime_essence(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def csrf_blocked(headers: Mapping[str, str]) -> bool:
    """Apollo's rule: a "simple" request (no preflight possible) is refused."""
    essence = mime_essence(headers.get("Content-Type"))
    if essence and essence not in _NON_PREFLIGHTED:
        return False
    return not any(headers.get(name) for name in PREFLIGHT_HEADERS)


def negotiate(accept: str | None) -> str | None:
    """The response media type for ``accept``, or None when it allows neither JSON type."""
    if not accept or not accept.strip():
        return JSON_TYPE
    offers = (
        ("application", "json", JSON_TYPE),
        ("application", "graphql-response+json", GRAPHQL_RESPONSE_TYPE),
    )
    best: tuple[float, int, str] | None = None
    for rank, (kind, sub, answer) in enumerate(offers):
        quality = _quality(accept, kind, sub)
        if quality > 0 and (best is None or (quality, -rank) > (best[0], best[1])):
            best = (quality, -rank, answer)
    return None if best is None else best[2]


def _quality(accept: str, kind: str, sub: str) -> float:
    """The q of the most specific range in ``accept`` matching kind/sub (0 if none)."""
    found: tuple[int, float] | None = None
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        if "/" not in media:
            continue
        r_kind, r_sub = (x.lower() for x in media.split("/", 1))
        if r_kind == kind and r_sub == sub:
            specificity = 2
        elif r_kind == kind and r_sub == "*":
            specificity = 1
        elif r_kind == "*" and r_sub == "*":
            specificity = 0
        else:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if found is None or specificity > found[0]:
            found = (specificity, quality)
    return 0.0 if found is None else found[1]


def operations_in(payload: object) -> int:
    """How many operations a request carries: a batch counts one per entry (§9)."""
    return len(payload) if isinstance(payload, list) else 1


def run_request(
    payload: object, *, method: str, context: GraphQLContext, accept: str | None
) -> Answer:
    """One HTTP request: a single operation or a batch (a JSON array)."""
    if isinstance(payload, list):
        if not payload:
            return bad_request("No operations found in request.")
        answers = [run_operation(entry, method=method, context=context) for entry in payload]
        # Apollo keeps the status of the last entry it finished.
        combined = Answer(answers[-1].status, [a.body for a in answers])
        for answer in answers:
            combined.headers.update(answer.headers)
    else:
        combined = run_operation(payload, method=method, context=context)
    media = negotiate(accept)
    if media is None:
        # Checked after execution, as Apollo does: a mutation has already run.
        return bad_request(
            "An 'accept' header was provided for this request which does not accept "
            f"{JSON_TYPE} or {GRAPHQL_RESPONSE_TYPE}",
            status=406,
        )
    combined.headers.setdefault("Content-Type", media)
    combined.headers["Cache-Control"] = "no-store"
    return combined


def run_operation(request: object, *, method: str, context: GraphQLContext) -> Answer:
    if not isinstance(request, dict) or not request:
        return bad_request("POST body missing, invalid Content-Type, or JSON object has no keys.")
    query = request.get("query")
    if query is not None and not isinstance(query, str):
        return bad_request("GraphQL queries must be strings.")
    variables = request.get("variables")
    if isinstance(variables, str):
        if method == "POST":
            return bad_request(
                "`variables` in a POST body should be provided as an object, not a "
                "recursively JSON-encoded string."
            )
        try:
            variables = json.loads(variables)
        except ValueError:
            return bad_request("`variables` in a GET request must be valid JSON.")
    if variables is not None and not isinstance(variables, dict):
        return bad_request("`variables` in a POST body must be an object if provided.")
    operation_name = request.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        return bad_request("`operationName` in a POST body must be a string if provided.")
    if not query:
        return bad_request(
            "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension."
        )

    schema = dev_schema()
    document, problems = _checked_document(query)
    if problems:
        return Answer(400, {"errors": problems})
    assert document is not None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (
            f'Unknown operation named "{operation_name}".'
            if operation_name
            else "Must provide operation name if query contains multiple operations."
        )
        return bad_request(message, code="OPERATION_RESOLUTION_FAILURE")
    if method == "GET" and operation.operation != OperationType.QUERY:
        answer = bad_request(
            f"Can only perform a {operation.operation.value} operation from a POST request.",
            status=405,
        )
        answer.headers["Allow"] = "POST"
        return answer

    result = execute_sync(
        schema,
        document,
        context_value=context,
        variable_values=variables,
        operation_name=operation_name,
    )
    return Answer(200, _result_body(result))


@lru_cache(maxsize=256)
def _checked_document(query: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """Parse and validate once per query text, as Apollo Server 4's document cache does:
    a dev server that re-validates every operation would make every client look slower
    than against the real server (about 1 ms per operation here)."""
    try:
        document = parse(query)
    except GraphQLError as err:
        return None, [_format(err, "GRAPHQL_PARSE_FAILED")]
    problems = validate(dev_schema(), document)
    if problems:
        return None, [_format(e, "GRAPHQL_VALIDATION_FAILED") for e in problems]
    return document, []


def _result_body(result: ExecutionResult) -> dict[str, Any]:
    # Apollo orders errors before data; request-level errors (bad variables) have no data.
    body: dict[str, Any] = {}
    if result.errors:
        request_level = result.data is None and all(e.path is None for e in result.errors)
        default = "BAD_USER_INPUT" if request_level else "INTERNAL_SERVER_ERROR"
        body["errors"] = [_format(e, default) for e in result.errors]
        if request_level:
            return body
    body["data"] = result.data
    return body


def _format(error: GraphQLError, default_code: str) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", default_code)
    formatted["extensions"] = extensions
    return formatted
