"""How the server and its web page build the URLs a browser is sent back to."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

_SPECIAL_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "file": None}


def with_access_code(redirect_url: str, access_code: str) -> str:
    """``${app.redirectUrl}?access_code=${ac}``: plain text, a second ``?`` if one exists."""
    return f"{redirect_url}?access_code={access_code}"


def with_denied(redirect_url: str) -> str:
    """What ``new URL(u); u.searchParams.set('denied', 'true')`` serialises to.

    The URL API normalises on the way: a bare origin gains ``/``, the scheme and host
    are lowercased, a default port is dropped, and the whole query is re-encoded as
    form data with ``denied=true`` added (or replacing an earlier ``denied``).
    """
    parts = urlsplit(redirect_url)
    scheme = parts.scheme.lower()
    netloc, path = parts.netloc, parts.path
    if scheme in _SPECIAL_SCHEMES:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        userinfo = netloc.rpartition("@")[0]
        port = parts.port
        netloc = (userinfo + "@" if userinfo else "") + host
        if port is not None and port != _SPECIAL_SCHEMES[scheme]:
            netloc += f":{port}"
        path = path or "/"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "denied" for k, _ in pairs):
        first = next(i for i, (k, _) in enumerate(pairs) if k == "denied")
        pairs = [p for i, p in enumerate(pairs) if p[0] != "denied" or i == first]
        pairs[first] = ("denied", "true")
    else:
        pairs.append(("denied", "true"))
    query = "&".join(f"{_form_encode(k)}={_form_encode(v)}" for k, v in pairs)
    return urlunsplit((scheme, netloc, path, query, parts.fragment))


def _form_encode(text: str) -> str:
    # The form-urlencoded serialiser keeps only alphanumerics and *-._ (so "~" is escaped).
    return quote_plus(text, safe="*").replace("~", "%7E")


def is_local_path(target: str) -> bool:
    """A same-site path to go back to after login; never another origin."""
    return target.startswith("/") and not target.startswith(("//", "/\\"))
