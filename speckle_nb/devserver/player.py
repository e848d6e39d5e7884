"""``BrowserPlayer``: a person's browser, played by an httpx client, for tests of any layer.

It keeps cookies per host like a browser, follows redirects one hop at a time
(recording each URL), follows a meta refresh, fills and submits plain HTML forms, and
can stop *before* fetching a URL that starts with a given prefix, so a test decides
how to deliver the callback. Extra headers are bound to one origin: a Jupyter
``Authorization: token …`` is never sent to the Speckle host.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpx

StopRule = Callable[[str], bool]
_REDIRECTS = {301, 302, 303, 307, 308}
_REFRESH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:[;,]\s*(?:url\s*=\s*)?(.*))?$", re.I | re.S)


class PlayerError(AssertionError):
    """The page is not what the scripted person expected (says which page it was)."""


def fetch_site(initiator: str | None, url: str) -> str:
    """``Sec-Fetch-Site`` for a navigation to ``url`` started by ``initiator`` (None: the
    address bar). Sites compared as scheme + host (enough for loopback hosts and names
    without a public suffix)."""
    if initiator is None:
        return "none"
    if origin_of(initiator) == origin_of(url):
        return "same-origin"
    a, b = urlsplit(initiator), urlsplit(url)
    if a.scheme == b.scheme and (a.hostname or "").lower() == (b.hostname or "").lower():
        return "same-site"
    return "cross-site"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)
    has_password: bool = False


class _PageParser(HTMLParser):
    """Just enough HTML: forms with their inputs and buttons, meta tags, the title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False
        self._form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag == "meta":
            key = a.get("http-equiv") or a.get("name")
            if key:
                self.meta[key.lower()] = a.get("content", "")
        elif tag == "title":
            self._in_title = True
        elif self._form is not None and tag in ("input", "button"):
            kind = a.get("type", "submit" if tag == "button" else "text").lower()
            name = a.get("name")
            if kind == "submit":
                if name:
                    self._form.buttons.append((name, a.get("value", "")))
            elif name:
                self._form.fields[name] = a.get("value", "")
                self._form.has_password |= kind == "password"

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


@dataclass
class Page:
    url: str
    response: httpx.Response
    forms: list[Form]
    meta: dict[str, str]
    title: str

    @property
    def kind(self) -> str | None:
        """The dev server's own page name (login, consent, error, redirect, home)."""
        return self.meta.get("speckle-dev-page")

    @classmethod
    def read(cls, url: str, response: httpx.Response) -> Page:
        parser = _PageParser()
        if "html" in response.headers.get("content-type", ""):
            parser.feed(response.text)
        return cls(url, response, parser.forms, parser.meta, parser.title.strip())


class BrowserPlayer:
    """Drive sign-in pages like a person with a browser (no JavaScript)."""

    def __init__(
        self,
        *,
        headers_by_origin: Mapping[str, Mapping[str, str]] | None = None,
        honour_refresh_delay: bool = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(follow_redirects=False, timeout=timeout, transport=transport)
        self._headers: dict[str, dict[str, str]] = {}
        for origin, headers in (headers_by_origin or {}).items():
            self.set_headers_for(origin, headers)
        self.honour_refresh_delay = honour_refresh_delay
        self.history: list[str] = []
        self.page: Page | None = None
        self.stopped_at: str | None = None

    # -- plumbing -----------------------------------------------------------------------

    @property
    def cookies(self) -> httpx.Cookies:
        return self._client.cookies

    def set_headers_for(self, origin_or_url: str, headers: Mapping[str, str]) -> None:
        """Send ``headers`` with every request to that origin, and to no other."""
        self._headers[origin_of(origin_or_url)] = dict(headers)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> BrowserPlayer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- navigation ---------------------------------------------------------------------

    def open(
        self,
        url: str,
        *,
        method: str = "GET",
        data: Mapping[str, str] | None = None,
        stop_at_prefix: str | None = None,
        stop_when: StopRule | None = None,
        max_steps: int = 20,
        initiated_by: str | None = None,
    ) -> Page | None:
        """Navigate like the address bar (or a form post) and follow redirects hop by hop.

        ``initiated_by``: the page whose link or form started the navigation (None: the
        address bar); it decides the ``Sec-Fetch-Site`` header, as in a browser.

        Returns the page the browser settles on, or None when it stopped before fetching
        a URL starting with ``stop_at_prefix`` (or one ``stop_when`` accepts); then
        ``stopped_at`` holds that URL.
        """
        stop = stop_when or _prefix_rule(stop_at_prefix)
        self.stopped_at = None
        initiator = initiated_by
        for _ in range(max_steps):
            self.history.append(url)
            if stop is not None and stop(url):
                self.stopped_at = url
                return None
            # Browsers say where every navigation comes from (servers refuse cross-site
            # requests by it): "none" for the address bar, else the initiator's relation.
            headers = {"Sec-Fetch-Site": fetch_site(initiator, url)}
            headers.update(self._headers.get(origin_of(url), {}))
            response = self._client.request(method, url, data=data, headers=headers)
            initiator = url
            next_url = self._next_hop(url, response)
            if next_url is None:
                self.page = Page.read(url, response)
                refresh = self.meta_refresh(self.page)
                if refresh is None:
                    return self.page
                delay, next_url = refresh
                if self.honour_refresh_delay and delay > 0:
                    time.sleep(delay)
            if response.status_code not in (307, 308):
                method, data = "GET", None
            url = next_url
        raise PlayerError(f"more than {max_steps} redirects, last at {url}")

    @staticmethod
    def _next_hop(url: str, response: httpx.Response) -> str | None:
        location = response.headers.get("location")
        if response.status_code in _REDIRECTS and location:
            return urljoin(url, str(location))
        return None

    @staticmethod
    def meta_refresh(page: Page) -> tuple[float, str] | None:
        match = _REFRESH.match(page.meta.get("refresh", ""))
        if match is None or not match.group(2):
            return None
        target = unescape(match.group(2).strip().strip("'\""))
        return float(match.group(1)), urljoin(page.url, target)

    # -- forms ----------------------------------------------------------------------------

    def current_page(self) -> Page:
        if self.page is None:
            raise PlayerError("no page is open")
        return self.page

    def submit(
        self,
        form: Form,
        values: Mapping[str, str] | None = None,
        *,
        button: tuple[str, str] | None = None,
        stop_at_prefix: str | None = None,
        stop_when: StopRule | None = None,
    ) -> Page | None:
        page = self.current_page()
        fields = {**form.fields, **(values or {})}
        if button is not None:
            fields[button[0]] = button[1]
        target = urljoin(page.url, form.action or page.url)
        stop = stop_when or _prefix_rule(stop_at_prefix)
        if form.method == "post":
            return self.open(
                target, method="POST", data=fields, stop_when=stop, initiated_by=page.url
            )
        query = httpx.QueryParams(fields)
        return self.open(f"{target.split('?')[0]}?{query}", stop_when=stop, initiated_by=page.url)

    def log_in(
        self,
        email: str,
        password: str,
        *,
        stop_at_prefix: str | None = None,
        stop_when: StopRule | None = None,
    ) -> Page | None:
        """Fill and send the login form of the current page."""
        page = self.current_page()
        form = next((f for f in page.forms if f.has_password), None)
        if form is None:
            raise PlayerError(f"no login form on {page.title!r} ({page.url})")
        values = {"email": email, "password": password}
        return self.submit(form, values, stop_at_prefix=stop_at_prefix, stop_when=stop_when)

    def consent(
        self,
        action: str = "allow",
        *,
        stop_at_prefix: str | None = None,
        stop_when: StopRule | None = None,
    ) -> Page | None:
        """Press Authorize ("allow") or Deny ("deny") on the current consent page."""
        page = self.current_page()
        for form in page.forms:
            if ("action", action) in form.buttons:
                return self.submit(
                    form,
                    button=("action", action),
                    stop_at_prefix=stop_at_prefix,
                    stop_when=stop_when,
                )
        raise PlayerError(f"no {action!r} button on {page.title!r} ({page.url})")

    def sign_in_and_consent(
        self,
        verify_url: str,
        email: str,
        password: str,
        action: str = "allow",
        stop_at_prefix: str | None = None,
    ) -> str:
        """Open the authorize URL, log in if asked, answer consent; return where it ends.

        The return value is the URL the browser is sent to (the app's redirect URL with
        ``access_code=`` or ``denied=true``), not fetched. The browser stops before the
        first URL starting with ``stop_at_prefix``, or by default before the first URL
        outside the Speckle origin.
        """
        if stop_at_prefix is not None:
            stop = _prefix_rule(stop_at_prefix)
        else:
            speckle = origin_of(verify_url)

            def stop(url: str) -> bool:
                return origin_of(url) != speckle

        page = self.open(verify_url, stop_when=stop)
        for _ in range(4):
            if page is None:
                assert self.stopped_at is not None
                return self.stopped_at
            if any(f.has_password for f in page.forms):
                page = self.log_in(email, password, stop_when=stop)
            elif any(("action", action) in f.buttons for f in page.forms):
                page = self.consent(action, stop_when=stop)
            else:
                break
        shown = f"{page.title!r} ({page.url}, HTTP {page.response.status_code})" if page else "?"
        raise PlayerError(f"sign-in did not reach a redirect; stuck on {shown}")


def _prefix_rule(prefix: str | None) -> StopRule | None:
    if prefix is None:
        return None
    return lambda url: url.startswith(prefix)
