"""The GraphQL subset of a Speckle server that speckle-nb and specklepy touch.

SDL plus resolvers on graphql-core. Authorization mirrors the server's directives
(§7.2): a missing scope is a ``FORBIDDEN`` error naming the scope, a role-protected
field without a token is ``UNAUTHORIZED``; the field becomes null and the rest of the
data is kept. Every Speckle error carries ``extensions.statusCode`` (§13.6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from graphql import GraphQLError, GraphQLSchema, build_schema

from .catalog import PUBLIC_SCOPES, SCOPE_BY_NAME, WILDCARD_SCOPE, in_server_order
from .messages import missing_scope_message
from .models import App, Project, ProjectFilter, TokenInfo, User, Workspace, iso_ms
from .state import DevState

# graphql-core 3.3 made Info generic and 3.2 did not; both are allowed.
Info = Any

SERVER_VERSION = "2.26.0"
SECRET_HIDDEN = "App secrets are only revealed to their author 😉"
UPLOAD_LIMIT_BYTES = 100 * 1024 * 1024

SDL = '''
scalar DateTime
scalar JSONObject
scalar BigInt

type Query {
  """The user the token speaks for; null without a token. Needs profile:read."""
  activeUser: User
  serverInfo: ServerInfo!
  """Any app's public metadata; needs no token (the consent page reads it)."""
  app(id: String!): ServerApp
  """The app behind an app token. Needs apps:read."""
  authenticatedAsApp: ServerAppListItem
  """One project; needs streams:read (anonymous: public and unlisted projects only)."""
  project(id: String!): Project!
}

type Mutation {
  apiTokenCreate(token: ApiTokenCreateInput!): String!
  apiTokenRevoke(token: String!): Boolean!
}

type User {
  id: String!
  email: String
  name: String
  bio: String
  company: String
  avatar: String
  verified: Boolean
  profiles: JSONObject
  role: String
  createdAt: DateTime
  projects(
    limit: Int! = 25
    cursor: String
    filter: UserProjectsFilter
    sortBy: [String!]
  ): UserProjectCollection!
  apiTokens: [ApiToken!]!
  """Workspaces whose SSO session has lapsed for this user (sign in again there)."""
  expiredSsoSessions: [LimitedWorkspace!]!
}

type LimitedWorkspace {
  id: ID!
  slug: String!
  name: String!
}

type ApiToken {
  id: String!
  name: String!
  lastChars: String!
  scopes: [String]!
  createdAt: DateTime!
  lifespan: BigInt!
  lastUsed: DateTime!
}

input UserProjectsFilter {
  search: String
  onlyWithRoles: [String!]
  workspaceId: ID
  personalOnly: Boolean
  includeImplicitAccess: Boolean
}

type UserProjectCollection {
  totalCount: Int!
  numberOfHidden: Int!
  cursor: String
  items: [Project!]!
}

enum ProjectVisibility {
  PRIVATE
  UNLISTED
  PUBLIC
  WORKSPACE
}

type Project {
  id: ID!
  name: String!
  description: String
  visibility: ProjectVisibility!
  allowPublicComments: Boolean!
  role: String
  createdAt: DateTime!
  updatedAt: DateTime!
  sourceApps: [String!]!
  workspaceId: String
}

type ServerMigration {
  movedFrom: String
  movedTo: String
}

type Scope {
  name: String!
  description: String!
}

type Role {
  name: String!
  description: String!
  resourceTarget: String!
}

type ServerRoleItem {
  id: String!
  title: String!
}

type AuthStrategy {
  id: String!
  name: String!
  icon: String!
  url: String!
  color: String
}

type ServerWorkspacesInfo {
  workspacesEnabled: Boolean!
}

type ServerConfiguration {
  objectSizeLimitBytes: Int!
  objectMultipartUploadSizeLimitBytes: Int!
  blobSizeLimitBytes: Int!
  isEmailEnabled: Boolean!
}

type ServerInfo {
  name: String!
  company: String
  description: String
  adminContact: String
  canonicalUrl: String
  termsOfService: String
  roles: [Role!]! @deprecated(reason: "Use role constants from the @speckle/shared npm package instead")
  scopes: [Scope!]!
  inviteOnly: Boolean
  guestModeEnabled: Boolean!
  version: String
  serverRoles: [ServerRoleItem!]!
  automateUrl: String
  migration: ServerMigration
  enableNewWebUiMessaging: Boolean
  configuration: ServerConfiguration!
  authStrategies: [AuthStrategy!]!
  workspaces: ServerWorkspacesInfo!
}

type AppAuthor {
  id: String!
  name: String!
  avatar: String
}

type ServerApp {
  id: String!
  secret: String
  name: String!
  description: String
  termsAndConditionsLink: String
  logo: String
  public: Boolean
  trustByDefault: Boolean
  author: AppAuthor
  createdAt: DateTime!
  redirectUrl: String!
  scopes: [Scope!]!
}

type ServerAppListItem {
  id: String!
  name: String!
  description: String
  termsAndConditionsLink: String
  trustByDefault: Boolean
  logo: String
  author: AppAuthor
  redirectUrl: String!
}

enum TokenResourceIdentifierType {
  project
  workspace
}

input TokenResourceIdentifierInput {
  id: String!
  type: TokenResourceIdentifierType!
}

input ApiTokenCreateInput {
  scopes: [String!]!
  name: String!
  lifespan: BigInt
  limitResources: [TokenResourceIdentifierInput!]
}
'''


@dataclass(frozen=True)
class GraphQLContext:
    state: DevState
    auth: TokenInfo | None
    sso_session_lapsed: bool = False


def speckle_error(message: str, code: str, status: int, **extra: object) -> GraphQLError:
    """An error shaped like the server's formatter makes it (code, extras, statusCode)."""
    return GraphQLError(message, extensions={"code": code, **extra, "statusCode": status})


def _ctx(info: Info) -> GraphQLContext:
    context = info.context
    assert isinstance(context, GraphQLContext)
    return context


def require_scope(auth: TokenInfo | None, scope: str) -> TokenInfo:
    if auth is None or not auth.has_scope(scope):
        raise speckle_error(missing_scope_message(scope), "FORBIDDEN", 403, scope=scope)
    return auth


_ROLE_RANK = {"server:archived-user": 0, "server:guest": 1, "server:user": 2, "server:admin": 3}


def require_role(auth: TokenInfo | None, role: str) -> TokenInfo:
    if auth is None:
        raise speckle_error("Must provide an auth token", "UNAUTHORIZED", 401)
    if _ROLE_RANK.get(auth.role, -1) < _ROLE_RANK[role]:
        raise speckle_error("You do not have the required server role", "FORBIDDEN", 403)
    return auth


# -- Query ---------------------------------------------------------------------------


def resolve_active_user(_root: object, info: Info) -> User | None:
    ctx = _ctx(info)
    if ctx.auth is None:
        return None
    require_scope(ctx.auth, "profile:read")
    return ctx.state.user(ctx.auth.user_id)


def resolve_server_info(_root: object, info: Info) -> dict[str, Any]:
    state = _ctx(info).state
    return {
        "name": "Speckle dev server (speckle-nb)",
        "company": "speckle-nb",
        "description": "A Speckle-compatible server on loopback, for demos and tests.",
        "adminContact": "admin@example.org",
        "canonicalUrl": state.server_url,
        "termsOfService": None,
        "roles": [],
        "scopes": [{"name": s.name, "description": s.description} for s in PUBLIC_SCOPES],
        "inviteOnly": False,
        "guestModeEnabled": False,
        "version": SERVER_VERSION,
        "serverRoles": [
            {"id": "server:admin", "title": "Admin"},
            {"id": "server:user", "title": "User"},
        ],
        "automateUrl": None,
        "migration": None,
        "enableNewWebUiMessaging": False,
        "configuration": {
            "objectSizeLimitBytes": UPLOAD_LIMIT_BYTES,
            "objectMultipartUploadSizeLimitBytes": UPLOAD_LIMIT_BYTES,
            "blobSizeLimitBytes": UPLOAD_LIMIT_BYTES,
            "isEmailEnabled": False,
        },
        "authStrategies": [
            {
                "id": "local",
                "name": "Local",
                "icon": "TODO",
                "url": "/auth/local",
                "color": "accent",
            }
        ],
        "workspaces": {"workspacesEnabled": state.has_workspaces()},
    }


def _author(state: DevState, app: App) -> dict[str, Any] | None:
    user = state.user(app.author_id) if app.author_id else None
    if user is None:
        return None
    return {"id": user.id, "name": user.name, "avatar": user.avatar}


def _app_list_item(state: DevState, app: App) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "description": app.description,
        "termsAndConditionsLink": app.terms_url,
        "trustByDefault": app.trusted,
        "logo": app.logo,
        "author": _author(state, app),
        "redirectUrl": app.redirect_url,
    }


def resolve_app(_root: object, info: Info, id: str) -> dict[str, Any] | None:
    ctx = _ctx(info)
    app = ctx.state.app(id)
    if app is None:
        return None
    is_author = ctx.auth is not None and app.author_id == ctx.auth.user_id
    return {
        **_app_list_item(ctx.state, app),
        "secret": app.secret if is_author else SECRET_HIDDEN,
        "public": app.public,
        "createdAt": iso_ms(app.created_ms),
        "scopes": [
            {"name": s, "description": SCOPE_BY_NAME[s].description}
            for s in app.scopes
            if s in SCOPE_BY_NAME
        ],
    }


def resolve_authenticated_as_app(_root: object, info: Info) -> dict[str, Any] | None:
    ctx = _ctx(info)
    auth = require_scope(ctx.auth, "apps:read")
    app = ctx.state.app(auth.app_id) if auth.app_id else None
    return None if app is None else _app_list_item(ctx.state, app)


# -- User ------------------------------------------------------------------------------


def _user_field(name: str) -> Callable[[User, Info], object]:
    def resolve(user: User, _info: Info) -> object:
        return getattr(user, name)

    return resolve


def resolve_user_email(user: User, info: Info) -> str | None:
    # Redacted, not refused: no error without profile:email (§7.2).
    auth = _ctx(info).auth
    if auth is not None and auth.user_id == user.id and auth.has_scope("profile:email"):
        return user.email
    return None


def _require_owner(user: User, info: Info) -> TokenInfo:
    auth = _ctx(info).auth
    if auth is None or auth.user_id != user.id:
        raise speckle_error("You must be authenticated to access this data", "FORBIDDEN", 403)
    return auth


def resolve_user_projects(
    user: User,
    info: Info,
    limit: int = 25,
    cursor: str | None = None,
    filter: Mapping[str, Any] | None = None,
    sortBy: list[str] | None = None,
) -> dict[str, Any]:
    _require_owner(user, info)
    raw = filter or {}
    roles = raw.get("onlyWithRoles")
    wanted = ProjectFilter(
        search=raw.get("search"),
        only_with_roles=tuple(roles) if roles else None,
        workspace_id=raw.get("workspaceId"),
        personal_only=raw.get("personalOnly"),
    )
    ctx = _ctx(info)
    hidden = frozenset(w.id for w in _lapsed_sso_workspaces(ctx, user.id))
    try:
        page = ctx.state.projects_page(user.id, limit, cursor, wanted, hide_workspaces=hidden)
    except ValueError as err:
        raise speckle_error(str(err), "BAD_USER_INPUT", 400) from err
    return {
        "totalCount": page.total_count,
        "numberOfHidden": 0,
        "cursor": page.cursor,
        "items": [_project(p) for p in page.items],
    }


def _lapsed_sso_workspaces(ctx: GraphQLContext, user_id: str) -> list[Workspace]:
    return ctx.state.sso_workspaces_of(user_id) if ctx.sso_session_lapsed else []


def _limited_workspace(workspace: Workspace) -> dict[str, Any]:
    return {"id": workspace.id, "slug": workspace.slug, "name": workspace.name}


def resolve_user_expired_sso_sessions(user: User, info: Info) -> list[dict[str, Any]]:
    _require_owner(user, info)
    return [_limited_workspace(w) for w in _lapsed_sso_workspaces(_ctx(info), user.id)]


SSO_LAPSED_MESSAGE = "Your workspace SSO session is expired or it does not exist"


def resolve_project(_root: object, info: Info, id: str) -> dict[str, Any]:
    """``project(id)`` through the server's authz policies, in their order: exists,
    scope, SSO session, access."""
    ctx = _ctx(info)
    project = ctx.state.project(id)
    if project is None:
        raise speckle_error("Project not found", "STREAM_NOT_FOUND", 404)
    if ctx.auth is not None:
        require_scope(ctx.auth, "streams:read")
    is_member = ctx.auth is not None and ctx.auth.user_id == project.owner_id
    workspace = ctx.state.workspace(project.workspace_id)
    if (
        is_member
        and workspace is not None
        and workspace in _lapsed_sso_workspaces(ctx, project.owner_id)
    ):
        # The real error names the workspace by slug in extensions (not in the
        # message): the client builds {server}/workspaces/{slug}/sso from it.
        raise speckle_error(
            SSO_LAPSED_MESSAGE,
            "SSO_SESSION_MISSING_OR_EXPIRED_ERROR",
            401,
            workspaceSlug=workspace.slug,
        )
    if not is_member and project.visibility not in ("PUBLIC", "UNLISTED"):
        raise speckle_error("You do not have access to the project", "FORBIDDEN", 403)
    return _project(project)


def _project(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "visibility": project.visibility,
        "allowPublicComments": project.allow_public_comments,
        "role": project.role,
        "createdAt": iso_ms(project.created_ms),
        "updatedAt": iso_ms(project.updated_ms),
        "sourceApps": list(project.source_apps),
        "workspaceId": project.workspace_id,
    }


def resolve_user_api_tokens(user: User, info: Info) -> list[dict[str, Any]]:
    auth = _require_owner(user, info)
    require_scope(auth, "tokens:read")
    return [
        {
            "id": t.id,
            "name": t.name,
            "lastChars": t.last_chars,
            "scopes": list(t.scopes),
            "createdAt": iso_ms(t.created_ms),
            "lifespan": int(t.lifespan_ms),
            "lastUsed": iso_ms(t.last_used_ms or t.created_ms),
        }
        for t in _ctx(info).state.tokens_of(user.id)
        if t.app_id is None
    ]


# -- Mutation ----------------------------------------------------------------------------


def resolve_api_token_create(_root: object, info: Info, token: Mapping[str, Any]) -> str:
    ctx = _ctx(info)
    auth = require_role(ctx.auth, "server:user")
    require_scope(auth, "tokens:write")
    asked = list(token["scopes"])
    if "tokens:write" in asked:
        raise speckle_error(
            "You can't create a personal access token with the tokens:write scope",
            "TOKEN_CREATE_ERROR",
            400,
        )
    if WILDCARD_SCOPE not in auth.scopes and not set(asked) <= set(auth.scopes):
        # Same error class on the server as the message above (TokenCreateError).
        raise speckle_error(
            "You can't create a token with scopes that you don't have", "TOKEN_CREATE_ERROR", 400
        )
    lifespan = _lifespan_ms(token.get("lifespan"))
    return ctx.state.create_token(
        auth.user_id, in_server_order(asked), lifespan, name=str(token["name"])
    )


def _lifespan_ms(value: object) -> float | None:
    # BigInt arrives as a JSON number or a string; 0/absent means the ~100-year default.
    if value is None:
        return None
    try:
        number = float(str(value))
    except ValueError as err:
        raise speckle_error("Invalid lifespan", "BAD_USER_INPUT", 400) from err
    return number or None


def resolve_api_token_revoke(_root: object, info: Info, token: str) -> bool:
    ctx = _ctx(info)
    auth = require_role(ctx.auth, "server:user")
    require_scope(auth, "tokens:write")
    token_id = token.split(" ")[1] if "bearer" in token.lower() else token
    try:
        ctx.state.revoke_user_token(token_id, auth.user_id)
    except LookupError as err:
        raise speckle_error("Did not revoke token", "USER_INPUT_ERROR", 400) from err
    return True


@cache
def dev_schema() -> GraphQLSchema:
    """Built once per process: the schema is immutable and resolvers read the context."""
    schema = build_schema(SDL)
    query = schema.query_type
    mutation = schema.mutation_type
    assert query is not None
    assert mutation is not None
    query.fields["activeUser"].resolve = resolve_active_user
    query.fields["serverInfo"].resolve = resolve_server_info
    query.fields["app"].resolve = resolve_app
    query.fields["authenticatedAsApp"].resolve = resolve_authenticated_as_app
    query.fields["project"].resolve = resolve_project
    mutation.fields["apiTokenCreate"].resolve = resolve_api_token_create
    mutation.fields["apiTokenRevoke"].resolve = resolve_api_token_revoke

    user_type = schema.get_type("User")
    fields = getattr(user_type, "fields", None)
    assert isinstance(fields, dict)
    for name, attr in {
        "id": "id",
        "name": "name",
        "bio": "bio",
        "company": "company",
        "avatar": "avatar",
        "verified": "verified",
        "role": "role",
    }.items():
        fields[name].resolve = _user_field(attr)
    fields["profiles"].resolve = lambda _user, _info: None
    fields["createdAt"].resolve = lambda user, _info: iso_ms(user.created_ms)
    fields["email"].resolve = resolve_user_email
    fields["projects"].resolve = resolve_user_projects
    fields["apiTokens"].resolve = resolve_user_api_tokens
    fields["expiredSsoSessions"].resolve = resolve_user_expired_sso_sessions
    return schema
