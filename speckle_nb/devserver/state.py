"""The dev server's memory: users, apps, access codes, tokens, projects. No HTTP here.

Every rule that decides an answer of ``/auth/token``, ``/auth/accesscode`` or
``/auth/logout`` lives here, in the order the protocol file (§1.3, §2.2, §3) gives,
and fails with an exception (``messages.py``) whose ``message`` is the server's exact
text. The HTTP layer only picks the status code and the body shape.

One lock guards everything: tests change the state from their own thread while the
server thread reads it.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

from .catalog import ALL_SCOPES, BUILT_IN_APPS, ORIGIN, in_server_order
from .messages import (
    MSG_AC_BAD_TOKEN,
    MSG_AC_NO_APP,
    MSG_AC_NO_APP_ID,
    MSG_AC_NO_CHALLENGE,
    MSG_AC_NO_TOKEN,
    MSG_BAD_APP_SECRET,
    MSG_CHALLENGE_MISMATCH,
    MSG_CODE_EXPIRED,
    MSG_CODE_NOT_FOUND,
    MSG_CODE_WRONG_APP,
    MSG_INTERNAL,
    MSG_INVALID_APP,
    MSG_INVALID_REQUEST,
    MSG_INVALID_TOKEN,
    MSG_LOGOUT_FAILED,
    MSG_NO_ACCESS_CODE,
    MSG_NO_APP_ID,
    MSG_NO_APP_SECRET,
    MSG_NO_CHALLENGE,
    MSG_NO_REFRESH_TOKEN,
    MSG_NO_VERIFIER,
    MSG_REFRESH_EXPIRED,
    MSG_VERIFIER_MISMATCH,
    AccessCodeRequestError,
    DevStateError,
    InternalServerError,
    LogoutError,
    RegistrationError,
    TokenRequestError,
    missing_scope_message,
)
from .models import (
    MAX_CHALLENGE_CHARS,
    MAX_REDIRECT_URL_CHARS,
    TOKEN_LIFESPAN_MS,
    AccessCode,
    ApiToken,
    App,
    Clock,
    FakeClock,
    Project,
    ProjectFilter,
    ProjectPage,
    RefreshToken,
    TokenInfo,
    TokenPair,
    User,
    Workspace,
    digest,
    iso_ms,
    new_hex,
    s256_challenge,
    same_secret,
    wall_clock_ms,
)
from .urls import with_access_code

# Callers may import the model and error types from here, next to DevState.
__all__ = [
    "AccessCodeRequestError",
    "App",
    "DevState",
    "DevStateError",
    "FakeClock",
    "InternalServerError",
    "LogoutError",
    "Project",
    "ProjectFilter",
    "RegistrationError",
    "TokenInfo",
    "TokenPair",
    "TokenRequestError",
    "User",
    "Workspace",
    "body_text",
]

DEMO_EMAIL = "demo@example.org"
DEMO_PASSWORD = "speckle-demo"
SEED_USERS: tuple[tuple[str, str, str, str | None], ...] = (
    (DEMO_EMAIL, DEMO_PASSWORD, "Demo User", "Speckle Dev"),
    ("alice@example.org", "alice-pass", "Alice Archer", "Archer Architects"),
    ("bob@example.org", "bob-pass", "Bob Builder", "Builder & Co"),
)
DEMO_PROJECT_COUNT = 60
SSO_DEMO_SLUG = "acme-sso"
# Projects are dated from a fixed moment so that pages and cursors are reproducible.
_SEED_EPOCH_MS = 1_767_225_600_000.0  # 2026-01-01T00:00:00.000Z


class DevState:
    """An in-memory Speckle server.

    ``now_ms`` may be swapped at any time (``use_fake_clock``) to expire codes and
    tokens without waiting.
    """

    def __init__(self, *, now_ms: Clock | None = None, seed: bool = True) -> None:
        self.now_ms: Clock = now_ms or wall_clock_ms
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._apps: dict[str, App] = {}
        self._codes: dict[str, AccessCode] = {}
        self._tokens: dict[str, ApiToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._projects: dict[str, Project] = {}
        self._workspaces: dict[str, Workspace] = {}
        self.logout_calls = 0
        """How many ``POST /auth/logout`` requests arrived (refused ones included)."""
        self.server_url = "http://localhost"
        self._seed_builtin_apps()
        if seed:
            self._seed_users_and_projects()

    # -- clock ---------------------------------------------------------------------

    def use_fake_clock(self, start_ms: float | None = None) -> FakeClock:
        """Freeze time (at the current time by default) and return the clock to move it."""
        clock = FakeClock(self.now_ms() if start_ms is None else start_ms)
        self.now_ms = clock
        return clock

    # -- seeding ---------------------------------------------------------------------

    def _seed_builtin_apps(self) -> None:
        for spec in BUILT_IN_APPS:
            self._apps[spec.id] = App(
                id=spec.id,
                name=spec.name,
                secret=spec.id,
                redirect_url=spec.redirect_url.replace(ORIGIN, self.server_url),
                scopes=spec.scopes,
                trusted=spec.trusted,
                public=True,
                description=spec.description,
                created_ms=_SEED_EPOCH_MS,
            )

    def _seed_users_and_projects(self) -> None:
        for email, password, name, company in SEED_USERS:
            self.add_user(email, password, name, company=company)
        demo = self.demo_user
        visibilities = ("PRIVATE", "PUBLIC", "UNLISTED")
        for i in range(DEMO_PROJECT_COUNT):
            self.add_project(
                demo.id,
                f"Demo project {i + 1:02d}",
                description=f"Seeded project number {i + 1}.",
                visibility=visibilities[i % 3],
                allow_public_comments=i % 2 == 0,
                role="stream:owner" if i % 4 else "stream:contributor",
                created_ms=_SEED_EPOCH_MS + i * 3_600_000,
                source_apps=("Python",) if i % 5 == 0 else (),
            )
        for email in ("alice@example.org", "bob@example.org"):
            user = self.user_by_email(email)
            assert user is not None
            for i in range(3):
                self.add_project(
                    user.id,
                    f"{user.name.split()[0]}'s project {i + 1}",
                    created_ms=_SEED_EPOCH_MS + i * 3_600_000,
                )

    def set_server_url(self, url: str) -> None:
        """Tell the state where it is served: the web app's and explorer's redirects use it."""
        with self._lock:
            self.server_url = url.rstrip("/")
            for spec in BUILT_IN_APPS:
                app = self._apps.get(spec.id)
                if app is not None and ORIGIN in spec.redirect_url:
                    app.redirect_url = spec.redirect_url.replace(ORIGIN, self.server_url)

    # -- users ---------------------------------------------------------------------

    def add_user(
        self,
        email: str,
        password: str,
        name: str,
        *,
        role: str = "server:user",
        company: str | None = None,
        avatar: str | None = None,
        bio: str | None = None,
        verified: bool = True,
        user_id: str | None = None,
    ) -> User:
        with self._lock:
            if self.user_by_email(email) is not None:
                raise ValueError(f"a user with the email {email!r} already exists")
            salt = new_hex(16)
            user = User(
                id=user_id or new_hex(10),
                email=email.lower(),
                name=name,
                password_digest=digest(salt + password),
                password_salt=salt,
                role=role,
                company=company,
                avatar=avatar,
                bio=bio,
                verified=verified,
                created_ms=self.now_ms(),
            )
            self._users[user.id] = user
            return user

    def user(self, user_id: str) -> User | None:
        with self._lock:
            return self._users.get(user_id)

    def user_by_email(self, email: str) -> User | None:
        wanted = email.strip().lower()
        with self._lock:
            return next((u for u in self._users.values() if u.email == wanted), None)

    @property
    def demo_user(self) -> User:
        user = self.user_by_email(DEMO_EMAIL)
        if user is None:
            raise LookupError("this state was created without the seeded demo user")
        return user

    def authenticate(self, email: str, password: str) -> User | None:
        user = self.user_by_email(email)
        if user is None:
            return None
        return (
            user
            if same_secret(digest(user.password_salt + password), user.password_digest)
            else None
        )

    # -- apps ------------------------------------------------------------------------

    def register_app(
        self,
        name: str,
        redirect_url: str,
        scopes: Sequence[str],
        *,
        trusted: bool = False,
        app_id: str | None = None,
        secret: str | None = None,
        description: str = "",
        author_id: str | None = None,
        public: bool = False,
    ) -> App:
        """Register an app the way ``appCreate`` would (plus ``trusted`` for test setups).

        Raises ``RegistrationError`` where the real server fails: a redirect URL over
        100 characters (its column is a varchar(100)) or no known scope left.
        """
        if len(redirect_url) > MAX_REDIRECT_URL_CHARS:
            raise RegistrationError(
                f"The redirect URL is {len(redirect_url)} characters long; a Speckle server "
                f"stores at most {MAX_REDIRECT_URL_CHARS} (its insert fails). Use a shorter URL."
            )
        kept = in_server_order(list(scopes))
        if not kept:
            raise RegistrationError("Cannot create an app with no scopes.")
        with self._lock:
            new_id = app_id or new_hex(10)
            if new_id in self._apps:
                raise RegistrationError(f"An app with the id {new_id!r} already exists.")
            app = App(
                id=new_id,
                name=name,
                secret=secret or new_hex(10),
                redirect_url=redirect_url,
                scopes=kept,
                trusted=trusted,
                public=public,
                description=description,
                author_id=author_id,
                created_ms=self.now_ms(),
            )
            self._apps[app.id] = app
            return app

    def app(self, app_id: str) -> App | None:
        with self._lock:
            return self._apps.get(app_id)

    def delete_app(self, app_id: str) -> None:
        with self._lock:
            self._apps.pop(app_id, None)

    # -- tokens ----------------------------------------------------------------------

    def create_token(
        self,
        user_id: str,
        scopes: Iterable[str],
        lifespan_ms: float | None = None,
        *,
        name: str = "dev-token",
        app_id: str | None = None,
    ) -> str:
        """Mint a PAT (or, with ``app_id``, an app token): 10-hex id + 32-hex secret."""
        with self._lock:
            if user_id not in self._users:
                raise LookupError("no such user")
            token_id, secret = new_hex(10), new_hex(32)
            self._tokens[token_id] = ApiToken(
                id=token_id,
                digest=digest(secret),
                user_id=user_id,
                scopes=tuple(scopes),
                name=name,
                app_id=app_id,
                created_ms=self.now_ms(),
                lifespan_ms=TOKEN_LIFESPAN_MS if lifespan_ms is None else lifespan_ms,
                last_chars=secret[-6:],
            )
            return token_id + secret

    def validate_token(self, token: str) -> TokenInfo | None:
        """§5 validation: id lookup, expiry (the row is deleted), secret check."""
        with self._lock:
            row = self._tokens.get(token[:10])
            if row is None:
                return None
            now = self.now_ms()
            if now - row.created_ms > row.lifespan_ms:
                del self._tokens[row.id]
                return None
            # Characters after index 42 are ignored, as bcrypt.compare([10:42]) does.
            if not same_secret(digest(token[10:42]), row.digest):
                return None
            user = self._users.get(row.user_id)
            if user is None:
                return None
            row.last_used_ms = now
            return TokenInfo(
                token_id=row.id,
                user_id=row.user_id,
                scopes=row.scopes,
                role=user.role,
                app_id=row.app_id,
                name=row.name,
            )

    def tokens_of(self, user_id: str) -> list[ApiToken]:
        with self._lock:
            return [t for t in self._tokens.values() if t.user_id == user_id]

    def revoke_user_token(self, token_or_id: str, user_id: str) -> None:
        """``apiTokenRevoke``: only the caller's own tokens; raises LookupError otherwise."""
        with self._lock:
            row = self._tokens.get(token_or_id[:10])
            if row is None or row.user_id != user_id:
                raise LookupError("Did not revoke token")
            del self._tokens[row.id]

    def create_session_token(self, user_id: str) -> str:
        """The web app's own token (app ``spklwebapp``, every scope), held by the page cookie."""
        return self.create_token(
            user_id, ALL_SCOPES, name="Speckle Web Manager-token", app_id="spklwebapp"
        )

    # -- access codes ------------------------------------------------------------------

    def mint_access_code(self, app_id: str, user_id: str, challenge: str) -> str:
        """Store a 42-hex code bound to app, user and challenge (no checks but the column's)."""
        if len(challenge) > MAX_CHALLENGE_CHARS:
            # The real insert fails on the varchar(255) column and the route answers 500.
            raise InternalServerError(MSG_INTERNAL)
        with self._lock:
            code = new_hex(42)
            self._codes[code] = AccessCode(
                app_id=app_id, user_id=user_id, challenge=challenge, created_ms=self.now_ms()
            )
            return code

    def request_access_code(
        self, app_id: str | None, challenge: str | None, user_token: str | None
    ) -> str:
        """``GET /auth/accesscode`` (§1.3): returns the redirect URL with the new code.

        Raises ``AccessCodeRequestError`` (400) or ``InternalServerError`` (500).
        """
        if not app_id:
            raise AccessCodeRequestError(MSG_AC_NO_APP_ID)
        app = self.app(app_id)
        if app is None:
            raise AccessCodeRequestError(MSG_AC_NO_APP)
        if not challenge:
            raise AccessCodeRequestError(MSG_AC_NO_CHALLENGE)
        if not user_token:
            raise AccessCodeRequestError(MSG_AC_NO_TOKEN)
        info = self.validate_token(user_token)
        if info is None:
            raise AccessCodeRequestError(MSG_AC_BAD_TOKEN)
        if not info.has_scope("tokens:write"):
            raise AccessCodeRequestError(missing_scope_message("tokens:write"))
        code = self.mint_access_code(app.id, info.user_id, challenge)
        return with_access_code(app.redirect_url, code)

    def pending_codes(self) -> int:
        """How many access codes are stored (burned ones are gone)."""
        with self._lock:
            return len(self._codes)

    def _take_code(self, app_id: str, access_code: str) -> AccessCode:
        """Rows 6–7 of §2.2, then burn the code: only a wrong app id leaves it alive."""
        code = self._codes.get(access_code)
        if code is None:
            raise TokenRequestError(MSG_CODE_NOT_FOUND)
        if code.app_id != app_id:
            raise TokenRequestError(MSG_CODE_WRONG_APP)
        del self._codes[access_code]
        if self.now_ms() - code.created_ms > code.lifespan_ms:
            raise TokenRequestError(MSG_CODE_EXPIRED)
        return code

    # -- /auth/token ---------------------------------------------------------------------

    def token_request(self, body: Mapping[str, object]) -> TokenPair:
        """``POST /auth/token`` with its parsed body: §2.2 rows 1–3, then exchange or refresh."""
        app_id, app_secret = body_text(body.get("appId")), body_text(body.get("appSecret"))
        if "refreshToken" in body:
            return self.refresh(app_id, app_secret, body_text(body.get("refreshToken")))
        return self.exchange(
            app_id, app_secret, body_text(body.get("accessCode")), body_text(body.get("challenge"))
        )

    def exchange(
        self,
        app_id: str | None,
        app_secret: str | None,
        access_code: str | None,
        challenge: str | None,
    ) -> TokenPair:
        """The plain-challenge code exchange, §2.2 rows 1, 2, 4–11 in order."""
        if not app_id:
            raise TokenRequestError(MSG_NO_APP_ID)
        if not app_secret:
            raise TokenRequestError(MSG_NO_APP_SECRET)
        if not access_code:
            raise TokenRequestError(MSG_NO_ACCESS_CODE)
        if not challenge:
            raise TokenRequestError(MSG_NO_CHALLENGE)
        with self._lock:
            code = self._take_code(app_id, access_code)
            if code.challenge != challenge:
                raise TokenRequestError(MSG_CHALLENGE_MISMATCH)
            app = self._apps.get(app_id)
            if app is None:
                raise TokenRequestError(MSG_INVALID_APP)
            if not same_secret(app.secret, app_secret):
                raise TokenRequestError(MSG_BAD_APP_SECRET)
            return self._issue_app_tokens(app, code.user_id)

    def exchange_s256(
        self, app_id: str | None, access_code: str | None, code_verifier: str | None
    ) -> TokenPair:
        """The unreleased ``POST /oauth/token`` (§2.1): S256 verifier, no app secret."""
        if not app_id:
            raise TokenRequestError(MSG_NO_APP_ID)
        if not access_code:
            raise TokenRequestError(MSG_NO_ACCESS_CODE)
        if not code_verifier:
            raise TokenRequestError(MSG_NO_VERIFIER)
        with self._lock:
            code = self._take_code(app_id, access_code)
            if not same_secret(code.challenge, s256_challenge(code_verifier)):
                raise TokenRequestError(MSG_VERIFIER_MISMATCH)
            app = self._apps.get(app_id)
            if app is None:
                raise TokenRequestError(MSG_INVALID_APP)
            return self._issue_app_tokens(app, code.user_id)

    def refresh(
        self, app_id: str | None, app_secret: str | None, refresh_token: str | None
    ) -> TokenPair:
        """§3.1: a new token pair; the old refresh token stays valid (no rotation)."""
        if not app_id:
            raise TokenRequestError(MSG_NO_APP_ID)
        if not app_secret:
            raise TokenRequestError(MSG_NO_APP_SECRET)
        if not refresh_token:
            raise TokenRequestError(MSG_NO_REFRESH_TOKEN)
        with self._lock:
            row = self._refresh.get(refresh_token[:10])
            if row is None:
                raise TokenRequestError(MSG_INVALID_REQUEST)
            if row.app_id != app_id:
                raise TokenRequestError(MSG_INVALID_REQUEST)
            if self.now_ms() - row.created_ms > row.lifespan_ms:
                del self._refresh[row.id]
                raise TokenRequestError(MSG_REFRESH_EXPIRED)
            if not same_secret(digest(refresh_token[10:42]), row.digest):
                raise TokenRequestError(MSG_INVALID_TOKEN)
            app = self._apps.get(app_id)
            if app is None or not same_secret(app.secret, app_secret):
                raise TokenRequestError(MSG_INVALID_REQUEST)
            return self._issue_app_tokens(app, row.user_id)

    def refresh_token_valid(self, refresh_token: str) -> bool:
        """Would this refresh token still mint a new pair? (Logout or revocation say no.)

        For tests that check a client revoked the pair a refresh replaced: the real
        server keeps the old refresh token alive until someone revokes it (§3.1).
        """
        with self._lock:
            row = self._refresh.get(refresh_token[:10])
            return (
                row is not None
                and self.now_ms() - row.created_ms <= row.lifespan_ms
                and same_secret(digest(refresh_token[10:42]), row.digest)
            )

    def _issue_app_tokens(self, app: App, user_id: str) -> TokenPair:
        token = self.create_token(user_id, app.scopes, name=f"{app.name}-token", app_id=app.id)
        refresh_id, refresh_secret = new_hex(10), new_hex(32)
        self._refresh[refresh_id] = RefreshToken(
            id=refresh_id,
            digest=digest(refresh_secret),
            app_id=app.id,
            user_id=user_id,
            created_ms=self.now_ms(),
        )
        return TokenPair(token=token, refresh_token=refresh_id + refresh_secret)

    # -- /auth/logout ----------------------------------------------------------------------

    def logout(self, token: object, refresh_token: object = None) -> None:
        """§3.2: delete the token by its id (any kind of token), then the refresh token.

        Takes the body's raw JSON values: the server slices them as strings, so a
        truthy non-string refresh token fails (400) after the token is already gone.
        """
        with self._lock:
            self.logout_calls += 1
            if not token or not isinstance(token, str):
                raise LogoutError(MSG_LOGOUT_FAILED)
            if self._tokens.pop(token[:10], None) is None:
                raise LogoutError(MSG_LOGOUT_FAILED)
            if isinstance(refresh_token, str):
                if refresh_token:
                    self._refresh.pop(refresh_token[:10], None)
            elif refresh_token:
                raise LogoutError(MSG_LOGOUT_FAILED)

    # -- projects ----------------------------------------------------------------------------

    def add_project(
        self,
        owner_id: str,
        name: str,
        *,
        description: str | None = None,
        visibility: str = "PRIVATE",
        allow_public_comments: bool = False,
        role: str = "stream:owner",
        created_ms: float | None = None,
        source_apps: Sequence[str] = (),
        workspace_id: str | None = None,
    ) -> Project:
        with self._lock:
            # Whole milliseconds, like Date.now(), so that cursors round-trip exactly.
            when = float(int(self.now_ms() if created_ms is None else created_ms))
            project = Project(
                id=new_hex(10),
                owner_id=owner_id,
                name=name,
                description=description,
                visibility=visibility,
                allow_public_comments=allow_public_comments,
                role=role,
                created_ms=when,
                updated_ms=when,
                source_apps=tuple(source_apps),
                workspace_id=workspace_id,
            )
            self._projects[project.id] = project
            return project

    def add_workspace(self, name: str, slug: str, *, sso: bool = False) -> Workspace:
        """A workspace; give its projects ``workspace_id=workspace.id``."""
        with self._lock:
            workspace = Workspace(id=new_hex(10), slug=slug, name=name, sso=sso)
            self._workspaces[workspace.id] = workspace
            return workspace

    def seed_sso_workspace(self) -> Workspace:
        """The demo's workspace with SSO: "Acme (SSO)", slug ``acme-sso``, and two of the
        demo user's projects in it. Pair with ``DevOptions.sso_session_lapsed``."""
        workspace = self.add_workspace("Acme (SSO)", SSO_DEMO_SLUG, sso=True)
        for i in range(2):
            self.add_project(
                self.demo_user.id,
                f"Acme SSO project {i + 1}",
                workspace_id=workspace.id,
                visibility="WORKSPACE",
                created_ms=_SEED_EPOCH_MS - (i + 1) * 3_600_000,
            )
        return workspace

    def workspace(self, workspace_id: str | None) -> Workspace | None:
        with self._lock:
            return self._workspaces.get(workspace_id) if workspace_id else None

    def has_workspaces(self) -> bool:
        with self._lock:
            return bool(self._workspaces)

    def project(self, project_id: str) -> Project | None:
        with self._lock:
            return self._projects.get(project_id)

    def sso_workspaces_of(self, user_id: str) -> list[Workspace]:
        """Workspaces with SSO in which ``user_id`` has projects (their "member" ones)."""
        with self._lock:
            ids = {p.workspace_id for p in self._projects.values() if p.owner_id == user_id}
            return [w for w in self._workspaces.values() if w.id in ids and w.sso]

    def projects_page(
        self,
        user_id: str,
        limit: int,
        cursor: str | None = None,
        project_filter: ProjectFilter | None = None,
        *,
        hide_workspaces: frozenset[str] = frozenset(),
    ) -> ProjectPage:
        """Newest first by ``updatedAt``; ``cursor`` names the last item already seen.

        Projects of the workspaces in ``hide_workspaces`` are left out altogether (a
        lapsed SSO session hides them from lists, count included).
        """
        wanted = project_filter or ProjectFilter()
        with self._lock:
            rows = [
                p
                for p in self._projects.values()
                if p.owner_id == user_id and p.workspace_id not in hide_workspaces
            ]
        rows = [p for p in rows if _matches(p, wanted)]
        rows.sort(key=lambda p: (p.updated_ms, p.id), reverse=True)
        start = 0
        if cursor:
            after = _decode_cursor(cursor)
            start = next((i for i, p in enumerate(rows) if (p.updated_ms, p.id) < after), len(rows))
        page = rows[start : start + max(limit, 0)]
        more = start + len(page) < len(rows)
        next_cursor = _encode_cursor(page[-1]) if page and more else None
        return ProjectPage(total_count=len(rows), items=tuple(page), cursor=next_cursor)


def body_text(value: object) -> str | None:
    """A body field as the server's comparisons see it (JSON scalars as their text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        # JavaScript's falsy scalars (false, 0) count as "missing".
        if not value:
            return None
        return "true" if value is True else str(value)
    # Objects and arrays are truthy in JavaScript and equal to no stored string.
    return repr(value)


def _matches(project: Project, wanted: ProjectFilter) -> bool:
    if wanted.search and wanted.search.lower() not in project.name.lower():
        return False
    if wanted.only_with_roles and project.role not in wanted.only_with_roles:
        return False
    if wanted.workspace_id and project.workspace_id != wanted.workspace_id:
        return False
    return not (wanted.personal_only and project.workspace_id is not None)


def _encode_cursor(project: Project) -> str:
    raw = f"{iso_ms(project.updated_ms)}|{project.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        stamp, project_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except (ValueError, binascii.Error, UnicodeDecodeError) as err:
        raise ValueError("Invalid cursor") from err
    return (moment.timestamp() * 1000.0, project_id)
