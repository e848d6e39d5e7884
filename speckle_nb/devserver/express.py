"""Bodies that Express itself writes (not Speckle's code): its 404 page and the text of
``res.redirect``. Pure functions, so they can be read against Express line by line.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

# encodeurl keeps these as they are (and a '%' that starts a valid escape).
_URL_SAFE = frozenset(
    "!#$%&'()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_abcdefghijklmnopqrstuvwxyz|~"
)
_HEX = frozenset("0123456789abcdefABCDEF")


def encode_url(url: str) -> str:
    """The ``encodeurl`` package: percent-encode what may not appear in a URL, keep the rest."""
    out = []
    for i, char in enumerate(url):
        if char == "%":
            valid = len(url) > i + 2 and url[i + 1] in _HEX and url[i + 2] in _HEX
            out.append("%" if valid else "%25")
        elif char in _URL_SAFE:
            out.append(char)
        else:
            out.append(quote(char, safe="", errors="replace"))
    return "".join(out)


def escape_html(text: str) -> str:
    """The ``escape-html`` package (``'`` is ``&#39;``, where Python's ``html.escape``
    writes ``&#x27;``)."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def express_404(method: str, path: str) -> str:
    """``finalhandler``'s page for an unknown route (or a method the route lacks)."""
    message = escape_html(f"Cannot {method} {encode_url(path)}").replace("  ", " &nbsp;")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Error</title>\n</head>\n<body>\n<pre>{message}</pre>\n</body>\n</html>\n"
    )


def redirect_body(accept: str | None, location: str) -> tuple[str, str | None]:
    """``res.redirect(url)`` (302): ``(body, content type)`` chosen by ``Accept``."""
    chosen = negotiate(accept, ("text/plain", "text/html"))
    if chosen == "text/plain":
        return f"Found. Redirecting to {location}", "text/plain; charset=utf-8"
    if chosen == "text/html":
        return f"<p>Found. Redirecting to {escape_html(location)}</p>", "text/html; charset=utf-8"
    return "", None


def negotiate(accept: str | None, offers: Sequence[str]) -> str | None:
    """The ``negotiator`` package's ``mediaType``: the best offer, or None if none is
    acceptable. No header accepts anything (the first offer wins)."""
    ranges = _parse_accept(accept if accept and accept.strip() else "*/*")
    best: tuple[float, int, int, int] | None = None
    chosen = None
    for index, offer in enumerate(offers):
        kind, _, sub = offer.lower().partition("/")
        match: tuple[int, float, int] | None = None  # (specificity, q, order in Accept)
        for order, (r_kind, r_sub, quality) in enumerate(ranges):
            if r_kind not in (kind, "*") or r_sub not in (sub, "*"):
                continue
            specificity = (4 if r_kind == kind else 0) | (2 if r_sub == sub else 0)
            candidate = (specificity, quality, order)
            if match is None or (candidate[0], candidate[1], -candidate[2]) > (
                match[0],
                match[1],
                -match[2],
            ):
                match = candidate
        if match is None or match[1] <= 0:
            continue
        rank = (match[1], match[0], -match[2], -index)
        if best is None or rank > best:
            best, chosen = rank, offer
    return chosen


def _parse_accept(accept: str) -> list[tuple[str, str, float]]:
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if "/" not in media:
            continue
        kind, sub = (x.lower() for x in media.split("/", 1))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((kind, sub, quality))
    return ranges
