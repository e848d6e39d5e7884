"""Switches of the dev server, read on every request so a test can flip them live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Fault = Literal["5xx", "malformed", "slow", "reset"]


@dataclass
class RateLimit:
    """At most ``requests`` GraphQL operations per source in each ``per_seconds`` window.

    The real server allows 50/s on ``/graphql``; a batch counts one per entry.
    """

    requests: int
    per_seconds: float = 1.0


@dataclass
class DevOptions:
    """Behaviour switches; mutate the instance on a running server to change them."""

    latency: bool = False
    """Sleep like the real server's bcrypt checks (§13.10): per authenticated request and
    per code exchange or refresh."""
    auth_latency_s: float = 0.07
    exchange_latency_s: float = 0.13

    consent_delay: float = 0.0
    """Seconds the "Success" page waits before redirecting (the real page waits 2 s); 0
    answers the Authorize/Deny post with an immediate 302."""

    oauth_s256: bool = False
    """Serve the unreleased ``/oauth/token`` S256 endpoint (§2.1) instead of a 404."""

    rate_limit: RateLimit | None = None
    """Limit ``/graphql`` per user (or per address when anonymous)."""

    coop: bool = False
    """Send ``Cross-Origin-Opener-Policy: same-origin`` on HTML pages (the popup then
    loses ``window.opener``)."""

    fault: Fault | None = None
    """Break ``/auth/*``, ``/oauth/token`` and ``/graphql``: "5xx" answers a proxy's 502,
    "malformed" a 200 that is not JSON, "slow" waits ``slow_seconds`` before answering,
    "reset" drops the connection without an answer. Pages keep working."""
    slow_seconds: float = 30.0

    sso_session_lapsed: bool = False
    """Every user's SSO session has lapsed (7 days on a real server): projects of a
    workspace with SSO drop out of ``activeUser.projects`` and ``project(id)`` answers
    ``SSO_SESSION_MISSING_OR_EXPIRED_ERROR`` (HTTP 200), as the real server does."""
