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
from urllib.parse import parse_qs

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

from .express import negotiate as express_negotiate
from .graphql_js import VALIDATION_RULES, js_message, variable_errors
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
    raw: str | None = None
    """The exact text to send, when it is not ``dumps(body)`` (a batch)."""

    def text(self) -> str:
        return dumps(self.body) if self.raw is None else self.raw


def dumps(value: object) -> str:
    """``JSON.stringify`` spacing, plus the newline Apollo appends."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


LANDING_PAGE = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    "<title>GraphQL · Speckle dev server</title>\n</head>\n<body>\n"
    "<h1>GraphQL endpoint</h1>\n<p>POST GraphQL operations here as JSON. A real Speckle "
    "server shows Apollo's landing page, loaded from Apollo's CDN; the dev server stays "
    "offline.</p>\n</body>\n</html>\n"
)
_LANDING_OFFERS = (
    "application/json",
    "application/graphql-response+json",
    "multipart/mixed",
    "text/html",
)


def prefers_html(accept: str | None) -> bool:
    """Apollo's ``prefersHtml``: a GET whose ``Accept`` ranks HTML first gets the landing page."""
    return accept is not None and express_negotiate(accept, _LANDING_OFFERS) == "text/html"


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


class HttpRequestError(Exception):
    """Apollo's ``BadRequestError`` thrown before execution: it answers the whole HTTP
    request, a whole batch included."""

    def __init__(self, message: str, status: int = 400, allow: str | None = None) -> None:
        super().__init__(message)
        self.answer = bad_request(message, status=status)
        if allow is not None:
            self.answer.headers["Allow"] = allow


QUERY_IS_AST = (
    "GraphQL queries must be strings. It looks like you're sending the internal graphql-js "
    "representation of a parsed query in your request instead of a request in the GraphQL "
    "query language. You can convert an AST to a string using the `print` function from "
    "`graphql`, or use a client like `apollo-client` which converts the internal "
    "representation to a string for you."
)
NO_BODY = "POST body missing, invalid Content-Type, or JSON object has no keys."


def request_from_search(search: str) -> dict[str, Any]:
    """A GET request's operation from its query string (``runHttpQuery``, GET branch)."""
    params = parse_qs(search, keep_blank_values=True)

    def once(name: str) -> str | None:
        values = params.get(name, [])
        if len(values) > 1:
            raise HttpRequestError(f"The '{name}' search parameter may only be specified once.")
        return values[0] if values else None

    def json_once(name: str) -> object:
        value = once(name)
        if value is None:
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            raise HttpRequestError(f"The {name} search parameter contains invalid JSON.") from None
        if not isinstance(parsed, dict):
            raise HttpRequestError(
                f"The {name} search parameter should contain a JSON-encoded object."
            )
        return parsed

    request = {"query": once("query"), "operationName": once("operationName")}
    return {**request, "variables": json_once("variables"), "extensions": json_once("extensions")}


def check_post_entry(entry: object) -> dict[str, Any]:
    """``runHttpQuery``'s POST checks, in its order; any failure ends the whole request."""
    if not isinstance(entry, dict) or not entry:
        raise HttpRequestError(NO_BODY)
    query = entry.get("query")
    # JavaScript's `!query`: an empty object or list is truthy there, unlike in Python.
    if (query or isinstance(query, dict | list)) and not isinstance(query, str):
        is_ast = isinstance(query, dict) and query.get("kind") == "Document"
        raise HttpRequestError(QUERY_IS_AST if is_ast else "GraphQL queries must be strings.")
    for name in ("variables", "extensions"):
        if isinstance(entry.get(name), str):
            raise HttpRequestError(
                f"`{name}` in a POST body should be provided as an object, not a "
                "recursively JSON-encoded string."
            )
    for name in ("extensions", "variables"):
        if entry.get(name) is not None and not isinstance(entry[name], dict):
            raise HttpRequestError(f"`{name}` in a POST body must be an object if provided.")
    operation_name = entry.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise HttpRequestError("`operationName` in a POST body must be a string if provided.")
    return {
        "query": query if isinstance(query, str) else None,
        "operationName": operation_name,
        "variables": entry.get("variables"),
    }


def run_request(
    payload: object, *, method: str, context: GraphQLContext, accept: str | None
) -> Answer:
    """One HTTP request: a single operation or a batch (a JSON array, POST only)."""
    try:
        if method == "GET":
            assert isinstance(payload, str)
            requests: list[dict[str, Any]] = [request_from_search(payload)]
        elif method != "POST":
            raise HttpRequestError(
                "Apollo Server supports only GET/POST requests.", status=405, allow="GET, POST"
            )
        elif isinstance(payload, list):
            if not payload:
                raise HttpRequestError("No operations found in request.")
            requests = [check_post_entry(entry) for entry in payload]
        else:
            requests = [check_post_entry(payload)]
    except HttpRequestError as err:
        return err.answer
    answers = [run_operation(r, method=method, context=context) for r in requests]
    if isinstance(payload, list):
        # Apollo joins each entry's own serialisation (newline included) into an array,
        # and keeps the status of the last entry it finished.
        combined = Answer(answers[-1].status, [a.body for a in answers])
        combined.raw = "[" + ",".join(dumps(a.body) for a in answers) + "]"
        for answer in answers:
            combined.headers.update(answer.headers)
    else:
        combined = answers[0]
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


def run_operation(request: Mapping[str, Any], *, method: str, context: GraphQLContext) -> Answer:
    """Apollo's request pipeline for one checked operation."""
    query = request.get("query")
    variables = request.get("variables") or {}
    operation_name = request.get("operationName")
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
    if operation is None or (operation_name is not None and operation_name == ""):
        # An empty name is a name that no operation has (Apollo tests presence).
        message = (
            f'Unknown operation named "{operation_name}".'
            if operation_name is not None
            else "Must provide operation name if query contains multiple operations."
        )
        return bad_request(message, code="OPERATION_RESOLUTION_FAILURE")
    if method == "GET" and operation.operation != OperationType.QUERY:
        answer = bad_request(
            "GET requests only support query operations, not "
            f"{operation.operation.value} operations",
            status=405,
        )
        answer.headers["Allow"] = "POST"
        return answer
    coercion = variable_errors(schema, operation, variables)
    if coercion:
        # Apollo answers a variable that does not coerce with HTTP 400, no data.
        errors = [_format(e, "BAD_USER_INPUT", js_words=False) for e in coercion]
        return Answer(400, {"errors": errors})

    result = execute_sync(
        schema,
        document,
        context_value=context,
        variable_values=variables,
        operation_name=operation_name,
    )
    body = _result_body(result)
    # Errors before execution (no data at all) are the request's fault: 400, as above.
    return Answer(400 if "data" not in body else 200, body)


@lru_cache(maxsize=256)
def _checked_document(query: str) -> tuple[DocumentNode | None, list[dict[str, Any]]]:
    """Parse and validate once per query text, as Apollo Server 4's document cache does:
    a dev server that re-validates every operation would make every client look slower
    than against the real server (about 1 ms per operation here)."""
    try:
        document = parse(query)
    except GraphQLError as err:
        return None, [_format(err, "GRAPHQL_PARSE_FAILED")]
    problems = validate(dev_schema(), document, VALIDATION_RULES)
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


def _format(error: GraphQLError, default_code: str, *, js_words: bool = True) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    if js_words and error.path is None:
        # Parse, validation and coercion errors: graphql-core's words, graphql-js 16's quotes.
        formatted["message"] = js_message(error.message)
    extensions = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", default_code)
    formatted["extensions"] = extensions
    return formatted
