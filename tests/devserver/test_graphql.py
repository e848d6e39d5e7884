"""``/graphql``: auth, scope errors, batching, pagination, CSRF, Accept (§7, §13.5–6, §13.12)."""

from __future__ import annotations

import json

import httpx
import pytest

from speckle_nb.devserver import DevServer
from speckle_nb.devserver.graphql_http import CSRF_MESSAGE
from speckle_nb.devserver.options import RateLimit

from .helpers import HEX42, bearer, raw_http

INVALID = {"error": "Your token is not valid."}
ME_AND_SERVER = "{ activeUser { id } serverInfo { version } }"
PROJECTS = """
query User($limit: Int!, $cursor: String, $filter: UserProjectsFilter) {
  data: activeUser {
    data: projects(limit: $limit, cursor: $cursor, filter: $filter) {
      totalCount numberOfHidden cursor
      items { id name description visibility allowPublicComments role createdAt updatedAt
              sourceApps workspaceId }
    }
  }
}
"""


@pytest.fixture
def reader(devserver: DevServer) -> str:
    return devserver.state.create_token(
        devserver.demo_user.id, ["streams:read", "profile:read", "profile:email"]
    )


def test_anonymous_gets_null_user_and_server_info(http: httpx.Client) -> None:
    answer = http.post("/graphql", json={"query": ME_AND_SERVER})

    assert answer.status_code == 200
    assert answer.json() == {"data": {"activeUser": None, "serverInfo": {"version": "2.26.0"}}}
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    "header",
    ["Bearer 0123456789abcdef0123456789abcdef0123456789", "garbage", "Bearer Bearer nope"],
)
def test_an_invalid_token_is_a_403_that_is_not_graphql_shaped(
    http: httpx.Client, header: str
) -> None:
    answer = http.post("/graphql", json={"query": ME_AND_SERVER}, headers={"Authorization": header})

    assert (answer.status_code, answer.json()) == (403, INVALID)


def test_bearer_with_an_empty_token_is_invalid_not_anonymous(devserver: DevServer) -> None:
    body = b'{"query":"{ serverInfo { version } }"}'
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )

    answer = raw_http(devserver.url, request)

    assert answer.startswith(b"HTTP/1.1 403")
    assert answer.endswith(json.dumps(INVALID, separators=(",", ":")).encode())


@pytest.mark.parametrize("form", ["{t}", "Bearer {t}", "Bearer Bearer {t}"])
def test_accepted_authorization_forms(
    devserver: DevServer, http: httpx.Client, reader: str, form: str
) -> None:
    answer = http.post(
        "/graphql",
        json={"query": "{ activeUser { id } }"},
        headers={"Authorization": form.format(t=reader)},
    )

    assert answer.json() == {"data": {"activeUser": {"id": devserver.demo_user.id}}}


def test_an_invalid_authn_cookie_is_refused_too(http: httpx.Client) -> None:
    http.cookies.set("authn", "0123456789" + "a" * 32)

    answer = http.post("/graphql", json={"query": ME_AND_SERVER})

    assert (answer.status_code, answer.json()) == (403, INVALID)


def test_missing_scope_is_forbidden_with_partial_data_kept(
    devserver: DevServer, http: httpx.Client
) -> None:
    narrow = devserver.state.create_token(devserver.demo_user.id, ["streams:read"])

    answer = http.post("/graphql", json={"query": ME_AND_SERVER}, headers=bearer(narrow))

    assert answer.status_code == 200
    assert answer.text.startswith('{"errors":[')  # Apollo puts errors before data
    assert answer.json() == {
        "errors": [
            {
                "message": "Your auth token does not have the required scope: profile:read.",
                "locations": [{"line": 1, "column": 3}],
                "path": ["activeUser"],
                "extensions": {"code": "FORBIDDEN", "scope": "profile:read", "statusCode": 403},
            }
        ],
        "data": {"activeUser": None, "serverInfo": {"version": "2.26.0"}},
    }


def test_email_is_redacted_without_profile_email(devserver: DevServer, http: httpx.Client) -> None:
    profile_only = devserver.state.create_token(devserver.demo_user.id, ["profile:read"])

    answer = http.post(
        "/graphql", json={"query": "{ activeUser { name email } }"}, headers=bearer(profile_only)
    )

    assert answer.json() == {"data": {"activeUser": {"name": "Demo User", "email": None}}}


def test_role_protected_mutation_without_a_token_is_unauthorized(http: httpx.Client) -> None:
    answer = http.post(
        "/graphql",
        json={"query": 'mutation { apiTokenCreate(token: {name: "x", scopes: ["profile:read"]}) }'},
    )

    body = answer.json()
    assert answer.status_code == 200
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Must provide an auth token"
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHORIZED", "statusCode": 401}


def test_personal_access_tokens_can_be_created_and_revoked(
    devserver: DevServer, http: httpx.Client
) -> None:
    web = devserver.state.create_session_token(devserver.demo_user.id)
    create = "mutation($t: ApiTokenCreateInput!) { apiTokenCreate(token: $t) }"

    made = http.post(
        "/graphql",
        json={"query": create, "variables": {"t": {"name": "nb", "scopes": ["profile:read"]}}},
        headers=bearer(web),
    ).json()
    pat = made["data"]["apiTokenCreate"]
    with_tokens_write = http.post(
        "/graphql",
        json={"query": create, "variables": {"t": {"name": "x", "scopes": ["tokens:write"]}}},
        headers=bearer(web),
    ).json()
    revoked = http.post(
        "/graphql",
        json={
            "query": "mutation($t: String!) { apiTokenRevoke(token: $t) }",
            "variables": {"t": pat},
        },
        headers=bearer(web),
    ).json()

    assert HEX42.match(pat)
    assert with_tokens_write["errors"][0]["message"] == (
        "You can't create a personal access token with the tokens:write scope"
    )
    assert revoked == {"data": {"apiTokenRevoke": True}}
    assert devserver.state.validate_token(pat) is None


def test_pat_scopes_must_be_a_subset_of_the_callers(
    devserver: DevServer, http: httpx.Client
) -> None:
    caller = devserver.state.create_token(devserver.demo_user.id, ["tokens:write", "profile:read"])

    answer = http.post(
        "/graphql",
        json={
            "query": 'mutation { apiTokenCreate(token: {name: "x", scopes: ["streams:write"]}) }'
        },
        headers=bearer(caller),
    ).json()

    assert (
        answer["errors"][0]["message"] == "You can't create a token with scopes that you don't have"
    )
    assert answer["errors"][0]["extensions"]["code"] == "TOKEN_CREATE_ERROR"


def test_batch_answers_each_entry_in_order(http: httpx.Client, reader: str) -> None:
    batch = [
        {"query": "{ activeUser { name } }"},
        {"query": "{ serverInfo { name } }"},
        {"query": "{ authenticatedAsApp { id } }"},
    ]

    answer = http.post("/graphql", json=batch, headers=bearer(reader))

    first, second, third = answer.json()
    assert first == {"data": {"activeUser": {"name": "Demo User"}}}
    assert second == {"data": {"serverInfo": {"name": "Speckle dev server (speckle-nb)"}}}
    assert third["errors"][0]["extensions"]["scope"] == "apps:read"
    assert third["data"] == {"authenticatedAsApp": None}


def test_projects_paginate_over_three_pages(
    devserver: DevServer, http: httpx.Client, reader: str
) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        variables = {"limit": 25, "cursor": cursor, "filter": None}
        answer = http.post(
            "/graphql", json={"query": PROJECTS, "variables": variables}, headers=bearer(reader)
        ).json()
        page = answer["data"]["data"]["data"]
        pages += 1
        assert page["totalCount"] == 60
        assert page["numberOfHidden"] == 0
        seen += [item["id"] for item in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert len(seen) == len(set(seen)) == 60
    stamps = [p.updated_ms for p in devserver.state.projects_page(devserver.demo_user.id, 60).items]
    assert stamps == sorted(stamps, reverse=True)


def test_project_filter_in_specklepys_shape(http: httpx.Client, reader: str) -> None:
    variables = {
        "limit": 5,
        "cursor": None,
        "filter": {
            "search": "project 0",
            "onlyWithRoles": None,
            "workspaceId": None,
            "personalOnly": None,
            "includeImplicitAccess": None,
        },
    }

    answer = http.post(
        "/graphql", json={"query": PROJECTS, "variables": variables}, headers=bearer(reader)
    ).json()

    page = answer["data"]["data"]["data"]
    assert page["totalCount"] == 9  # "Demo project 01" … "09"
    assert len(page["items"]) == 5
    assert all("project 0" in item["name"].lower() for item in page["items"])


def test_app_metadata_needs_no_token(http: httpx.Client) -> None:
    query = '{ app(id: "connectrV3") { id name trustByDefault redirectUrl secret scopes { name } } nope: app(id: "x") { id } }'

    answer = http.post("/graphql", json={"query": query}).json()

    app = answer["data"]["app"]
    assert app["redirectUrl"] == "http://localhost:29355"
    assert app["trustByDefault"] is False
    assert app["secret"] == "App secrets are only revealed to their author 😉"
    assert [s["name"] for s in app["scopes"]][:3] == [
        "streams:read",
        "streams:write",
        "profile:read",
    ]
    assert answer["data"]["nope"] is None


@pytest.mark.parametrize(
    ("content_type", "extra"),
    [
        ("application/x-www-form-urlencoded", {}),
        ("text/plain", {}),
        ("multipart/form-data; boundary=x", {}),
    ],
)
def test_csrf_prevention_blocks_simple_requests(
    http: httpx.Client, content_type: str, extra: dict[str, str]
) -> None:
    answer = http.post(
        "/graphql",
        content="query=%7B+serverInfo+%7B+version+%7D+%7D",
        headers={"Content-Type": content_type, **extra},
    )

    assert answer.status_code == 400
    assert answer.json() == {
        "errors": [{"message": CSRF_MESSAGE, "extensions": {"code": "BAD_REQUEST"}}]
    }
    assert answer.json()["errors"][0]["message"].endswith("apollo-require-preflight\n")


def test_get_needs_a_preflight_header_and_cannot_mutate(http: httpx.Client) -> None:
    params = {"query": "{ serverInfo { version } }"}
    blocked = http.get("/graphql", params=params)
    allowed = http.get("/graphql", params=params, headers={"apollo-require-preflight": "1"})
    mutation = http.get(
        "/graphql",
        params={"query": 'mutation { apiTokenRevoke(token: "x") }'},
        headers={"x-apollo-operation-name": "m"},
    )

    assert blocked.status_code == 400
    assert blocked.json()["errors"][0]["message"] == CSRF_MESSAGE
    assert allowed.json() == {"data": {"serverInfo": {"version": "2.26.0"}}}
    assert mutation.status_code == 405


def test_a_form_post_with_a_preflight_header_runs(http: httpx.Client) -> None:
    answer = http.post(
        "/graphql",
        data={"query": "{ serverInfo { version } }"},
        headers={"apollo-require-preflight": "true"},
    )

    assert answer.json() == {"data": {"serverInfo": {"version": "2.26.0"}}}


@pytest.mark.parametrize(
    ("accept", "status", "content_type"),
    [
        ("text/html", 406, "application/json; charset=utf-8"),
        ("application/graphql-response+json", 200, "application/graphql-response+json; charset=utf-8"),
        ("application/json;q=0.5, application/graphql-response+json", 200, "application/graphql-response+json; charset=utf-8"),
        ("*/*", 200, "application/json; charset=utf-8"),
        ("text/html, application/*;q=0.1", 200, "application/json; charset=utf-8"),
    ],
)  # fmt: skip
def test_accept_negotiation(
    http: httpx.Client, accept: str, status: int, content_type: str
) -> None:
    answer = http.post(
        "/graphql", json={"query": "{ serverInfo { version } }"}, headers={"Accept": accept}
    )

    assert answer.status_code == status
    assert answer.headers["content-type"] == content_type
    if status == 406:
        assert "does not accept application/json" in answer.json()["errors"][0]["message"]


def test_parse_and_validation_errors_are_400(http: httpx.Client) -> None:
    broken = http.post("/graphql", json={"query": "{ serverInfo { "})
    unknown = http.post("/graphql", json={"query": "{ serverInfo { nope } }"})
    empty = http.post("/graphql", json={"variables": {}})

    assert broken.status_code == 400
    assert broken.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert empty.status_code == 400
    assert empty.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("path", ["/graphql/", "/GraphQL", "/graphql/anything/at/all"])
def test_graphql_paths(http: httpx.Client, path: str) -> None:
    answer = http.post(path, json={"query": "{ serverInfo { version } }"})

    assert answer.json() == {"data": {"serverInfo": {"version": "2.26.0"}}}


def test_rate_limit_counts_batch_entries(
    devserver: DevServer, http: httpx.Client, reader: str
) -> None:
    devserver.options.rate_limit = RateLimit(requests=3, per_seconds=60)
    query = {"query": "{ serverInfo { version } }"}

    single = http.post("/graphql", json=query, headers=bearer(reader))
    batch = http.post("/graphql", json=[query, query], headers=bearer(reader))
    over = http.post("/graphql", json=query, headers=bearer(reader))
    anonymous = http.post("/graphql", json=query)  # another source: its own budget

    assert single.status_code == 200
    assert single.headers["x-ratelimit-remaining"] == "2"
    assert batch.status_code == 200
    assert over.status_code == 429
    assert over.json() == {
        "error": {
            "message": (
                "You have sent too many requests. You are being rate limited. "
                "Please try again later."
            ),
            "code": "RATE_LIMIT_ERROR",
        }
    }
    assert 0 < float(over.headers["retry-after"]) <= 60
    assert over.headers["x-ratelimit-reset"].endswith("Z")
    assert over.headers["x-speckle-meditation"] == "https://http.cat/429"
    assert anonymous.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        # speckle-sharp-sdk AccountFactory's probe
        "query { activeUser { id name email company avatar } serverInfo { name company "
        "description version migration { movedFrom movedTo } } }",
        # the community speckle-auth profile query
        "{ activeUser { avatar id email name bio company verified profiles role createdAt } }",
        # specklepy's ServerResource.get()
        "query Server { data:serverInfo { name company description adminContact canonicalUrl "
        "version scopes { name description } authStrategies { id name icon } "
        "workspaces { workspacesEnabled } } }",
        "{ authenticatedAsApp { id name redirectUrl } }",
        "{ __schema { queryType { name } mutationType { name } } }",
    ],
    ids=["csharp-probe", "speckle-auth", "specklepy-server", "as-app", "introspection"],
)
def test_queries_other_clients_send_validate_and_answer(
    devserver: DevServer, http: httpx.Client, query: str
) -> None:
    web = devserver.state.create_session_token(devserver.demo_user.id)

    answer = http.post("/graphql", json={"query": query}, headers=bearer(web))

    assert answer.status_code == 200
    body = answer.json()
    assert "errors" not in body
    assert all(value is not None for value in body["data"].values())
    if "serverInfo" in body["data"]:
        assert body["data"]["serverInfo"]["migration"] is None
