"""Value objects: who is signed in where, with which token. Secrets are masked in every repr."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Credentials", "Source", "User", "mask_secret", "normalize_server_url"]

#: Where a token came from. Decides whether ``sign_out()`` revokes it by default.
Source = Literal[
    "sign-in", "paste", "loopback", "token", "env", "magic", "remembered", "local", "hub"
]

#: Sources whose token the package obtained itself, and so revokes on sign-out.
OBTAINED_BY_US: frozenset[str] = frozenset({"sign-in", "paste", "loopback"})


def mask_secret(secret: str | None) -> str:
    """A fixed-width mask that shows only the last four characters (like Speckle's ``lastChars``)."""
    if not secret:
        return "<none>"
    return "•" * 8 + secret[-4:] if len(secret) >= 16 else "•" * 8


def normalize_server_url(url: str) -> str:
    """``https://App.Speckle.Systems/`` → ``https://app.speckle.systems``.

    Raises ``ValueError`` for anything that is not an absolute http(s) URL without a query.
    """
    from urllib.parse import urlsplit, urlunsplit

    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a Speckle server URL (expected https://host[:port])")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r} must not carry a query, fragment or user info")
    netloc = parts.hostname.lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class User:
    """The Speckle user behind a token (``activeUser``). ``email`` is None without ``profile:email``."""

    id: str
    name: str
    email: str | None = None
    avatar: str | None = None
    company: str | None = None
    role: str | None = None

    @classmethod
    def from_graphql(cls, data: Mapping[str, Any]) -> User:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            email=data.get("email"),
            avatar=data.get("avatar"),
            company=data.get("company"),
            role=data.get("role"),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Credentials:
    """A token for one server, and what we know about it. The repr never shows the secrets."""

    server_url: str
    token: str = field(repr=False)
    user: User | None = None
    refresh_token: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    source: Source = "token"
    obtained_at: float = field(default_factory=time.time)
    #: The app the token belongs to (sign-in); needed to refresh it.
    app_id: str | None = None
    #: How a ``"remembered"`` token was first obtained (``None``: as ``source`` says).
    origin: Source | None = None

    @property
    def obtained_by_us(self) -> bool:
        """True when the package obtained the token (so ``sign_out()`` revokes it by default),
        also when it was remembered from an earlier session's sign-in."""
        return (self.origin or self.source) in OBTAINED_BY_US

    @property
    def masked_token(self) -> str:
        return mask_secret(self.token)

    def __repr__(self) -> str:
        who = f"{self.user.name!r}" if self.user else "None"
        return (
            f"Credentials(server_url={self.server_url!r}, user={who}, source={self.source!r}, "
            f"token={self.masked_token!r}, refresh_token="
            f"{'<set>' if self.refresh_token else '<none>'}, scopes={list(self.scopes)!r})"
        )

    __str__ = __repr__

    def with_tokens(self, token: str, refresh_token: str | None) -> Credentials:
        """The same identity with new tokens (after a refresh)."""
        return dataclasses.replace(
            self, token=token, refresh_token=refresh_token, obtained_at=time.time()
        )
