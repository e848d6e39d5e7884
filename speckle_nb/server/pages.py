"""The small HTML pages the browser sees at ``start`` (refusals) and ``callback``.

Every value is escaped; the pages hold no secret. Each page runs one inline script (allowed by
a per-page CSP nonce) that:

* tells the notebook tab what happened over a same-origin ``BroadcastChannel("speckle-nb")``:
  ``{type: "signed-in" | "failed", request: <request id or null>, reason: <word>}`` — this
  reaches the notebook even when Speckle's COOP cut ``window.opener``;
* drops the query string (``access_code=…``) from the address bar with ``history.replaceState``,
  so it is not left in the history or shown when the window cannot close itself;
* closes the window after a success, where the browser allows it (a failure stays open so that
  its message can be read).
"""

from __future__ import annotations

import html
import json
import secrets
from dataclasses import dataclass
from typing import Literal

__all__ = ["CHANNEL", "Page", "continue_page", "render_page", "signed_in_page"]

CHANNEL = "speckle-nb"

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} · Speckle sign-in</title>
<style nonce="{nonce}">
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem;
  color: #1a1a1a; line-height: 1.5; }}
h1 {{ font-size: 1.3rem; }}
.ok h1 {{ color: #0a7d32; }}
.failed h1 {{ color: #b00020; }}
.details {{ color: #555; font-size: 0.9rem; }}
</style>
</head>
<body class="{css_class}">
<h1>{title}</h1>
<p id="message">{message}</p>
{details}
<script nonce="{nonce}">
(function () {{
  var note = {note};
  try {{
    var channel = new BroadcastChannel({channel});
    channel.postMessage(note);
    channel.close();
  }} catch (e) {{}}
  try {{ history.replaceState(null, "", window.location.pathname); }} catch (e) {{}}
  if (note.type === "signed-in") {{
    setTimeout(function () {{ try {{ window.close(); }} catch (e) {{}} }}, 600);
  }}
}})();
</script>
</body>
</html>
"""


@dataclass(frozen=True)
class Page:
    """A rendered page and the headers it needs (its CSP carries the script's nonce)."""

    status: int
    html: str
    content_security_policy: str
    kind: Literal["signed-in", "failed", "continue"]
    reason: str


def _script_json(value: object) -> str:
    """JSON that is safe inside ``<script>``: no ``</script>``, no HTML comment openers."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    *,
    title: str,
    message: str,
    kind: Literal["signed-in", "failed"],
    reason: str,
    request_id: str | None,
    status: int,
    details: str | None = None,
) -> Page:
    """A page whose text is ``title`` and ``message`` (plain text, escaped here)."""
    nonce = secrets.token_urlsafe(16)
    note = {"type": kind, "request": request_id, "reason": reason}
    body = _TEMPLATE.format(
        title=html.escape(title),
        message=html.escape(message),
        details=f'<p class="details">{html.escape(details)}</p>' if details else "",
        css_class="ok" if kind == "signed-in" else "failed",
        nonce=nonce,
        note=_script_json(note),
        channel=_script_json(CHANNEL),
    )
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return Page(status, body, csp, kind, reason)


def signed_in_page(user_name: str, server_url: str, request_id: str) -> Page:
    return render_page(
        title="Signed in to Speckle",
        message=f"Signed in as {user_name} — you can close this window.",
        details=f"Server: {server_url}. Your notebook picks the sign-in up by itself.",
        kind="signed-in",
        reason="ok",
        request_id=request_id,
        status=200,
    )


_CONTINUE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0;url={url}">
<title>Continue to Speckle</title>
</head>
<body>
<p>Taking you to Speckle to sign in… <a href="{url}" rel="noreferrer">Continue</a></p>
</body>
</html>
"""


def continue_page(authorize_url: str) -> Page:
    """``start`` moves on to Speckle by this page rather than a 302: request logs (JupyterHub's
    among them) print a redirect's ``Location``, and with Speckle's plain method the challenge
    in that URL is the verifier itself."""
    csp = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    body = _CONTINUE.format(url=html.escape(authorize_url, quote=True))
    return Page(200, body, csp, "continue", "continue")
