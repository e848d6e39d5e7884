"""Bad input on ``start``, ``callback`` and ``pickup``: property-based, ≥ 1,000 cases per route.

A real Jupyter server with the extension (pytest-jupyter, base URL ``/a%40b/``) holds three
sign-ins before the fuzzing starts: **A** pending (its browser's cookie is live), **B** signed
in with its result waiting for its kernel (the flow is a tombstone), **C** denied with its
result waiting. Hypothesis then sends odd, repeated, oversized and non-ASCII query parameters,
headers and bodies, forged and replayed cookies and guessed ids, over real loopback HTTP from a
worker thread (``http.client``: bytes go out as generated, no client-side normalising), while
the server's event loop keeps serving. After every case:

* the status is below 500 and the body holds no traceback;
* the answer is a clear error: our page with a non-empty message, Jupyter's own error page
  (authentication, undecodable arguments), or for ``pickup`` JSON with a ``message`` (a pickup
  of a request nobody started is ``pending``: the kernel may poll before the user clicks);
* the sign-in state is unchanged — every flow's status and reason, every request's outcome —
  and the Speckle double saw no request at all (nothing was exchanged or probed). The one
  designed change: a well-formed start refused for a server that is not allowed records a
  "failed" outcome for *its own* request so its kernel hears at once; the case then picks that
  outcome up through the pickup route (checking the kernel is told why) and the state is back
  to where it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from serverkit import Browser, FakeSpeckle, Kernel, challenge_of
from tornado.web import create_signed_value

from speckle_nb._names import KERNEL_KEY_HEADER
from speckle_nb.credentials import normalize_server_url
from speckle_nb.server.service import SignInService

#: Cases per route (the issue asks for at least 1,000).
CASES = int(os.environ.get("SPECKLE_NB_FUZZ_CASES", "1000"))

COOKIE = "speckle-nb-flow"
REQUEST_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
PICKUP_RE = re.compile(r"[0-9a-f]{64}")

#: The held pickup of a request nobody started answers "pending" after this long.
speckle_config_values = {"pickup_hold": 0.005}


@pytest.fixture
def speckle_config() -> dict[str, Any]:
    return dict(speckle_config_values)


# ------------------------------------------------------------------------------- the world


@dataclass
class World:
    """What the fuzzing thread knows: where to send, what exists, and how to look at it."""

    port: int
    token: str
    base: str  # "/a%40b/"
    cookie_secret: bytes
    a: Kernel
    b: Kernel
    c: Kernel
    a_flow: str  # flow id of A (pending): its cookie must never be sent authenticated
    b_flow: str  # flow id of B (signed in, tombstone)
    c_flow: str
    a_cookie: str
    b_cookie: str
    snapshot: Callable[[], Any]
    speckle_calls: Callable[[], int]
    kernel_key: str = ""  # what this server's kernels inherit (pickup and refresh need it)
    baseline: Any = None
    counts: dict[str, int] = field(default_factory=dict)

    def signed(self, flow_id: str, *, name: str = COOKIE, age: float = 0.0) -> str:
        clock = (lambda: time.time() - age) if age else None
        value = create_signed_value(self.cookie_secret, name, flow_id, clock=clock)
        return value.decode()


def store_snapshot(service: SignInService) -> Any:
    """Every flow's (id, request, status, reason, expiry) and every request's entry."""
    store = service.store
    flows = sorted(
        (f.flow_id, f.request_id, f.status, f.ended_reason, f.expires_at)
        for f in store._flows.values()
    )
    entries = sorted(
        (
            e.request_id,
            e.pickup_hash,
            e.flow_id or "",
            "" if e.outcome is None else e.outcome.reason,
            "" if e.outcome is None else e.outcome.message,
            e.outcome is not None and e.outcome.ok,
            e.expires_at,
        )
        for e in store._entries.values()
    )
    return store.counts(), flows, entries


async def build_world(
    jp_serverapp: Any, jp_fetch: Any, jp_http_port: int, service: SignInService, speckle: Any
) -> World:
    """A pending, B signed in (result waiting), C denied (result waiting)."""
    a, b, c = Kernel(), Kernel(), Kernel()
    browser_a, browser_b, browser_c = Browser(jp_fetch), Browser(jp_fetch), Browser(jp_fetch)
    assert (await browser_a.start(a)).code == 200
    a_cookie = browser_a.cookies[COOKIE]
    started = await browser_b.start(b)
    b_cookie = browser_b.cookies[COOKIE]
    code = speckle.mint_code(challenge_of(started))
    assert (await browser_b.callback({"access_code": code})).code == 200
    assert (await browser_c.start(c)).code == 200
    assert (await browser_c.callback({"denied": "true"})).code == 403

    by_request = {f.request_id: f.flow_id for f in service.store._flows.values()}
    loop = asyncio.get_running_loop()

    async def snap() -> Any:
        return store_snapshot(service)

    def snapshot() -> Any:
        return asyncio.run_coroutine_threadsafe(snap(), loop).result(30)

    async def calls() -> int:
        return len(speckle.calls)

    def speckle_calls() -> int:
        return asyncio.run_coroutine_threadsafe(calls(), loop).result(30)

    world = World(
        port=jp_http_port,
        token=jp_serverapp.identity_provider.token,
        base=jp_serverapp.base_url,
        cookie_secret=jp_serverapp.web_app.settings["cookie_secret"],
        a=a,
        b=b,
        c=c,
        a_flow=by_request[a.request_id],
        b_flow=by_request[b.request_id],
        c_flow=by_request[c.request_id],
        a_cookie=a_cookie,
        b_cookie=b_cookie,
        snapshot=snapshot,
        speckle_calls=speckle_calls,
        kernel_key=service.kernel_key,
    )
    counts, flows, _entries = store_snapshot(service)
    assert counts == {"flows": 3, "entries": 3}
    assert {f[2:4] for f in flows} == {
        ("pending", None),
        ("ended", "signed-in"),
        ("ended", "denied"),
    }
    return world


# ------------------------------------------------------------------------------- raw HTTP


class Raw:
    """One keep-alive connection; sends the path, headers and body exactly as given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def send(
        self, method: str, path: str, headers: list[tuple[str, bytes]], body: bytes | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        for attempt in range(2):
            conn = self.conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn = None
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                if body is not None:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.RemoteDisconnected):
                conn.close()
                if attempt:
                    raise
                continue
            if response.will_close:
                conn.close()
            else:
                self.conn = conn
            return response.status, response.msg, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# ------------------------------------------------------------------------------- strategies

printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
any_text = st.text(max_size=80)
non_ascii = st.text(
    st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
    min_size=1,
    max_size=40,
)
oversized = st.builds(
    lambda ch, n: ch * n, st.sampled_from(["a", "0", "%", "é", "-", "😀"]), st.integers(300, 3000)
)
#: Tornado closes the connection of a request whose head exceeds 64 KiB before any handler runs:
#: keep every request under half of that.
MAX_QUERY = 30_000
odd_value = st.one_of(any_text, non_ascii, oversized, st.text(printable, max_size=80))


def tornado_clean(value: str) -> str:
    """What ``get_query_argument`` makes of a value: control characters become spaces, then
    it is stripped. A malformed value must stay malformed after that."""
    return re.sub(r"[\x00-\x08\x0e-\x1f]", " ", value).strip()


def stays_malformed(pattern: re.Pattern[str]) -> Callable[[str | bytes], bool]:
    def check(value: str | bytes) -> bool:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return True  # tornado answers 400 "Invalid unicode"
        return not pattern.fullmatch(tornado_clean(value))

    return check


well_formed_id = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"),
    min_size=16,
    max_size=64,
)
malformed_id = st.one_of(
    odd_value,
    st.text(st.sampled_from("abc012_-"), max_size=15),  # too short
    st.text(st.sampled_from("abc012_-"), min_size=65, max_size=100),  # too long
    st.builds(lambda s, x: s[:8] + x + s[8:], well_formed_id, st.sampled_from("=+/. %é\x00\n")),
).filter(stays_malformed(REQUEST_RE))
hex64 = st.text(st.sampled_from("0123456789abcdef"), min_size=64, max_size=64)
malformed_pickup = st.one_of(
    odd_value,
    hex64.map(str.upper),
    st.text(st.sampled_from("0123456789abcdef"), min_size=63, max_size=63),
    st.text(st.sampled_from("0123456789abcdef"), min_size=65, max_size=65),
).filter(stays_malformed(PICKUP_RE))


def _not_allowed(value: str) -> bool:
    """A ``server`` that is refused: an empty one (after tornado's cleaning) means "the
    configured server", a legitimate start."""
    cleaned = tornado_clean(value)
    if not cleaned:
        return False
    try:
        return normalize_server_url(cleaned) not in ("http://speckle.test",)
    except ValueError:
        return True


bad_server = st.one_of(
    st.sampled_from(
        [
            "http://evil.test",
            "https://speckle.test",
            "http://speckle.test.evil.test",
            "http://speckle.test@evil.test",
            "javascript:alert(1)",
            "//evil.test",
            "http://[::1",
            "http://speckle.test:99999",
        ]
    ),
    odd_value,
).filter(_not_allowed)


@st.composite
def encoded(draw: st.DrawFn, value: str | bytes) -> str:
    """A value as it may appear in a query string: escaped, plus-escaped, or raw."""
    how = draw(st.sampled_from(["quote", "plus", "raw", "latin1"]))
    if isinstance(value, bytes):
        return quote(value, safe="")
    if how == "plus":
        return quote_plus(value)
    if how == "raw" and all(0x21 <= ord(ch) <= 0x7E for ch in value):
        return value  # '&', '=', '%', '#', '?' go out unescaped
    if how == "latin1":
        return quote(value.encode("latin-1", "replace"), safe="")  # not UTF-8
    return quote(value, safe="")


@st.composite
def query(draw: st.DrawFn, core: list[tuple[str, str | bytes]], reserved: tuple[str, ...]) -> str:
    """``core`` pairs (in order, as given) among noise parameters whose names are not
    ``reserved`` (a noise ``request=`` would override the core one: the last value wins)."""
    noise_name = st.one_of(
        st.sampled_from(["state", "error", "code", "Request", "request[]", "token", "", "?x"]),
        any_text,
    ).filter(lambda n: n not in reserved and n != "token")  # Jupyter's login parameter
    noise = draw(
        st.lists(st.tuples(noise_name, st.one_of(odd_value, st.binary(max_size=30))), max_size=4)
    )
    pairs = list(core)
    for item in noise:
        pairs.insert(draw(st.integers(0, len(pairs))), item)
    parts = []
    for name, value in pairs:
        key = quote(name, safe="") if name else ""
        parts.append(f"{key}={draw(encoded(value))}")
    sep = draw(st.sampled_from(["&", "&", "&", ";", "&&"]))
    text = sep.join(parts)
    assume(len(text) < MAX_QUERY)
    return text


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_value(value: str) -> bytes:
    """UTF-8 bytes (non-ASCII allowed), control characters made spaces: tornado drops the
    connection of a request whose header has one (RFC 9110), before any handler runs."""
    return _CONTROL.sub(" ", value).encode("utf-8")


noise_headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "X-Forwarded-Host",
                "X-Forwarded-Proto",
                "Forwarded",
                "Origin",
                "User-Agent",
                "Accept-Language",
                "X-Speckle-NB",
                "Sec-Fetch-Mode",
                "X-Requested-With",
                "If-None-Match",
            ]
        ),
        st.one_of(odd_value, st.sampled_from(["https", "evil.test", "for=1.2.3.4;proto=https"])),
    ).map(lambda kv: (kv[0], header_value(kv[1]))),
    max_size=4,
)
odd_cookie_noise = st.lists(
    st.tuples(st.sampled_from(["_xsrf", "username-127-0-0-1", "x", COOKIE + "2"]), odd_value),
    max_size=2,
)


def cookie_header(pairs: list[tuple[str, str]]) -> bytes:
    return header_value("; ".join(f"{k}={v}" for k, v in pairs))


class Case(dict):  # type: ignore[type-arg]
    """A generated case; its repr (what Hypothesis prints for a failure) shortens long
    values, so an oversized case still prints readably."""

    def __repr__(self) -> str:
        def short(value: Any) -> str:
            text = repr(value)
            return text if len(text) <= 300 else f"{text[:300]}…({len(text)} chars)"

        return "Case(" + ", ".join(f"{k}={short(v)}" for k, v in self.items()) + ")"


# ------------------------------------------------------------------------------- checks


def clear_html_error(status: int, body: bytes) -> None:
    text = body.decode("utf-8", "replace")
    assert "Traceback" not in text
    if 300 <= status < 400:
        return  # Jupyter sends an unauthenticated browser to its login page
    assert status >= 400, (status, text[:300])
    ours = re.search(r'<p id="message">([^<]+)</p>', text)
    if ours:
        assert len(ours.group(1).strip()) > 20, text[:400]
        return
    # Jupyter's own error page (403 without a login, 400 for an undecodable argument)
    assert f"{status}" in text, (status, text[:400])
    assert "<title>" in text or "message" in text, (status, text[:400])


def no_flow_cookie_set(headers: http.client.HTTPMessage) -> None:
    for value in headers.get_all("Set-Cookie") or []:
        name, _, rest = value.partition("=")
        if name == COOKIE:
            # clearing it is fine; setting a new one means a flow started
            assert (
                rest.startswith(('""', ";"))
                or "expires=Thu, 01 Jan 1970" in rest
                or ("Max-Age=0" in rest)
            ), value


def settings_for(cases: int) -> settings:
    return settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        # No shrinking: each case is a real HTTP round trip, and the raw failing case is
        # printed in full anyway.
        phases=(Phase.explicit, Phase.generate),
        print_blob=True,
    )


# ------------------------------------------------------------------------------- start


@st.composite
def start_case(draw: st.DrawFn, world: World) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "malformed-request",
                "malformed-pickup",
                "missing",
                "cross-site",
                "server-not-allowed",
                "taken",
                "unauthenticated",
            ]
        )
    )
    secret = secrets.token_urlsafe(32)
    fresh_id = draw(well_formed_id)
    good_pickup = hashlib.sha256(secret.encode()).hexdigest()
    core: list[tuple[str, str | bytes]] = []
    headers: list[tuple[str, bytes]] = []
    authed = True
    if kind == "malformed-request":
        earlier = draw(st.lists(st.one_of(well_formed_id, malformed_id), max_size=2))
        last = draw(
            st.one_of(
                malformed_id, st.binary(min_size=1, max_size=40).filter(stays_malformed(REQUEST_RE))
            )
        )
        core += [("request", v) for v in earlier] + [("request", last)]
        core += [
            ("pickup", v) for v in draw(st.lists(st.one_of(hex64, malformed_pickup), max_size=2))
        ]
    elif kind == "malformed-pickup":
        core.append(("request", draw(st.one_of(well_formed_id, st.just(world.a.request_id)))))
        if draw(st.booleans()):
            binary = st.binary(max_size=70).filter(stays_malformed(PICKUP_RE))
            core.append(("pickup", draw(st.one_of(malformed_pickup, binary))))
    elif kind == "missing":
        pass
    elif kind == "cross-site":
        core += [("request", fresh_id), ("pickup", good_pickup)]
        if draw(st.booleans()):
            site = draw(st.sampled_from(["cross-site", "same-site", "Cross-Site", " cross-site "]))
            headers.append(("Sec-Fetch-Site", site.encode()))
        else:
            referer = draw(
                st.sampled_from(
                    ["https://evil.test/x", "http://127.0.0.1.evil.test/", "http://localhost:1/"]
                )
            )
            headers.append(("Referer", referer.encode()))
    elif kind == "server-not-allowed":
        core += [("request", fresh_id), ("pickup", good_pickup), ("server", draw(bad_server))]
    elif kind == "taken":
        victim = draw(st.sampled_from([world.a, world.b, world.c]))
        core += [("request", victim.request_id), ("pickup", draw(hex64))]
    elif kind == "unauthenticated":
        core += [("request", fresh_id), ("pickup", good_pickup)]
        authed = False
    if authed:
        headers.append(("Authorization", f"token {world.token}".encode()))
    elif draw(st.booleans()):
        forged = draw(st.one_of(st.just(secrets.token_hex(24)), odd_value))
        headers.append(("Authorization", header_value(f"token {forged}")))
    cookies = draw(odd_cookie_noise)
    flow_cookie = draw(
        st.sampled_from(["none", "live-a", "replay-b", "guessed", "garbage", "forged"])
    )
    if flow_cookie == "live-a":  # a refused start must not supersede the live flow A
        cookies.append((COOKIE, world.a_cookie))
    elif flow_cookie == "replay-b":
        cookies.append((COOKIE, world.b_cookie))
    elif flow_cookie == "guessed":
        cookies.append((COOKIE, world.signed(secrets.token_urlsafe(24))))
    elif flow_cookie == "garbage":
        cookies.append((COOKIE, draw(odd_value)))
    elif flow_cookie == "forged":
        cookies.append((COOKIE, create_signed_value(b"x" * 32, COOKIE, world.a_flow).decode()))
    if cookies:
        headers.append(("Cookie", cookie_header(cookies)))
    headers += draw(noise_headers)
    reserved = ("request", "pickup", "server")
    return Case(
        {
            "kind": kind,
            "path": f"{world.base}speckle-nb/start?{draw(query(core, reserved))}",
            "headers": headers,
            "request": fresh_id,
            "secret": secret,
            "authed": authed,
        }
    )


def pick_up(raw: Raw, world: World, request_id: str, secret: str) -> dict[str, Any]:
    body = json.dumps({"request": request_id, "secret": secret, "hold": 0}).encode()
    headers = [
        ("Content-Type", b"application/json"),
        (KERNEL_KEY_HEADER, world.kernel_key.encode()),
    ]
    status, _, data = raw.send("POST", f"{world.base}speckle-nb/pickup", headers, body)
    assert status == 200, data
    reply: dict[str, Any] = json.loads(data)
    return reply


def fuzz_start(world: World, cases: int) -> None:
    raw = Raw(world.port)

    @settings_for(cases)
    @given(case=start_case(world))
    def run(case: dict[str, Any]) -> None:
        world.counts["start"] = world.counts.get("start", 0) + 1
        status, headers, body = raw.send("GET", case["path"], case["headers"])
        assert status < 500, body[:500]
        clear_html_error(status, body)
        if case["authed"] and status == 302:  # only to Jupyter itself, never to Speckle
            location = headers.get("Location", "")
            assert location.startswith(world.base), location
            assert "/authn/" not in location, location
        elif not case["authed"]:
            assert status in (302, 403), status
        no_flow_cookie_set(headers)
        after = world.snapshot()
        if after != world.baseline:
            # the one designed change: a refused start tells its own kernel at once
            assert case["kind"] == "server-not-allowed", case["kind"]
            assert status == 400, case["kind"]
            reply = pick_up(raw, world, case["request"], case["secret"])
            assert reply["status"] == "error", reply
            assert reply["reason"] == "failed", reply
            assert "only to" in reply["message"], reply  # names the servers it may use
            after = world.snapshot()
        assert after == world.baseline, f"state changed by a {case['kind']} start"
        assert world.speckle_calls() == world.counts["speckle"]

    try:
        run()
    finally:
        raw.close()


# ------------------------------------------------------------------------------- callback


@st.composite
def callback_case(draw: st.DrawFn, world: World) -> dict[str, Any]:
    cookie_kind = draw(
        st.sampled_from(
            [
                "none",
                "garbage",
                "forged-signature",
                "guessed-id",
                "replay-signed-in",
                "replay-denied",
                "expired-signature-of-live",
                "wrong-name-of-live",
                "unauthenticated-live",
            ]
        )
    )
    code_value = st.one_of(
        st.text(st.sampled_from("0123456789abcdef"), min_size=42, max_size=42),
        odd_value,
        st.binary(min_size=1, max_size=50),
        st.builds(lambda n: "a" * n, st.integers(257, 3000)),
    )
    core: list[tuple[str, str | bytes]] = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["access_code", "access_code", "denied", "Access_Code"]))
        if name == "denied":
            value: str | bytes = draw(
                st.one_of(st.sampled_from(["true", "TRUE", "True", "false", "1", ""]), odd_value)
            )
        else:
            value = draw(code_value)
        core.append((name, value))
    headers: list[tuple[str, bytes]] = []
    authed = cookie_kind != "unauthenticated-live"
    if authed:
        headers.append(("Authorization", f"token {world.token}".encode()))
    cookies = draw(odd_cookie_noise)
    if cookie_kind == "garbage":
        cookies.append((COOKIE, draw(odd_value)))
    elif cookie_kind == "forged-signature":
        cookies.append((COOKIE, create_signed_value(b"y" * 32, COOKIE, world.a_flow).decode()))
    elif cookie_kind == "guessed-id":
        guess = draw(st.one_of(st.just(secrets.token_urlsafe(24)), any_text))
        cookies.append((COOKIE, world.signed(guess)))
    elif cookie_kind == "replay-signed-in":
        cookies.append((COOKIE, world.b_cookie))
    elif cookie_kind == "replay-denied":
        cookies.append((COOKIE, world.signed(world.c_flow)))
    elif cookie_kind == "expired-signature-of-live":
        # older than the window a cookie is read in: flow_lifetime + result_lifetime + 60 s
        # (600 + 120 + 60), which lets a late callback hear "expired"
        cookies.append((COOKIE, world.signed(world.a_flow, age=draw(st.floats(800, 1e7)))))
    elif cookie_kind == "wrong-name-of-live":
        cookies.append((COOKIE, world.signed(world.a_flow, name="_xsrf")))
    elif cookie_kind == "unauthenticated-live":
        cookies.append((COOKIE, world.a_cookie))
    if cookies:
        headers.append(("Cookie", cookie_header(cookies)))
    headers += draw(noise_headers)
    path = f"{world.base}speckle-nb/callback"
    q = draw(query(core, ("access_code", "denied")))
    if q or draw(st.booleans()):
        path += "?" + q
    secrets_sent = [v for _, v in core if isinstance(v, str) and len(v) >= 12]
    return Case(kind=cookie_kind, path=path, headers=headers, authed=authed, echo=secrets_sent)


def fuzz_callback(world: World, cases: int) -> None:
    raw = Raw(world.port)

    @settings_for(cases)
    @given(case=callback_case(world))
    def run(case: dict[str, Any]) -> None:
        world.counts["callback"] = world.counts.get("callback", 0) + 1
        status, _, body = raw.send("GET", case["path"], case["headers"])
        assert status < 500, body[:500]
        clear_html_error(status, body)
        if case["authed"]:
            assert 400 <= status < 500, status
            text = body.decode("utf-8", "replace")
            for value in case["echo"]:  # an access code is never echoed into the page
                assert value not in text
        else:
            assert status in (302, 403), status
        assert world.snapshot() == world.baseline, f"state changed by a {case['kind']} callback"
        assert world.speckle_calls() == world.counts["speckle"], "Speckle was called"

    try:
        run()
    finally:
        raw.close()


# ------------------------------------------------------------------------------- pickup

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), odd_value
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def pickup_case(draw: st.DrawFn, world: World) -> dict[str, Any]:
    kind = draw(st.sampled_from(["not-json", "not-object", "fields", "guessed-secret"]))
    if kind == "not-json":
        body = draw(
            st.one_of(
                st.binary(max_size=200),
                st.sampled_from([b"", b"{", b'{"request": ', b"\xff\xfe{}", b"null", b"[]" * 1000]),
                st.builds(lambda n: b"{" * n, st.integers(1, 5000)),
            )
        )
    elif kind == "not-object":
        body = json.dumps(draw(st.one_of(json_scalar, st.lists(json_value, max_size=5)))).encode()
    else:
        request = (
            draw(st.sampled_from([world.a, world.b, world.c])).request_id
            if kind == "guessed-secret"
            else draw(
                st.one_of(
                    st.sampled_from([world.a.request_id, world.b.request_id, world.c.request_id]),
                    well_formed_id,
                    malformed_id,
                    st.sampled_from(["\ud800" * 16, "a" * 15 + "\udfff"]),
                    json_value,
                )
            )
        )
        lone_surrogates = st.sampled_from(["\ud800", "x\udfff", "\udc00" * 20])
        if kind == "guessed-secret":  # a well-formed body: only the secret is wrong
            fields: dict[str, Any] = {
                "request": request,
                "secret": draw(st.one_of(st.just(secrets.token_urlsafe(32)), non_ascii, hex64)),
                "hold": draw(st.sampled_from([0, 0.01])),
                "action": draw(st.sampled_from(["wait", "cancel"])),
            }
        else:
            fields = {
                "request": request,
                "secret": draw(
                    st.one_of(
                        st.just(secrets.token_urlsafe(32)),
                        odd_value,
                        lone_surrogates,
                        st.builds(lambda n: "s" * n, st.integers(257, 5000)),
                        json_value,
                    )
                ),
            }
            if draw(st.booleans()):
                fields["hold"] = draw(
                    st.one_of(st.floats(-1e9, 1e300), st.integers(-(2**80), 2**80), json_value)
                )
            if draw(st.booleans()):
                fields["action"] = draw(
                    st.one_of(st.sampled_from(["wait", "cancel", "Cancel", "ping"]), json_value)
                )
        for extra in draw(st.lists(st.text(max_size=8), max_size=2)):
            if kind != "guessed-secret":
                fields.setdefault(extra, draw(json_value))
        special = draw(st.sampled_from(["", "NaN", "Infinity", "-Infinity", "1e999"]))
        if (
            special and "hold" in fields and kind != "guessed-secret"
        ):  # numbers JSON.parse refuses but Python accepts
            fields["hold"] = "@@HOLD@@"
            text = json.dumps(fields).replace('"@@HOLD@@"', special)
        else:
            text = json.dumps(fields)
        body = text.encode()
    headers: list[tuple[str, bytes]] = [
        (
            "Content-Type",
            draw(
                st.sampled_from(
                    [
                        b"application/json",
                        b"text/plain",
                        b"application/x-www-form-urlencoded",
                        b"multipart/form-data; boundary=x",
                        b"\xff",
                    ]
                )
            ),
        )
    ]
    # Mostly a kernel of this server (its key), so that the body's checks are reached.
    key = draw(st.sampled_from(["ours"] * 4 + ["none", "wrong"]))
    if key != "none":
        value = world.kernel_key if key == "ours" else draw(odd_value)
        headers.append((KERNEL_KEY_HEADER, header_value(value)))
    if draw(st.booleans()):
        forged = draw(st.one_of(st.just(secrets.token_hex(24)), odd_value))
        headers.append(("Authorization", header_value(f"token {forged}")))
    cookies = draw(odd_cookie_noise)
    if draw(st.booleans()):
        cookies.append((COOKIE, world.a_cookie))
    if cookies:
        headers.append(("Cookie", cookie_header(cookies)))
    headers += draw(noise_headers)
    return Case(kind=kind, body=body, headers=headers, kernel=key == "ours")


def fuzz_pickup(world: World, cases: int) -> None:
    raw = Raw(world.port)

    @settings_for(cases)
    @given(case=pickup_case(world))
    def run(case: dict[str, Any]) -> None:
        world.counts["pickup"] = world.counts.get("pickup", 0) + 1
        status, _, body = raw.send(
            "POST", f"{world.base}speckle-nb/pickup", case["headers"], case["body"]
        )
        assert status < 500, body[:500]
        assert b"Traceback" not in body
        reply = json.loads(body)
        assert isinstance(reply, dict), reply
        if status >= 400:
            # ours: 400 malformed, 403 wrong secret. Jupyter's APIHandler before ours: 400 for
            # a body tornado cannot parse (multipart), 404 for a browser's foreign Origin.
            assert status in (400, 403, 404), status
            if status == 404:  # Jupyter blocks a cross-origin API call from a browser
                assert any(name == "Origin" for name, _ in case["headers"]), reply
                assert reply.get("message") == "Not Found", reply
            else:
                assert len(reply.get("message") or "") > 15, reply
            if "status" in reply or status == 403:
                assert reply["status"] == "error", reply
                assert reply["reason"], reply
        else:
            assert status == 200
            # nothing handed out: "pending", "cancelled" for a cancel of an unknown request, or
            # the extension's "ready" to a ping
            assert (
                reply.get("status") in ("pending", "ready") or reply.get("reason") == "cancelled"
            ), reply
            assert "credentials" not in reply
        multipart = any(
            v.startswith(b"multipart/") for k, v in case["headers"] if k == "Content-Type"
        )
        if case["kind"] == "guessed-secret" and not multipart and status != 404:
            assert status == 403, reply  # a wrong secret for an existing request
        if not case["kernel"] and reply.get("status") != "ready" and status not in (400, 404):
            assert (status, reply["reason"]) == (403, "not-this-servers-kernel"), reply
        assert world.snapshot() == world.baseline, f"state changed by a {case['kind']} pickup"

    try:
        run()
    finally:
        raw.close()


# ------------------------------------------------------------------------------- the tests


async def _fuzz(
    route: str,
    fuzz: Callable[[World, int], None],
    jp_serverapp: Any,
    jp_fetch: Any,
    jp_http_port: int,
    service: SignInService,
    speckle: FakeSpeckle,
    record_property: Callable[[str, object], None],
) -> None:
    world = await build_world(jp_serverapp, jp_fetch, jp_http_port, service, speckle)
    world.baseline = store_snapshot(service)
    world.counts["speckle"] = len(speckle.calls)
    started = time.perf_counter()
    await asyncio.to_thread(fuzz, world, CASES)
    elapsed = time.perf_counter() - started
    ran = world.counts.get(route, 0)
    record_property(f"{route}_cases", ran)
    print(f"\n{route}: {ran} generated cases in {elapsed:.1f} s")
    assert ran >= CASES
    # the three sign-ins are exactly as before, and B's kernel still gets its result
    assert store_snapshot(service) == world.baseline
    async_raw = Raw(jp_http_port)
    reply = await asyncio.to_thread(pick_up, async_raw, world, world.b.request_id, world.b.secret)
    async_raw.close()
    assert reply["status"] == "ok"
    assert reply["credentials"]["token"] in speckle.issued


@pytest.mark.slow
async def test_start_bad_input(
    jp_serverapp: Any,
    jp_fetch: Any,
    jp_http_port: int,
    service: SignInService,
    speckle: FakeSpeckle,
    record_property: Callable[[str, object], None],
) -> None:
    await _fuzz(
        "start", fuzz_start, jp_serverapp, jp_fetch, jp_http_port, service, speckle, record_property
    )


@pytest.mark.slow
async def test_callback_bad_input(
    jp_serverapp: Any,
    jp_fetch: Any,
    jp_http_port: int,
    service: SignInService,
    speckle: FakeSpeckle,
    record_property: Callable[[str, object], None],
) -> None:
    await _fuzz(
        "callback",
        fuzz_callback,
        jp_serverapp,
        jp_fetch,
        jp_http_port,
        service,
        speckle,
        record_property,
    )


@pytest.mark.slow
async def test_pickup_bad_input(
    jp_serverapp: Any,
    jp_fetch: Any,
    jp_http_port: int,
    service: SignInService,
    speckle: FakeSpeckle,
    record_property: Callable[[str, object], None],
) -> None:
    await _fuzz(
        "pickup",
        fuzz_pickup,
        jp_serverapp,
        jp_fetch,
        jp_http_port,
        service,
        speckle,
        record_property,
    )


# ------------------------------------------------------------------------------- found cases


async def test_pickup_secret_that_is_not_utf8_is_a_clear_400(
    jp_fetch: Any, service: SignInService
) -> None:
    """Found by the pickup property: JSON may carry a lone surrogate (``"\\ud800"``), which
    Python's ``json`` accepts but UTF-8 cannot encode; hashing it must not become a 500."""
    before = store_snapshot(service)
    body = json.dumps({"request": "r" * 22, "secret": "\ud800", "hold": 0})
    response = await jp_fetch(
        "speckle-nb",
        "pickup",
        method="POST",
        body=body,
        headers={"Authorization": "", KERNEL_KEY_HEADER: service.kernel_key},
        raise_error=False,
    )
    assert response.code == 400, response.body
    reply = json.loads(response.body)
    assert reply["status"] == "error"
    assert reply["reason"] == "bad-request"
    assert "secret" in reply["message"]
    assert store_snapshot(service) == before


async def test_undecodable_jupyter_token_parameter_changes_nothing(
    jp_fetch: Any, jp_http_port: int, jp_serverapp: Any, service: SignInService
) -> None:
    """``?token=%80`` is read by Jupyter's own login (``IdentityProvider.get_token``) before
    any speckle-nb code runs: jupyter_server 2.21 answers 400 with an *empty* body and logs
    "Uncaught exception in write_error" (its error page asks for the deprecated
    ``get_current_user``). Not ours to fix; what we hold: no 500, no traceback, no change."""
    before = store_snapshot(service)
    raw = Raw(jp_http_port)
    auth = [("Authorization", f"token {jp_serverapp.identity_provider.token}".encode())]
    try:
        for route in ("start", "callback"):
            path = f"{jp_serverapp.base_url}speckle-nb/{route}?token=%80&request=x"
            status, _, body = await asyncio.to_thread(raw.send, "GET", path, auth)
            assert status == 400
            assert b"Traceback" not in body
    finally:
        raw.close()
    assert store_snapshot(service) == before
