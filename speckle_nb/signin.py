"""``sign_in()``: pick how to sign in, put one panel on screen, and finish the sign-in.

    panel = speckle_nb.sign_in()             # click "Sign in to Speckle"; returns at once
    speckle_nb.sign_in(wait=True)            # blocks the cell until signed in ("Run All")

``modes.py`` picks the way (the Jupyter server's extension, the kernel's own app over a
listener or a pasted address, Speckle's built-in ``connectrV3`` app the same two ways, or a
personal access token) and says why; ``methods.py`` holds each way's steps. This module only
drives the panel with the chosen way: its flows, its waits, the view's messages
(``view_messages.py`` answers each; ``blocking.py`` blocks the cell for ``wait=True``).

In every mode the panel's token field works too, and the kernel never puts a token, a
refresh token, an access code, a pasted address or a challenge in a synced trait.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .blocking import wait_blocking
from .credentials import Credentials, normalize_server_url
from .errors import (
    ConfigurationError,
    PortInUseError,
    SignInCancelledError,
    SignInError,
    SpeckleError,
    WorkspaceSsoError,
)
from .methods import Flow, Mode
from .modes import ModeChoice, choose, choose_mode
from .session import Session, current_session, env_server_url
from .sources import Sources, recall_checked, server_choices

if TYPE_CHECKING:
    from .widget import SignInPanel

__all__ = ["DEFAULT_TIMEOUT", "Mode", "ModeChoice", "SignInController", "sign_in"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0


# ---------------------------------------------------------------------- the controller


class SignInController:
    """Runs the sign-ins of one panel: its flows, its waits, the view's messages."""

    def __init__(
        self,
        panel: SignInPanel,
        choice: ModeChoice,
        *,
        server_url: str | None,
        timeout: float,
        session: Session,
    ) -> None:
        self.panel = panel
        self.choice = choice
        self.server_url = server_url
        self.timeout = timeout
        self.session = session
        self._lock = threading.RLock()
        self._flow: Flow | None = None
        self._sources = Sources(session)  # the switcher's tokens stay in there
        panel.update(**self._apply_choice(choice))
        panel.connect(self.handle, on_close=self.dispose)
        panel.observe(self._on_remember, names=["remember"])
        session.add_listener(self)

    def dispose(self) -> None:
        """The panel was closed: end its sign-in, release its way, stop listening."""
        self.session.remove_listener(self)
        with self._lock:
            flow, self._flow = self._flow, None
        if flow is not None and not flow.done:
            self.stop_flow(flow)
        self.choice.method.close()

    # ------------------------------------------------------------------ mode

    def _apply_choice(self, choice: ModeChoice) -> dict[str, Any]:
        """Switch to ``choice``; returns the traits that show it (set them with the flow's)."""
        old = getattr(self, "choice", None)
        self.choice = choice
        if old is not None and old.method is not choice.method:
            old.method.close()  # (an extension's client stays open for its running waits)
        return {
            "mode": choice.mode,
            "mode_reason": choice.reason,
            "details": list(choice.details),
            "paste_too": choice.paste_too,
            "builtin_app": choice.builtin,
            "redirect_url_hint": choice.redirect_url or "",
            "server_choices": server_choices(self.session, self.panel_server()),
        }

    def rechoose(self, message: str = "", **context: Any) -> None:
        """Choose the way again with ``context`` changed (the page found no extension, a
        port was busy, the user picked another server), and prepare its first flow."""
        ctx = self.choice.context
        if ctx is None:
            return
        with self._lock:
            flow, self._flow = self._flow, None
        if flow is not None and not flow.done:
            self.stop_flow(flow)
        ctx = dataclasses.replace(ctx, **context)
        choice = choose(ctx)
        if choice.mode != "extension" and ctx.pickup is not None:
            choice = dataclasses.replace(choice, context=dataclasses.replace(ctx, pickup=None))
        self.prepare(message, **self._apply_choice(choice))

    def panel_server(self) -> str | None:
        """The Speckle server this panel signs in to, as far as the kernel knows."""
        if self.server_url:
            return self.server_url
        app = self.choice.app if hasattr(self, "choice") else None
        return app.server_url if app else None

    @property
    def mode(self) -> Mode:
        return self.choice.mode

    # ------------------------------------------------------------------ flows

    def prepare(self, message: str = "", **traits: Any) -> None:
        """Make a fresh flow the panel's button starts (no waiting yet), idle state.

        A kernel app that cannot finish a sign-in here (no secret for a server that needs
        one) gives way to the next way of the table, saying why.
        """
        try:
            flow_traits = self._new_flow()
        except ConfigurationError as exc:
            ctx = self.choice.context
            if self.mode not in ("paste", "loopback") or self.choice.builtin or ctx is None:
                raise
            problem = f"the kernel's app cannot finish a sign-in here ({str(exc).rstrip('.')})"
            traits.update(
                self._apply_choice(choose(dataclasses.replace(ctx, kernel_app_problem=problem)))
            )
            flow_traits = self._new_flow()
        self.panel.set_idle(message, **flow_traits, **traits)
        self.publish()

    def _new_flow(self) -> dict[str, Any]:
        """A fresh flow, replacing (and cancelling) the current one; returns its traits."""
        with self._lock:
            old, self._flow = self._flow, None
        if old is not None and not old.done:
            self.stop_flow(old)
        flow, traits = self.choice.method.start(self.server_url)
        with self._lock:
            self._flow = flow
        return traits

    def publish(self) -> None:
        """Send the current fallback flow's authorize URL to the views (never a trait)."""
        flow = self._flow
        if flow is not None and flow.authorize_url and not flow.done:
            self.panel.send_private(
                {"type": "authorize-url", "flow": flow.id, "url": flow.authorize_url}
            )

    def live_flow(self, request: Any = None) -> Flow | None:
        """The live flow, if ``request`` (a message's) names it or names nothing."""
        flow = self._flow
        if flow is None or flow.done:
            return None
        if request and request != flow.id:
            return None
        return flow

    def stop_flow(self, flow: Flow) -> None:
        """End ``flow`` here and wherever it lives (its waiter sees the event)."""
        self.choice.method.stop(flow)

    # ------------------------------------------------------------------ waiting

    def wait_flow(self, flow: Flow) -> Credentials:
        """Block until ``flow`` ends; returns the credentials or raises ``SpeckleError``."""
        return self.choice.method.wait(flow, timeout=self.timeout)

    def start_background(self) -> None:
        """Wait for the current flow on a daemon thread (extension and loopback modes)."""
        with self._lock:
            flow = self.live_flow()
            if flow is None or flow.waiting or self.mode not in ("extension", "loopback"):
                return
            flow.waiter = threading.Thread(
                target=self._wait_and_finish, args=(flow,), name="speckle-nb sign-in", daemon=True
            )
            flow.waiter.start()

    def _wait_and_finish(self, flow: Flow) -> None:
        try:
            creds = self.wait_flow(flow)
        except PortInUseError as exc:
            if not self.listener_busy(flow, exc):
                self.finish(flow, error=exc)
        except SpeckleError as exc:
            self.finish(flow, error=exc)
        except Exception as exc:
            log.exception("speckle-nb: the sign-in wait failed")
            self.finish(
                flow, error=SignInError(f"The sign-in failed in the kernel ({type(exc).__name__}).")
            )
        else:
            self.finish(flow, creds=creds)

    def listener_busy(self, flow: Flow, error: PortInUseError) -> bool:
        """Another program holds the listener's port: the same flow (its window may be open
        already) goes on as a pasted address. False when there is no paste way to go to."""
        ctx, redirect = self.choice.context, self.choice.redirect_url
        if ctx is None or redirect is None or flow is not self._flow or flow.done:
            return False
        port = urlsplit(redirect).port or 80
        choice = choose(dataclasses.replace(ctx, busy_ports=ctx.busy_ports | {port}))
        if choice.mode != "paste" or choice.app != self.choice.app:
            return False
        self.panel.set_waiting(f"{error} Paste the address below.", **self._apply_choice(choice))
        return True

    def finish(
        self, flow: Flow, *, creds: Credentials | None = None, error: SpeckleError | None = None
    ) -> None:
        """Record how ``flow`` ended: store the credentials, or show the error (and prepare
        the next flow so Try again opens it at once)."""
        with self._lock:
            stale = flow is not self._flow or flow.done
            flow.done = True
        if creds is not None:
            # Even from a flow this panel moved past: the user did allow access.
            self.session.store(creds, remember=self.panel.remember)
            return
        if stale or error is None:
            return
        if isinstance(error, SignInCancelledError) and flow.cancelled.is_set():
            return  # the cancel that caused it already reset the panel
        self.show_error(error)

    def show_error(self, error: SpeckleError, *, next_flow: bool = True) -> None:
        """Show ``error``; with ``next_flow``, also prepare the flow Try again opens."""
        from .widget.panel import message_for, next_step_for, reason_of

        reason = reason_of(error)
        traits: dict[str, Any] = {}
        if next_flow:
            try:
                traits = self._new_flow()
            except SpeckleError as exc:  # e.g. the probe for the next flow failed too
                log.info("speckle-nb: could not prepare the next sign-in: %s", exc)
        self.panel.set_error(
            message_for(error), reason=reason, next_step=next_step_for(reason), **traits
        )
        if next_flow:
            self.publish()

    # ------------------------------------------------------------------ the session's news

    def session_problem(self, server_url: str, error: SpeckleError) -> None:
        """A client of the session met a dead token or a lapsed workspace SSO session."""
        if self.panel.state != "signed_in" or self.panel.server_url != server_url:
            return
        creds = self.session.credentials(server_url)
        traits: dict[str, Any] = {}
        dead = not isinstance(error, WorkspaceSsoError)
        if dead:  # Try again then starts a new sign-in at once
            try:
                traits = self._new_flow()
            except SpeckleError as exc:
                log.info("speckle-nb: could not prepare the next sign-in: %s", exc)
        by_sign_in = creds is None or creds.obtained_by_us
        self.panel.show_session_problem(error, by_sign_in=by_sign_in, **traits)
        if dead:
            self.publish()

    def session_changed(self, server_url: str, creds: Credentials | None, message: str) -> None:
        if self.panel.comm is None:  # closed panel
            self.session.remove_listener(self)
            return
        mine = self.server_url or (
            self.panel.server_url if self.panel.state == "signed_in" else None
        )
        if mine is not None and mine != server_url:
            return
        if creds is not None:
            with self._lock:
                flow, self._flow = self._flow, None
            if flow is not None and not flow.done:
                self.stop_flow(flow)
            if self.server_url is None:
                self.server_url = server_url
            self.panel.set_signed_in(
                creds,
                message,
                sources=self.sources(creds),
                remember=self.session.is_remembered(server_url),
            )
            return
        if self.panel.state != "signed_in" or self.panel.server_url != server_url:
            return
        traits: dict[str, Any] = {}
        try:
            traits = self._new_flow()
        except SpeckleError as exc:
            log.info("speckle-nb: could not prepare the next sign-in: %s", exc)
        self.panel.set_idle(message, sources=self.sources(None), **traits)
        self.publish()

    # ------------------------------------------------------------------ view messages

    def handle(self, content: dict[str, Any]) -> None:
        """One message from the view (``SignInPanel.handle_message`` shows what it raises)."""
        kind = str(content.get("type"))
        from .view_messages import HANDLERS

        handler = HANDLERS.get(kind)
        if handler is None:
            log.debug("speckle-nb: ignoring a %r message from the panel", kind)
            return
        handler(self, content)

    # ------------------------------------------------------------------ remember me, sources

    def _on_remember(self, change: dict[str, Any]) -> None:
        # ipywidgets swallows exceptions raised in observers: report them in the panel.
        try:
            creds = self.session.credentials(self.panel.server_url or None)
            if self.panel.state != "signed_in" or creds is None:
                return
            if change["new"] == self.session.is_remembered(creds.server_url):
                return  # the box was set to show what is already so
            if change["new"]:
                self.panel.update(message=self.session.remember(creds))
            else:
                self.panel.update(message=self.session.unremember(creds.server_url))
        except Exception as exc:
            log.exception("speckle-nb: remember me failed")
            self.panel.update(message=f"Remember me failed ({type(exc).__name__}).")

    def token_server(self) -> str:
        """Where a token typed into this panel goes."""
        return self.session.token_server(self.server_url or self.panel.server_url or None)

    def source(self, ident: str) -> Credentials | None:
        """The credentials behind a switcher entry the view names."""
        return self._sources.get(ident)

    def sources(self, current: Credentials | None) -> list[dict[str, str]]:
        """Other credentials to switch to (labels; the tokens stay in the kernel)."""
        return self._sources.labels(current)


# ---------------------------------------------------------------------- sign_in()


def sign_in(
    server_url: str | None = None,
    *,
    wait: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    remember: bool = False,
) -> SignInPanel:
    """Show the "Sign in to Speckle" panel and sign in; returns the (displayed) panel.

    Args:
        server_url: the Speckle server (the panel lets the user pick another one). Default:
            ``SPECKLE_SERVER_URL``, else the one the Jupyter server extension is configured
            for, else app.speckle.systems.
        wait: block until signed in (works under "Run All": no widget message is needed),
            raising the ``SignInError`` that stopped it. Without it, the sign-in finishes in
            the background and the panel updates itself.
        timeout: seconds to wait for the browser sign-in.
        remember: keep the credentials for later kernels (OS keyring or a private file).

    Already signed in to that server, the panel shows who, with a Sign out button, and no
    sign-in starts. The panel is displayed here; as a cell's last expression it is not
    displayed a second time.
    """
    from .widget import SignInPanel

    if timeout <= 0:
        raise ValueError("timeout must be positive (seconds)")
    session = current_session()
    target: str | None = None
    if server_url:
        try:
            target = normalize_server_url(server_url)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    else:
        target = env_server_url()

    choice = choose_mode(target, default_server=session.token_server(target))
    if target is None and choice.mode != "extension":
        # the extension picks its own server; the fallbacks sign in where the app (or a
        # token) belongs, so the panel can say where
        target = choice.app.server_url if choice.app else session.token_server()
    panel = SignInPanel(server_url=target or "", remember=remember)
    controller = SignInController(
        panel, choice, server_url=target, timeout=timeout, session=session
    )
    creds = session.credentials(target)
    note = "Already signed in."
    if creds is None:
        creds, note = recall_checked(session, target)
    if creds is None:
        from .hub_source import hub_login_credentials

        creds = hub_login_credentials(session, target, explicit=True)
    if creds is not None and creds.source == "hub":
        who = creds.user.name if creds.user and creds.user.name else "your hub user"
        note = f"Signed in through JupyterHub as {who}."
    if creds is not None:
        controller.server_url = creds.server_url
        panel.set_signed_in(
            creds,
            note,
            sources=controller.sources(creds),
            remember=session.is_remembered(creds.server_url),  # the box shows what is true
        )
        panel.show()
        return panel

    problem: SpeckleError | None = None
    try:
        controller.prepare()
    except SpeckleError as exc:
        problem = exc
        controller.show_error(exc, next_flow=False)
    panel.update(
        sources=controller.sources(None), **({"message": note} if note and not problem else {})
    )
    panel.show()
    if problem is not None:
        if wait:
            raise problem
        return panel
    if wait:
        wait_blocking(controller)
    elif choice.mode != "loopback":
        # (a listener starts at the click: a panel left on screen must not hold a port that
        # a desktop connector may need)
        controller.start_background()
    return panel
