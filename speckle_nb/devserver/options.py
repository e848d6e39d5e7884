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
    """Answer as slowly as a real server on loopback (§13.10, measured on 2 cores; see
    docs/devserver.md "Latency"): every API request costs ``request_latency_s``, and a token
    check (an ``Authorization`` header, ``/auth/accesscode?token=``) ``auth_latency_s`` more,
    a code exchange or refresh ``exchange_latency_s`` more. The checks are bcrypt on Node's
    thread pool: at most ``token_checks_at_once`` run together, the rest queue."""
    request_latency_s: float = 0.007
    auth_latency_s: float = 0.065
    exchange_latency_s: float = 0.13
    token_checks_at_once: int = 4

    consent_delay: float = 0.0
    """Seconds the "Success" page waits before redirecting (the real page waits 2 s; not
    part of ``latency``, so tests stay fast); 0 answers the Authorize/Deny post with an
    immediate 302."""

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
