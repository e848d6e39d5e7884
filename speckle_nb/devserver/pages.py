"""The web app's pages as small templates. Every interpolated value goes through ``escape``.

Each page names itself in ``<meta name="speckle-dev-page">`` so a test (or the
``BrowserPlayer``) can tell where it landed without scraping prose. The pages work
without JavaScript: plain forms, and a meta refresh for the delayed redirect.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .catalog import SCOPE_BY_NAME

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
h1{font-size:1.5rem}form{margin-top:1.5rem}label{display:block;margin:.6rem 0 .2rem}
input[type=email],input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.6rem;cursor:pointer}
.error{color:#b00020}.muted{color:#666;font-size:.9rem}ul{padding-left:1.2rem}
"""


def layout(kind: str, title: str, body: str, *, head_extra: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="speckle-dev-page" content="{escape(kind)}">\n'
        f"<title>{escape(title)} · Speckle dev server</title>\n{head_extra}"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def login_page(*, error: str | None = None, email: str = "") -> str:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return layout(
        "login",
        "Log in",
        f"""<h1>Log in to Speckle</h1>
{message}
<form method="post" action="/authn/login">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" value="{escape(email)}" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button type="submit">Log in</button></p>
</form>
<p class="muted">Local dev server: see the seeded users printed by <code>speckle-nb devserver</code>.</p>""",
    )


def _scope_groups(scopes: Sequence[str]) -> str:
    # The real page groups scopes by the prefix before ":".
    groups: dict[str, list[str]] = {}
    for scope in scopes:
        groups.setdefault(scope.split(":", 1)[0], []).append(scope)
    items = []
    for prefix, names in groups.items():
        lines = "".join(
            f"<li><code>{escape(n)}</code> — {escape(SCOPE_BY_NAME[n].description if n in SCOPE_BY_NAME else n)}</li>"
            for n in names
        )
        items.append(f"<li><strong>{escape(prefix)}</strong><ul>{lines}</ul></li>")
    return "<ul>" + "".join(items) + "</ul>"


def consent_page(
    *,
    app_name: str,
    app_description: str,
    scopes: Sequence[str],
    user_name: str,
    user_email: str,
    action_url: str,
    csrf: str,
) -> str:
    return layout(
        "consent",
        f"Authorize {app_name}",
        f"""<h1>Authorize {escape(app_name)}</h1>
<p>{escape(app_description)}</p>
<p>Signed in as <strong>{escape(user_name)}</strong> ({escape(user_email)}).
{escape(app_name)} would like to:</p>
{_scope_groups(scopes)}
<form method="post" action="{escape(action_url)}">
<input type="hidden" name="_csrf" value="{escape(csrf)}">
<button type="submit" name="action" value="allow">Authorize</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>""",
    )


def redirect_page(target: str, delay: float, *, denied: bool) -> str:
    """The "Success" page that waits before sending the browser on (a meta refresh)."""
    heading = "Access denied — redirecting…" if denied else "Success — redirecting…"
    seconds = f"{delay:g}"
    return layout(
        "redirect",
        "Denied" if denied else "Success",
        f"""<h1>{heading}</h1>
<p>You will be redirected in {escape(seconds)} s. <a href="{escape(target)}">Continue now</a>.</p>""",
        head_extra=f'<meta http-equiv="refresh" content="{escape(seconds)};url={escape(target)}">\n',
    )


def app_error_page() -> str:
    return layout(
        "error",
        "Error",
        '<h1>Error</h1>\n<p>Could not resolve app.</p>\n<p><a href="/">Go home</a></p>',
    )


def authorization_failed_page(server_text: str) -> str:
    return layout(
        "error",
        "App authorization failed",
        f"<h1>App authorization failed</h1>\n<p>{escape(server_text)}</p>\n"
        '<p><a href="/">Go home</a></p>',
    )


def form_expired_page() -> str:
    return layout(
        "error",
        "Form expired",
        "<h1>This form has expired</h1>\n<p>Go back, reload the page and try again.</p>",
    )


def home_page(user_name: str | None, user_email: str | None) -> str:
    if user_name is None:
        status = '<p>Not signed in. <a href="/authn/login">Log in</a></p>'
    else:
        status = (
            f"<p>Signed in as <strong>{escape(user_name)}</strong> ({escape(user_email or '')}). "
            '<a href="/authn/logout">Log out</a></p>'
        )
    return layout(
        "home",
        "Home",
        f"<h1>Speckle dev server</h1>\n{status}\n"
        '<p class="muted">GraphQL: <code>POST /graphql</code></p>',
    )
