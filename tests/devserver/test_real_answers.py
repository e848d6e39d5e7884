"""The requests where the dev server used to answer differently from a real Speckle
server (``shared/devserver-vs-real.md``), pinned to the real server's status and body.

Each expected body is the real server's, copied from that comparison (tokens and ids
masked there are filled in here). docs/devserver.md keeps the case-by-case table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from speckle_nb.devserver import DevServer
from speckle_nb.devserver.graphql_http import CSRF_MESSAGE

from .helpers import HEX42, bearer, raw_http

SERVER_INFO_NAME = "Speckle dev server (speckle-nb)"
CHALLENGE = "diffchallenge-AbC_123-xyz"
APP_REDIRECT = "http://127.0.0.1:8888/speckle-nb/callback"
JSON_HEADERS = {"Content-Type": "application/json"}
PREFLIGHT = {"apollo-require-preflight": "1"}
TOKEN_MUTATION = "mutation($t: ApiTokenCreateInput!){ apiTokenCreate(token:$t) }"
APP_QUERY = "query($id:String!){ app(id:$id){ id } }"


def express_404(method: str, path: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Error</title>\n</head>\n<body>\n<pre>Cannot {method} {path}</pre>\n"
        "</body>\n</html>\n"
    )


def errors(*items: tuple[str, list[tuple[int, int]] | None, str]) -> str:
    """A GraphQL errors-only body as Apollo serialises it (compact, newline)."""
    out = []
    for message, locations, code in items:
        entry: dict[str, Any] = {"message": message}
        if locations is not None:
            entry["locations"] = [{"line": line, "column": col} for line, col in locations]
        entry["extensions"] = {"code": code}
        out.append(entry)
    return json.dumps({"errors": out}, separators=(",", ":"), ensure_ascii=False) + "\n"


def body_error(message: str) -> str:
    return json.dumps(
        {"error": {"message": f"Invalid request body: {message}", "code": "USER_INPUT_ERROR"}},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def validation(message: str, *locations: tuple[int, int]) -> tuple[str, Any, str]:
    return (message, list(locations), "GRAPHQL_VALIDATION_FAILED")


def user_input(message: str, *locations: tuple[int, int]) -> tuple[str, Any, str]:
    return (message, list(locations), "BAD_USER_INPUT")


@dataclass
class Case:
    id: str
    method: str
    path: str
    status: int
    body: str
    request: dict[str, Any] = field(default_factory=dict)
    token: bool = False


CASES = [
    Case("ac-POST", "POST", "/auth/accesscode", 404, express_404("POST", "/auth/accesscode")),
    Case(
        "tok-malformed-json",
        "POST",
        "/auth/token",
        400,
        body_error("Unexpected end of JSON input"),
        {"content": '{"appId": ', "headers": JSON_HEADERS},
    ),
    Case(
        "tok-json-string",
        "POST",
        "/auth/token",
        400,
        body_error('Unexpected token \'"\', ""appId"" is not valid JSON'),
        {"content": '"appId"', "headers": JSON_HEADERS},
    ),
    Case(
        "tok-json-whitespace",
        "POST",
        "/auth/token",
        400,
        body_error("Unexpected end of JSON input"),
        {"content": "  \n", "headers": JSON_HEADERS},
    ),
    Case(
        "tok-json-long-garbage",
        "POST",
        "/auth/token",
        400,
        body_error('Unexpected token \'o\', ..."Secret": nope, "acce"... is not valid JSON'),
        {
            "content": '{"appId": "x", "appSecret": nope, "accessCode": "y"}',
            "headers": JSON_HEADERS,
        },
    ),
    Case(
        "tok-json-trailing-comma",
        "POST",
        "/auth/token",
        400,
        body_error(
            "Expected double-quoted property name in JSON at position 14 (line 1 column 15)"
        ),
        {"content": '{"appId": "x",}', "headers": JSON_HEADERS},
    ),
    Case("tok-GET", "GET", "/auth/token", 404, express_404("GET", "/auth/token")),
    Case(
        "pat-create-tokens-write",
        "POST",
        "/graphql",
        200,
        json.dumps(
            {
                "errors": [
                    {
                        "message": (
                            "You can't create a personal access token with the tokens:write scope"
                        ),
                        "locations": [{"line": 1, "column": 37}],
                        "path": ["apiTokenCreate"],
                        "extensions": {"code": "TOKEN_CREATE_ERROR", "statusCode": 400},
                    }
                ],
                "data": None,
            },
            separators=(",", ":"),
        )
        + "\n",
        {
            "json": {
                "query": TOKEN_MUTATION,
                "variables": {"t": {"name": "x", "scopes": ["tokens:write"]}},
            }
        },
        token=True,
    ),
    Case(
        "gql-project-unknown",
        "POST",
        "/graphql",
        200,
        '{"errors":[{"message":"Project not found","locations":[{"line":1,"column":3}],'
        '"path":["project"],"extensions":{"code":"STREAM_NOT_FOUND","statusCode":404}}],'
        '"data":null}\n',
        {"json": {"query": '{ project(id:"0000000000") { id name } }'}},
        token=True,
    ),
    Case(
        "gql-batch-one-invalid",
        "POST",
        "/graphql",
        400,
        "["
        + json.dumps({"data": {"serverInfo": {"name": SERVER_INFO_NAME}}}, separators=(",", ":"))
        + "\n,"
        + errors(validation('Cannot query field "zzzz" on type "Query".', (1, 3)))
        + "]",
        {"json": [{"query": "{ serverInfo { name } }"}, {"query": "{ zzzz }"}]},
    ),
    Case(
        "gql-GET-mutation",
        "GET",
        "/graphql?query=mutation+%7B+apiTokenRevoke%28token%3A%22x%22%29+%7D",
        405,
        errors(
            (
                "GET requests only support query operations, not mutation operations",
                None,
                "BAD_REQUEST",
            )
        ),
        {"headers": {"apollo-require-preflight": "true"}},
    ),
    Case(
        "gql-GET-bad-variables",
        "GET",
        "/graphql?query=%7B+serverInfo+%7B+version+%7D+%7D&variables=%7Bnope",
        400,
        errors(("The variables search parameter contains invalid JSON.", None, "BAD_REQUEST")),
        {"headers": {"apollo-require-preflight": "true"}},
    ),
    Case(
        "gql-malformed-json",
        "POST",
        "/graphql",
        400,
        body_error("Unexpected end of JSON input"),
        {"content": '{"query": ', "headers": JSON_HEADERS},
    ),
    Case(
        "gql-validation-error",
        "POST",
        "/graphql",
        400,
        errors(validation('Cannot query field "zzzz" on type "Query".', (1, 3))),
        {"json": {"query": "{ zzzz }"}},
    ),
    Case(
        "gql-missing-variable",
        "POST",
        "/graphql",
        400,
        errors(user_input('Variable "$id" of required type "String!" was not provided.', (1, 7))),
        {"json": {"query": APP_QUERY, "variables": {}}},
    ),
    Case(
        "gql-empty-operation-name",
        "POST",
        "/graphql",
        400,
        errors(('Unknown operation named "".', None, "OPERATION_RESOLUTION_FAILURE")),
        {"json": {"query": "query A { serverInfo { name } }", "operationName": ""}},
    ),
    Case(
        "gql-accept-graphql-response-json-error",
        "POST",
        "/graphql",
        400,
        errors(validation('Cannot query field "zzzz" on type "Query".', (1, 3))),
        {"json": {"query": "{ zzzz }"}, "headers": {"Accept": "application/graphql-response+json"}},
    ),
    Case(
        "gql-GET-no-query",
        "GET",
        "/graphql",
        400,
        errors(
            (
                "GraphQL operations must contain a non-empty `query` or a `persistedQuery` "
                "extension.",
                None,
                "BAD_REQUEST",
            )
        ),
        {"headers": PREFLIGHT},
    ),
    Case(
        "gql-GET-repeated-query",
        "GET",
        "/graphql?query=%7B+serverInfo+%7B+version+%7D+%7D&query=x",
        400,
        errors(("The 'query' search parameter may only be specified once.", None, "BAD_REQUEST")),
        {"headers": PREFLIGHT},
    ),
    Case(
        "gql-GET-variables-not-object",
        "GET",
        "/graphql?query=%7B+serverInfo+%7B+version+%7D+%7D&variables=%5B1%5D",
        400,
        errors(
            (
                "The variables search parameter should contain a JSON-encoded object.",
                None,
                "BAD_REQUEST",
            )
        ),
        {"headers": PREFLIGHT},
    ),
    Case(
        "gql-GET-variables-empty",
        "GET",
        "/graphql?query=%7B+serverInfo+%7B+version+%7D+%7D&variables=",
        400,
        errors(("The variables search parameter contains invalid JSON.", None, "BAD_REQUEST")),
        {"headers": PREFLIGHT},
    ),
    Case(
        "gql-GET-extensions-bad",
        "GET",
        "/graphql?query=%7B+serverInfo+%7B+version+%7D+%7D&extensions=%7B",
        400,
        errors(("The extensions search parameter contains invalid JSON.", None, "BAD_REQUEST")),
        {"headers": PREFLIGHT},
    ),
    Case(
        "gql-PUT",
        "PUT",
        "/graphql",
        405,
        errors(("Apollo Server supports only GET/POST requests.", None, "BAD_REQUEST")),
        {"json": {"query": "{ serverInfo { name } }"}},
    ),
    Case(
        "gql-PUT-no-content-type",
        "PUT",
        "/graphql",
        400,
        errors((CSRF_MESSAGE, None, "BAD_REQUEST")),
        {"content": "{}"},
    ),
    Case(
        "gql-extensions-string",
        "POST",
        "/graphql",
        400,
        errors(
            (
                "`extensions` in a POST body should be provided as an object, not a "
                "recursively JSON-encoded string.",
                None,
                "BAD_REQUEST",
            )
        ),
        {"json": {"query": "{ serverInfo { name } }", "extensions": "x"}},
    ),
    Case(
        "gql-extensions-array",
        "POST",
        "/graphql",
        400,
        errors(("`extensions` in a POST body must be an object if provided.", None, "BAD_REQUEST")),
        {"json": {"query": "{ serverInfo { name } }", "extensions": [1]}},
    ),
    Case(
        "gql-query-document-object",
        "POST",
        "/graphql",
        400,
        errors(
            (
                "GraphQL queries must be strings. It looks like you're sending the internal "
                "graphql-js representation of a parsed query in your request instead of a "
                "request in the GraphQL query language. You can convert an AST to a string "
                "using the `print` function from `graphql`, or use a client like "
                "`apollo-client` which converts the internal representation to a string for "
                "you.",
                None,
                "BAD_REQUEST",
            )
        ),
        {"json": {"query": {"kind": "Document", "definitions": []}}},
    ),
    Case(
        "gql-json-whitespace-body",
        "POST",
        "/graphql",
        400,
        body_error("Unexpected end of JSON input"),
        {"content": " ", "headers": JSON_HEADERS},
    ),
    Case(
        "gql-batch-with-bad-entry",
        "POST",
        "/graphql",
        400,
        errors(
            (
                "POST body missing, invalid Content-Type, or JSON object has no keys.",
                None,
                "BAD_REQUEST",
            )
        ),
        {"json": [{"query": "{ serverInfo { name } }"}, 5]},
    ),
    Case(
        "gql-val-missing-argument",
        "POST",
        "/graphql",
        400,
        errors(
            validation(
                'Field "app" argument "id" of type "String!" is required, but it was not provided.',
                (1, 3),
            )
        ),
        {"json": {"query": "{ app { id } }"}},
    ),
    Case(
        "gql-val-unknown-argument",
        "POST",
        "/graphql",
        400,
        errors(validation('Unknown argument "nope" on field "Query.app".', (1, 18))),
        {"json": {"query": '{ app(id: "sca", nope: 1) { id } }'}},
    ),
    Case(
        "gql-val-no-subselection",
        "POST",
        "/graphql",
        400,
        errors(
            validation(
                'Field "serverInfo" of type "ServerInfo!" must have a selection of subfields. '
                'Did you mean "serverInfo { ... }"?',
                (1, 3),
            )
        ),
        {"json": {"query": "{ serverInfo }"}},
    ),
    Case(
        "gql-val-leaf-subselection",
        "POST",
        "/graphql",
        400,
        errors(
            validation(
                'Field "name" must not have a selection since type "String!" has no subfields.',
                (1, 21),
            )
        ),
        {"json": {"query": "{ serverInfo { name { x } } }"}},
    ),
    Case(
        "gql-val-undefined-variable",
        "POST",
        "/graphql",
        400,
        errors(validation('Variable "$x" is not defined.', (1, 17), (1, 1))),
        {"json": {"query": "query { app(id: $x) { id } }"}},
    ),
    Case(
        "gql-val-unused-variable",
        "POST",
        "/graphql",
        400,
        errors(validation('Variable "$x" is never used.', (1, 7))),
        {"json": {"query": 'query($x: String) { app(id: "sca") { id } }'}},
    ),
    Case(
        "gql-val-duplicate-operations",
        "POST",
        "/graphql",
        400,
        errors(validation('There can be only one operation named "A".', (1, 7), (1, 39))),
        {"json": {"query": "query A { serverInfo { name } } query A { serverInfo { name } }"}},
    ),
    Case(
        "gql-val-unknown-type",
        "POST",
        "/graphql",
        400,
        errors(
            validation('Unknown type "Zzzz".', (1, 11)),
            validation('Variable "$x" is never used.', (1, 7)),
        ),
        {"json": {"query": "query($x: Zzzz) { serverInfo { name } }"}},
    ),
    Case(
        "gql-val-unknown-type-suggestions",
        "POST",
        "/graphql",
        400,
        errors(
            validation('Unknown type "Nope". Did you mean "Role" or "Scope"?', (1, 11)),
            validation('Variable "$x" is never used.', (1, 7)),
        ),
        {"json": {"query": "query($x: Nope) { serverInfo { name } }"}},
    ),
    Case(
        "gql-val-directive-argument",
        "POST",
        "/graphql",
        400,
        errors(
            validation(
                'Directive "@include" argument "if" of type "Boolean!" is required, but it was '
                "not provided.",
                (1, 21),
            )
        ),
        {"json": {"query": "{ serverInfo { name @include } }"}},
    ),
    Case(
        "gql-val-unknown-directive",
        "POST",
        "/graphql",
        400,
        errors(validation('Unknown directive "@nope".', (1, 21))),
        {"json": {"query": "{ serverInfo { name @nope } }"}},
    ),
    Case(
        "gql-val-field-conflict",
        "POST",
        "/graphql",
        400,
        errors(
            validation(
                'Fields "app" conflict because they have differing arguments. Use different '
                "aliases on the fields to fetch both if this was intentional.",
                (1, 3),
                (1, 23),
            )
        ),
        {"json": {"query": '{ app(id: "a") { id } app(id: "b") { id } }'}},
    ),
    Case(
        "gql-val-variable-position",
        "POST",
        "/graphql",
        400,
        errors(
            validation(
                'Variable "$x" of type "String" used in position expecting type "String!".',
                (1, 9),
                (1, 31),
            )
        ),
        {"json": {"query": "query A($x: String) { app(id: $x) { id } }"}},
    ),
    Case(
        "gql-val-syntax-char",
        "POST",
        "/graphql",
        400,
        errors(('Syntax Error: Unexpected character: "%".', [(1, 25)], "GRAPHQL_PARSE_FAILED")),
        {"json": {"query": "{ serverInfo { name } } %"}},
    ),
    Case(
        "gql-var-null-non-null",
        "POST",
        "/graphql",
        400,
        errors(user_input('Variable "$id" of non-null type "String!" must not be null.', (1, 7))),
        {"json": {"query": APP_QUERY, "variables": {"id": None}}},
    ),
    Case(
        "gql-var-wrong-type",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$id" got invalid value 5; String cannot represent a non string value: 5',
                (1, 7),
            )
        ),
        {"json": {"query": APP_QUERY, "variables": {"id": 5}}},
    ),
    Case(
        "gql-var-bool-for-string",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$id" got invalid value true; String cannot represent a non string '
                "value: true",
                (1, 7),
            )
        ),
        {"json": {"query": APP_QUERY, "variables": {"id": True}}},
    ),
    Case(
        "gql-var-object-for-string",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$id" got invalid value { a: [1, "b"] }; String cannot represent a '
                'non string value: { a: [1, "b"] }',
                (1, 7),
            )
        ),
        {"json": {"query": APP_QUERY, "variables": {"id": {"a": [1, "b"]}}}},
    ),
    Case(
        "gql-var-input-missing-field",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$t" got invalid value { name: "x" }; Field "scopes" of required '
                'type "[String!]!" was not provided.',
                (1, 10),
            )
        ),
        {"json": {"query": TOKEN_MUTATION, "variables": {"t": {"name": "x"}}}},
        token=True,
    ),
    Case(
        "gql-var-input-unknown-field",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$t" got invalid value { name: "x", scopes: [], nme: 1 }; Field "nme" '
                'is not defined by type "ApiTokenCreateInput". Did you mean "name"?',
                (1, 10),
            )
        ),
        {
            "json": {
                "query": TOKEN_MUTATION,
                "variables": {"t": {"name": "x", "scopes": [], "nme": 1}},
            }
        },
        token=True,
    ),
    Case(
        "gql-var-input-not-object",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$t" got invalid value "x"; Expected type "ApiTokenCreateInput" to be '
                "an object.",
                (1, 10),
            )
        ),
        {"json": {"query": TOKEN_MUTATION, "variables": {"t": "x"}}},
        token=True,
    ),
    Case(
        "gql-var-list-item-null",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$t" got invalid value null at "t.scopes[1]"; Expected non-nullable '
                'type "String!" not to be null.',
                (1, 10),
            )
        ),
        {
            "json": {
                "query": TOKEN_MUTATION,
                "variables": {"t": {"name": "x", "scopes": ["profile:read", None]}},
            }
        },
        token=True,
    ),
    Case(
        "gql-var-enum-bad",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$t" got invalid value "projekt" at "t.limitResources[0].type"; Value '
                '"projekt" does not exist in "TokenResourceIdentifierType" enum. Did you mean '
                'the enum value "project"?',
                (1, 10),
            )
        ),
        {
            "json": {
                "query": TOKEN_MUTATION,
                "variables": {
                    "t": {
                        "name": "x",
                        "scopes": ["profile:read"],
                        "limitResources": [{"id": "p", "type": "projekt"}],
                    }
                },
            }
        },
        token=True,
    ),
    Case(
        "gql-var-enum-not-string",
        "POST",
        "/graphql",
        400,
        errors(
            user_input(
                'Variable "$t" got invalid value 3 at "t.limitResources[0].type"; Enum '
                '"TokenResourceIdentifierType" cannot represent non-string value: 3.',
                (1, 10),
            )
        ),
        {
            "json": {
                "query": TOKEN_MUTATION,
                "variables": {
                    "t": {
                        "name": "x",
                        "scopes": ["profile:read"],
                        "limitResources": [{"id": "p", "type": 3}],
                    }
                },
            }
        },
        token=True,
    ),
    Case(
        "unknown-route-quote",
        "GET",
        "/it's<here>",
        404,
        express_404("GET", "/it&#39;s%3Chere%3E"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_answers_as_the_real_server(devserver: DevServer, http: httpx.Client, case: Case) -> None:
    request = dict(case.request)
    if case.token:
        token = devserver.state.create_token(
            devserver.demo_user.id, ["tokens:write", "profile:read", "streams:read"]
        )
        request["headers"] = {**request.get("headers", {}), **bearer(token)}

    answer = http.request(case.method, case.path, **request)

    assert (answer.status_code, answer.text) == (case.status, case.body)


def test_the_validation_errors_come_in_graphql_js_order(http: httpx.Client) -> None:
    # The real body was cut short in the comparison after its third error; the first
    # three are the real server's, the fourth follows from the same rule.
    answer = http.post(
        "/graphql", json={"query": "query A($x: Zzzz, $y: String) { serverInfo { name } zz }"}
    )

    assert answer.status_code == 400
    assert [e["message"] for e in answer.json()["errors"]] == [
        'Unknown type "Zzzz".',
        'Cannot query field "zz" on type "Query".',
        'Variable "$x" is never used in operation "A".',
        'Variable "$y" is never used in operation "A".',
    ]


def test_a_batch_is_joined_from_each_entrys_own_serialisation(
    devserver: DevServer, http: httpx.Client
) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])

    answer = http.post(
        "/graphql",
        json=[{"query": "{ serverInfo { name } }"}, {"query": "{ activeUser { id } }"}],
        headers=bearer(token),
    )

    # Apollo writes each result as JSON plus a newline, then joins them into an array.
    assert (answer.status_code, answer.text) == (
        200,
        f'[{{"data":{{"serverInfo":{{"name":"{SERVER_INFO_NAME}"}}}}}}\n,'
        f'{{"data":{{"activeUser":{{"id":"{devserver.demo_user.id}"}}}}}}\n]',
    )


def test_revoking_a_revoked_token_is_a_user_input_error(
    devserver: DevServer, http: httpx.Client
) -> None:
    caller = devserver.state.create_token(devserver.demo_user.id, ["tokens:write"])
    gone = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])
    mutation = {
        "query": "mutation($t:String!){ apiTokenRevoke(token:$t) }",
        "variables": {"t": gone},
    }
    first = http.post("/graphql", json=mutation, headers=bearer(caller))

    again = http.post("/graphql", json=mutation, headers=bearer(caller))

    assert first.json() == {"data": {"apiTokenRevoke": True}}
    assert (again.status_code, again.text) == (
        200,
        '{"errors":[{"message":"Did not revoke token","locations":[{"line":1,"column":23}],'
        '"path":["apiTokenRevoke"],"extensions":{"code":"USER_INPUT_ERROR","statusCode":400}}],'
        '"data":null}\n',
    )


@pytest.mark.parametrize(
    ("accept", "body"),
    [
        (None, "Found. Redirecting to {url}"),
        ("text/html", "<p>Found. Redirecting to {url}</p>"),
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "<p>Found. Redirecting to {url}</p>",
        ),
    ],
)
@pytest.mark.parametrize(
    ("app_id", "redirect"),
    [
        ("dev", APP_REDIRECT),
        ("query", "http://127.0.0.1:8888/cb?x=1"),
        ("sca", "http://localhost:29363"),
        ("connectrV3", "http://localhost:29355"),
    ],
)
def test_access_code_redirects_say_where_as_express_does(
    devserver: DevServer,
    http: httpx.Client,
    accept: str | None,
    body: str,
    app_id: str,
    redirect: str,
) -> None:
    if app_id in ("dev", "query"):
        app_id = devserver.state.register_app("a", redirect, ["profile:read"]).id
    web = devserver.state.create_session_token(devserver.demo_user.id)
    headers = {"Accept": accept} if accept else {}

    answer = http.get(
        "/auth/accesscode",
        params={"appId": app_id, "challenge": CHALLENGE, "token": web},
        headers=headers,
    )

    location = answer.headers["location"]
    code = location.removeprefix(f"{redirect}?access_code=")
    assert HEX42.match(code)
    assert (answer.status_code, answer.text) == (302, body.format(url=location))


def test_logout_with_a_refresh_token_that_is_not_a_string_fails_after_revoking(
    devserver: DevServer, http: httpx.Client
) -> None:
    token = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])

    answer = http.post("/auth/logout", json={"token": token, "refreshToken": 5})

    assert (answer.status_code, answer.text) == (
        400,
        "Something went wrong while trying to logout.",
    )
    assert devserver.state.validate_token(token) is None


def test_get_with_a_browser_accept_header_is_the_landing_page(http: httpx.Client) -> None:
    answer = http.get("/graphql", headers={"Accept": "text/html"})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "GraphQL" in answer.text


def test_a_raw_request_line_path_is_encoded_before_it_is_escaped(devserver: DevServer) -> None:
    reply = raw_http(
        devserver.url, b'GET /a<b>%zz"c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    )

    assert b"<pre>Cannot GET /a%3Cb%3E%25zz%22c</pre>" in reply


def test_the_local_auth_strategy_is_described_as_the_server_source_does(
    http: httpx.Client,
) -> None:
    # The comparison cut this body short; the strategy's fields are from local.ts.
    query = "{ serverInfo { authStrategies { id name icon color url } } }"

    answer = http.post("/graphql", json={"query": query})

    assert answer.json() == {
        "data": {
            "serverInfo": {
                "authStrategies": [
                    {
                        "id": "local",
                        "name": "Local",
                        "icon": "TODO",
                        "color": "accent",
                        "url": "/auth/local",
                    }
                ]
            }
        }
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "GraphQL queries must be strings."),  # an empty object is truthy in JavaScript
        (0, "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension."),
        (
            "",
            "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.",
        ),
    ],
)
def test_a_query_that_is_not_a_string_is_judged_with_javascripts_truthiness(
    http: httpx.Client, query: object, message: str
) -> None:
    answer = http.post("/graphql", json={"query": query})

    assert (answer.status_code, answer.text) == (400, errors((message, None, "BAD_REQUEST")))
