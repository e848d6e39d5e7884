"""Value objects of the dev server's memory, its clock, and its secret handling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .catalog import WILDCARD_SCOPE

Clock = Callable[[], float]
"""Milliseconds since the epoch, like JavaScript's ``Date.now()``."""

CODE_LIFESPAN_MS = 600_000  # authorization_codes.lifespan default (10 min)
TOKEN_LIFESPAN_MS = 3.154e12  # api_tokens.lifespan default (~100 years)
REFRESH_LIFESPAN_MS = 1.577e10  # refresh_tokens.lifespan default (~6 months)
MAX_CHALLENGE_CHARS = 255  # authorization_codes.challenge is a varchar(255)
MAX_REDIRECT_URL_CHARS = 100  # server_apps.redirectUrl is a varchar(100)


def wall_clock_ms() -> float:
    return time.time() * 1000.0


class FakeClock:
    """A clock that moves only when told to; call it like ``Date.now()``."""

    def __init__(self, start_ms: float | None = None) -> None:
        self._now = wall_clock_ms() if start_ms is None else start_ms

    def __call__(self) -> float:
        return self._now

    def advance(
        self, *, ms: float = 0, seconds: float = 0, minutes: float = 0, days: float = 0
    ) -> None:
        self._now += ms + 1000 * (seconds + 60 * (minutes + 60 * 24 * days))


def iso_ms(ms: float) -> str:
    """JavaScript's ``Date.toISOString()`` for a time in ms."""
    moment = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_hex(chars: int) -> str:
    # crypto-random-string's default type is lowercase hex.
    return secrets.token_hex((chars + 1) // 2)[:chars]


def digest(secret: str) -> str:
    # The server stores a bcrypt hash; a plain SHA-256 keeps the property that matters
    # here (no secret at rest) without bcrypt's cost.
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass
class User:
    id: str
    email: str
    name: str
    password_digest: str = field(repr=False)
    password_salt: str = field(repr=False)
    role: str = "server:user"
    avatar: str | None = None
    company: str | None = None
    bio: str | None = None
    verified: bool = True
    created_ms: float = 0.0


@dataclass
class App:
    id: str
    name: str
    secret: str = field(repr=False)
    redirect_url: str = ""
    scopes: tuple[str, ...] = ()
    trusted: bool = False
    public: bool = False
    description: str = ""
    author_id: str | None = None
    logo: str | None = None
    terms_url: str | None = None
    created_ms: float = 0.0


@dataclass
class AccessCode:
    app_id: str
    user_id: str
    challenge: str = field(repr=False)
    created_ms: float
    lifespan_ms: float = CODE_LIFESPAN_MS


@dataclass
class ApiToken:
    id: str
    digest: str = field(repr=False)
    user_id: str = ""
    scopes: tuple[str, ...] = ()
    name: str = ""
    app_id: str | None = None
    created_ms: float = 0.0
    lifespan_ms: float = TOKEN_LIFESPAN_MS
    last_chars: str = field(default="", repr=False)
    last_used_ms: float = 0.0


@dataclass
class RefreshToken:
    id: str
    digest: str = field(repr=False)
    app_id: str = ""
    user_id: str = ""
    created_ms: float = 0.0
    lifespan_ms: float = REFRESH_LIFESPAN_MS


@dataclass(frozen=True)
class TokenInfo:
    """Who a valid token speaks for and what it may do."""

    token_id: str
    user_id: str
    scopes: tuple[str, ...]
    role: str
    app_id: str | None
    name: str

    def has_scope(self, scope: str) -> bool:
        return WILDCARD_SCOPE in self.scopes or scope in self.scopes


@dataclass(frozen=True)
class TokenPair:
    token: str = field(repr=False)
    refresh_token: str = field(repr=False)

    def as_json(self) -> dict[str, str]:
        return {"token": self.token, "refreshToken": self.refresh_token}


@dataclass
class Project:
    id: str
    owner_id: str
    name: str
    description: str | None = None
    visibility: str = "PRIVATE"
    allow_public_comments: bool = False
    role: str = "stream:owner"
    created_ms: float = 0.0
    updated_ms: float = 0.0
    source_apps: tuple[str, ...] = ()
    workspace_id: str | None = None


@dataclass
class Workspace:
    """A Speckle workspace; ``sso`` means it has an SSO provider, so members need a
    live SSO session to reach its projects (see ``DevOptions.sso_session_lapsed``)."""

    id: str
    slug: str
    name: str
    sso: bool = False


@dataclass(frozen=True)
class ProjectFilter:
    search: str | None = None
    only_with_roles: tuple[str, ...] | None = None
    workspace_id: str | None = None
    personal_only: bool | None = None


@dataclass(frozen=True)
class ProjectPage:
    total_count: int
    items: tuple[Project, ...]
    cursor: str | None


def s256_challenge(verifier: str) -> str:
    """base64url(SHA-256(verifier)) without padding (RFC 7636)."""
    raw = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
