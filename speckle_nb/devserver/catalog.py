"""Fixed data a Speckle server boots with: its scopes and its built-in apps.

Kept apart from the state so the tables can be read against the protocol file
(§4.3, §6) line by line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScopeInfo:
    name: str
    description: str
    public: bool


# Server order (§13.12): an app's scopes come back in this order whatever order they
# were registered in. Automate and workspace scopes are missing on purpose: the dev
# server runs with those feature flags off (`serverInfo.workspaces.workspacesEnabled`
# is false), as a self-hosted server does by default.
SCOPES: tuple[ScopeInfo, ...] = (
    ScopeInfo(
        "streams:read",
        "Read your streams, and any associated information (branches, commits, objects).",
        True,
    ),
    ScopeInfo(
        "streams:write",
        "Create streams on your behalf, and any associated data (branches, commits, objects).",
        True,
    ),
    ScopeInfo("profile:read", "Read your profile information.", True),
    ScopeInfo("profile:write", "Make actions on your profile.", True),
    ScopeInfo("profile:email", "Read the email address you registered with.", True),
    ScopeInfo("profile:delete", "Delete the account with all associated data.", False),
    ScopeInfo("users:read", "Read other users' profiles.", True),
    ScopeInfo("users:email", "Access the emails of other users.", False),
    ScopeInfo("users:invite", "Invite others to join this server.", False),
    ScopeInfo(
        "server:stats",
        'Request server stats from the API. Only works in conjunction with a "server:admin" role.',
        True,
    ),
    ScopeInfo(
        "server:setup",
        "Edit server information. Note: Only server admins will be able to use this token.",
        False,
    ),
    ScopeInfo("tokens:read", "Access API tokens.", False),
    ScopeInfo("tokens:write", "Create and delete API tokens.", False),
    ScopeInfo("apps:read", "See created or authorized applications.", False),
    ScopeInfo("apps:write", "Register new applications.", False),
)

SCOPE_BY_NAME: dict[str, ScopeInfo] = {s.name: s for s in SCOPES}
ALL_SCOPES: tuple[str, ...] = tuple(s.name for s in SCOPES)
PUBLIC_SCOPES: tuple[ScopeInfo, ...] = tuple(s for s in SCOPES if s.public)
WILDCARD_SCOPE = "*"

CONNECTOR_SCOPES: tuple[str, ...] = (
    "streams:read",
    "streams:write",
    "profile:read",
    "profile:email",
    "users:read",
    "users:invite",
)
POWERBI_SCOPES: tuple[str, ...] = (
    "streams:read",
    "profile:read",
    "profile:email",
    "users:read",
    "users:invite",
    "tokens:write",
)


def in_server_order(scopes: object) -> tuple[str, ...]:
    """Known scope names from ``scopes``, deduplicated, in server order.

    Unknown names are dropped silently, as ``appCreate`` and ``apiTokenCreate`` do.
    """
    wanted = (
        {s for s in scopes if isinstance(s, str)} if isinstance(scopes, list | tuple) else set()
    )
    return tuple(name for name in ALL_SCOPES if name in wanted)


@dataclass(frozen=True)
class BuiltInApp:
    id: str
    name: str
    description: str
    # "{origin}" is replaced by the dev server's own URL once it is bound.
    redirect_url: str
    trusted: bool
    scopes: tuple[str, ...]


ORIGIN = "{origin}"

# §4.3: upserted on every boot, `secret == id`, all public. Names, descriptions, redirect
# URLs, trust flags and scopes as in the server's defaultApps.ts; connectrV3's description
# was not in the source read (ours is a stand-in). spklautoma is left out: its redirect
# URL derives from an Automate URL this server does not have (automateUrl is null).
BUILT_IN_APPS: tuple[BuiltInApp, ...] = (
    BuiltInApp(
        "spklwebapp",
        "Speckle Web Manager",
        "The Speckle Web Manager is your one-stop place to manage and coordinate your data.",
        ORIGIN,
        True,
        ALL_SCOPES,
    ),
    BuiltInApp(
        "explorer",
        "Speckle Explorer",
        "GraphiQL Playground with authentication.",
        ORIGIN + "/explorer",
        True,
        ALL_SCOPES,
    ),
    BuiltInApp(
        "sdm",
        "Speckle Desktop Manager",
        "Manages local installations of Speckle connectors, kits and everything else.",
        "speckle://account",
        True,
        CONNECTOR_SCOPES,
    ),
    BuiltInApp(
        "sdui",
        "DUI",
        "Speckle Desktop UI",
        "https://dui.speckle.systems/authn/callback",
        False,
        CONNECTOR_SCOPES,
    ),
    BuiltInApp(
        "sca",
        "Speckle Connector",
        "A Speckle Desktop Connectors.",
        "http://localhost:29363",
        True,
        CONNECTOR_SCOPES,
    ),
    BuiltInApp(
        "sdas",
        "Speckle Connector",
        "Speckle desktop authentication service. This application helps link your Speckle "
        "account with all host application connectors, like Revit, Rhino etc.",
        "http://localhost:29364",
        True,
        CONNECTOR_SCOPES,
    ),
    BuiltInApp(
        "connectrV3",
        "Desktop Connectors",
        "Speckle's desktop connectors.",
        "http://localhost:29355",
        False,
        CONNECTOR_SCOPES,
    ),
    BuiltInApp(
        "spklexcel",
        "Speckle Connector For Excel",
        "The Speckle Connector For Excel. For more info, check the docs here: "
        "https://speckle.guide/user/excel.",
        "https://speckle-excel.netlify.app",
        True,
        CONNECTOR_SCOPES,
    ),
    BuiltInApp(
        "spklpwerbi",
        "Speckle Connector For PowerBI",
        # Sic: the server's own text says Excel here.
        "The Speckle Connector For Excel. For more info check the docs here: "
        "https://speckle.guide/user/powerbi.html.",
        "https://oauth.powerbi.com/views/oauthredirect.html",
        True,
        POWERBI_SCOPES,
    ),
)
