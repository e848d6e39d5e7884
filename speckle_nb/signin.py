"""``sign_in()``: pick how to sign in, put one panel on screen, and finish the sign-in.

    panel = speckle_nb.sign_in()             # click "Sign in to Speckle"; returns at once
    speckle_nb.sign_in(wait=True)            # blocks the cell until signed in ("Run All")

How the sign-in travels depends on what this kernel can reach (the panel says which and why):

``extension``
    The Jupyter server that started this kernel has the speckle-nb extension. The browser
    opens ``{base_url}speckle-nb/start`` (built by the view from non-secret traits), the
    server exchanges the code with the app secret it alone holds, and the kernel picks the
    result up with the request's pickup secret: a long poll, no comm message needed.
``loopback``
    No extension, but the kernel's environment names an app whose redirect URL is
    ``http://localhost:<port>``: the kernel listens there for the one redirect.
``paste``
    No extension, an app from the environment with another redirect URL: the user signs in,
    then pastes the address the browser landed on.
``token``
    Nothing to sign in with: a personal access token, typed into the panel's password field
    (or given to ``use_token`` / ``%speckle_token``).

In every mode the panel's token field works too, and the kernel never puts a token, a
refresh token, an access code, a pasted address or a challenge in a synced trait.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ._names import ENV_TOKEN
from .credentials import Credentials, normalize_server_url
from .errors import (
    ConfigurationError,
    SignInCancelledError,
    SignInError,
    SpeckleError,
)
from .modes import Mode, ModeChoice, choose_fallback, choose_mode
from .session import Session, current_session, env_server_url

if TYPE_CHECKING:
    from .oauth import Challenge
    from .widget import SignInPanel

__all__ = ["DEFAULT_TIMEOUT", "Mode", "ModeChoice", "SignInController", "choose_mode", "sign_in"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0

#: How often a blocked kernel re-sends the authorize URL to views that rendered late.
_RESEND_DELAYS = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)


# ---------------------------------------------------------------------- one attempt


@dataclass(eq=False)
class _Flow:
    """One attempt to sign in. Secrets stay here, in the kernel's memory only."""

    id: str
    request: Any = None  # pickup.SignInRequest (extension)
    challenge: Challenge | None = field(default=None, repr=False)  # paste / loopback
    authorize_url: str | None = field(default=None, repr=False)  # holds the challenge
    receiver: Any = None  # fallback.LoopbackReceiver while listening
    cancelled: threading.Event = field(default_factory=threading.Event)
    waiter: threading.Thread | None = None
    done: bool = False

    @property
    def waiting(self) -> bool:
        return self.waiter is not None and self.waiter.is_alive()


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
        self._flow: _Flow | None = None
        self._method: Literal["plain", "S256"] | None = None  # probed once per panel
        self._pickup: Any = None
        self._candidates: dict[str, Credentials] = {}  # the sources switcher's secrets
        panel.update(**self._apply_choice(choice))
        panel.connect(self.handle, on_close=self.dispose)
        panel.observe(self._on_remember, names=["remember"])
        session.add_listener(self)

    def dispose(self) -> None:
        """The panel was closed: end its sign-in and stop listening to the session."""
        self.session.remove_listener(self)
        with self._lock:
            flow, self._flow = self._flow, None
        if flow is not None and not flow.done:
            self._stop(flow)

    # ------------------------------------------------------------------ mode

    def _apply_choice(self, choice: ModeChoice) -> dict[str, Any]:
        """Switch to ``choice``; returns the traits that show it (set them with the flow's)."""
        self.choice = choice
        # (An old PickupClient is not closed here: its waiter and cancel threads may still
        # be using it; it goes with them.)
        self._pickup = None
        if choice.mode == "extension":
            from .pickup import PickupClient

            assert choice.jupyter_url is not None  # choose_mode found it
            self._pickup = PickupClient(choice.jupyter_url)
        return {
            "mode": choice.mode,
            "mode_reason": choice.reason,
            "redirect_url_hint": choice.redirect_url or "",
        }

    @property
    def mode(self) -> Mode:
        return self.choice.mode

    # ------------------------------------------------------------------ flows

    def prepare(self, message: str = "", **traits: Any) -> None:
        """Make a fresh flow the panel's button starts (no waiting yet), idle state.

        A kernel app that cannot finish a sign-in here (no secret for a server that needs
        one) turns the panel into token mode, saying why.
        """
        try:
            flow_traits = self._new_flow()
        except ConfigurationError as exc:
            if self.mode not in ("paste", "loopback"):
                raise
            reason = (
                f"Using a personal access token: {self.choice.why or 'no server extension'}, "
                f"and the kernel's app cannot finish a sign-in here. {exc}"
            )
            traits.update(self._apply_choice(ModeChoice("token", reason)))
            flow_traits = self._new_flow()
        self.panel.set_idle(message, **flow_traits, **traits)
        self._publish()

    def _new_flow(self) -> dict[str, Any]:
        """A fresh flow, replacing (and cancelling) the current one; returns its traits."""
        with self._lock:
            old, self._flow = self._flow, None
        if old is not None and not old.done:
            self._stop(old)
        flow: _Flow | None = None
        traits: dict[str, Any] = {"request_id": "", "pickup_hash": "", "start_path": ""}
        if self.mode == "extension":
            from .pickup import SignInRequest

            request = SignInRequest.new(server_url=self.server_url)
            flow = _Flow(id=request.request_id, request=request)
            traits = {
                "request_id": request.request_id,
                "pickup_hash": request.pickup_hash,
                "start_path": request.start_path(),
            }
        elif self.mode in ("paste", "loopback"):
            from .fallback import prepare_fallback_sign_in

            assert self.choice.app is not None
            challenge, url = prepare_fallback_sign_in(self.choice.app, method=self._method)
            self._method = challenge.method
            flow = _Flow(id=secrets.token_urlsafe(12), challenge=challenge, authorize_url=url)
            traits["request_id"] = flow.id
        with self._lock:
            self._flow = flow
        return traits

    def _publish(self) -> None:
        """Send the current fallback flow's authorize URL to the views (never a trait)."""
        flow = self._flow
        if flow is not None and flow.authorize_url and not flow.done:
            self.panel.send_private(
                {"type": "authorize-url", "flow": flow.id, "url": flow.authorize_url}
            )

    def _current(self, request: Any = None) -> _Flow | None:
        """The live flow, if ``request`` (a message's) names it or names nothing."""
        flow = self._flow
        if flow is None or flow.done:
            return None
        if request and request != flow.id:
            return None
        return flow

    def _stop(self, flow: _Flow) -> None:
        """End ``flow`` here and at the Jupyter server (its waiter sees the event)."""
        flow.done = True
        flow.cancelled.set()
        receiver = flow.receiver
        if receiver is not None:
            receiver.close()
        if flow.request is not None and self._pickup is not None:
            pickup, request = self._pickup, flow.request

            def cancel() -> None:
                try:
                    pickup.cancel(request)
                except SpeckleError as exc:
                    log.info(
                        "speckle-nb: could not cancel a sign-in at the Jupyter server: %s", exc
                    )

            threading.Thread(target=cancel, name="speckle-nb cancel", daemon=True).start()

    # ------------------------------------------------------------------ waiting

    def _wait(self, flow: _Flow) -> Credentials:
        """Block until ``flow`` ends; returns the credentials or raises ``SpeckleError``."""
        if self.mode == "extension":
            creds: Credentials = self._pickup.wait(
                flow.request, timeout=self.timeout, cancelled=flow.cancelled
            )
            return creds
        if self.mode == "loopback":
            from .fallback import LoopbackReceiver

            assert self.choice.redirect_url is not None
            with self._lock:
                if flow.done:
                    raise SignInCancelledError("The sign-in was cancelled.")
                flow.receiver = LoopbackReceiver(self.choice.redirect_url, timeout=self.timeout)
            params = flow.receiver.wait()
            return self._complete(flow, params, source="loopback")
        raise ConfigurationError(f"The {self.mode} mode has nothing to wait for.")

    def _complete(
        self, flow: _Flow, params: Any, *, source: Literal["paste", "loopback"]
    ) -> Credentials:
        from .fallback import complete_from_callback

        assert self.choice.app is not None
        assert flow.challenge is not None
        return complete_from_callback(
            self.choice.app,
            flow.challenge,
            params,
            source=source,
            redirect_url=self.choice.redirect_url,
        )

    def start_background(self) -> None:
        """Wait for the current flow on a daemon thread (extension and loopback modes)."""
        with self._lock:
            flow = self._current()
            if flow is None or flow.waiting or self.mode not in ("extension", "loopback"):
                return
            flow.waiter = threading.Thread(
                target=self._wait_and_finish, args=(flow,), name="speckle-nb sign-in", daemon=True
            )
            flow.waiter.start()

    def _wait_and_finish(self, flow: _Flow) -> None:
        try:
            creds = self._wait(flow)
        except SpeckleError as exc:
            self.finish(flow, error=exc)
        except Exception as exc:
            log.exception("speckle-nb: the sign-in wait failed")
            self.finish(
                flow, error=SignInError(f"The sign-in failed in the kernel ({type(exc).__name__}).")
            )
        else:
            self.finish(flow, creds=creds)

    def wait_blocking(self) -> Credentials:
        """``sign_in(wait=True)``: block this thread until signed in; raise on failure."""
        flow = self._current()
        if flow is None and self.mode != "token":
            raise SignInError(self.panel.message or "The sign-in could not start.")
        self.panel.update(busy=True)
        resender = self._start_resender(flow) if flow is not None else None
        try:
            if self.mode == "paste":
                assert flow is not None
                creds = self._complete(
                    flow,
                    _prompt(
                        "Sign in in the window the panel opens, then paste the address your browser "
                        "lands on (hidden; Enter to cancel): "
                    ),
                    source="paste",
                )
            elif self.mode == "token":
                token = _prompt("Personal access token (hidden; Enter to cancel): ")
                creds = self.session.validate(
                    Credentials(server_url=self.token_server(), token=token.strip(), source="token")
                )
            else:
                assert flow is not None
                creds = self._wait(flow)
        except KeyboardInterrupt:
            if flow is not None:
                self._stop(flow)
            self.prepare("Sign-in interrupted.")
            raise
        except SpeckleError as exc:
            signed_in = self.session.credentials(self.server_url)
            if (
                isinstance(exc, SignInCancelledError)
                and flow is not None
                and flow.cancelled.is_set()
                and signed_in is not None
            ):
                return signed_in  # another panel (or use_token) signed in meanwhile
            if flow is not None:
                self.finish(flow, error=exc)
            else:
                self.show_error(exc, next_flow=False)
            raise
        finally:
            self.panel.update(busy=False)
            if resender is not None:
                resender.set()
        if flow is not None:
            self.finish(flow, creds=creds)
        else:
            self.session.store(creds, remember=self.panel.remember)
        return creds

    def _start_resender(self, flow: _Flow) -> threading.Event | None:
        """While this thread blocks, the kernel cannot answer a view's ``ready``: send the
        authorize URL now and then, so a view that renders late still gets it."""
        if not flow.authorize_url:
            return None
        stop = threading.Event()

        def resend() -> None:
            delays = iter(_RESEND_DELAYS)
            while not stop.wait(next(delays, _RESEND_DELAYS[-1])) and not flow.done:
                self._publish()

        threading.Thread(target=resend, name="speckle-nb resend", daemon=True).start()
        return stop

    def finish(
        self, flow: _Flow, *, creds: Credentials | None = None, error: SpeckleError | None = None
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
        from .widget.panel import next_step_for, reason_of

        reason = reason_of(error)
        traits: dict[str, Any] = {}
        if next_flow:
            try:
                traits = self._new_flow()
            except SpeckleError as exc:  # e.g. the probe for the next flow failed too
                log.info("speckle-nb: could not prepare the next sign-in: %s", exc)
        self.panel.set_error(str(error), reason=reason, next_step=next_step_for(reason), **traits)
        if next_flow:
            self._publish()

    # ------------------------------------------------------------------ the session's news

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
                self._stop(flow)
            if self.server_url is None:
                self.server_url = server_url
            self.panel.set_signed_in(creds, message, sources=self.sources(creds))
            return
        if self.panel.state != "signed_in" or self.panel.server_url != server_url:
            return
        traits: dict[str, Any] = {}
        try:
            traits = self._new_flow()
        except SpeckleError as exc:
            log.info("speckle-nb: could not prepare the next sign-in: %s", exc)
        self.panel.set_idle(message, sources=self.sources(None), **traits)
        self._publish()

    # ------------------------------------------------------------------ view messages

    def handle(self, content: dict[str, Any]) -> None:
        """One message from the view (``SignInPanel.handle_message`` shows what it raises)."""
        kind = str(content.get("type"))
        handler = self._HANDLERS.get(kind)
        if handler is None:
            log.debug("speckle-nb: ignoring a %r message from the panel", kind)
            return
        handler(self, content)

    def _on_ready(self, content: dict[str, Any]) -> None:
        self._publish()

    def _on_opened(self, content: dict[str, Any]) -> None:
        flow = self._current(content.get("request"))
        if flow is None:
            return
        self.start_background()
        blocked = bool(content.get("blocked"))
        self.panel.set_waiting("Your browser blocked the sign-in window." if blocked else "")

    def _on_nudge(self, content: dict[str, Any]) -> None:
        """The callback page said "done" on the BroadcastChannel: pick the result up now,
        unless a wait is already on it."""
        flow = self._current(content.get("request"))
        if flow is None or self.mode != "extension" or flow.waiting:
            return
        pickup = self._pickup

        def poll() -> None:
            try:
                creds = pickup.poll(flow.request, hold=5.0)
            except SpeckleError as exc:
                self.finish(flow, error=exc)
                return
            if creds is not None:
                self.finish(flow, creds=creds)

        threading.Thread(target=poll, name="speckle-nb nudge", daemon=True).start()

    def _on_cancel(self, content: dict[str, Any]) -> None:
        flow = self._current(content.get("request"))
        if flow is None:
            return
        self._stop(flow)
        self.prepare("Sign-in cancelled.")

    def _on_window_closed(self, content: dict[str, Any]) -> None:
        flow = self._current(content.get("request"))
        if flow is None:
            return
        # The flow stays alive: the sign-in may still finish (a browser can report a window
        # as closed when a cross-origin-isolated page is in it), and Try again reopens it.
        self.panel.set_error(
            "The sign-in window was closed before finishing.", reason="window-closed"
        )

    def _on_try_again(self, content: dict[str, Any]) -> None:
        if self.mode == "token" or self.panel.error_reason == "invalid-token":
            self.panel.set_idle()
            return
        if self._flow is None or self._flow.done:
            self.prepare()
        self.start_background()
        self.panel.set_waiting()

    def _on_no_extension(self, content: dict[str, Any]) -> None:
        if self.mode != "extension" or self.panel.state == "signed_in":
            return
        why = str(content.get("why") or "the page cannot reach the speckle-nb extension")[:200]
        with self._lock:
            flow, self._flow = self._flow, None
        if flow is not None and not flow.done:
            self._stop(flow)
        self.prepare(**self._apply_choice(choose_fallback(self.server_url, f"the page says {why}")))

    def _on_extension_status(self, content: dict[str, Any]) -> None:
        server = content.get("server_url")
        if isinstance(server, str) and server:
            try:
                self.session.extension_server_url = normalize_server_url(server)
            except ValueError:
                return
        redirect = content.get("redirect_url")
        if isinstance(redirect, str) and redirect and self.mode == "extension":
            self.panel.update(redirect_url_hint=redirect)

    def _on_paste_url(self, content: dict[str, Any]) -> None:
        text = content.pop("url", None)  # used once, kept nowhere
        flow = self._current(content.get("request"))
        if not isinstance(text, str) or not text.strip():
            return
        if flow is None or flow.challenge is None:
            if self.panel.state == "signed_in":
                return  # queued behind a sign-in that finished meanwhile
            self.panel.set_error(
                "There is no sign-in waiting for a pasted address in this panel.",
                reason="failed",
                next_step="Click Try again, sign in in the new window, then paste the address.",
            )
            return
        self.panel.update(busy=True)
        # A loopback listener of the same flow stops quietly: the pasted code wins.
        flow.cancelled.set()
        if flow.receiver is not None:
            flow.receiver.close()
        try:
            creds = self._complete(flow, text, source="paste")
        except SpeckleError as exc:
            flow.done = True  # the code was burned by that one attempt
            self.show_error(exc)
            return
        flow.done = True
        self.session.store(creds, remember=self.panel.remember)

    def _on_token(self, content: dict[str, Any]) -> None:
        token = content.pop("token", None)  # used once, kept nowhere
        if not isinstance(token, str) or not token.strip():
            return
        self.panel.update(busy=True)
        try:
            creds = self.session.validate(
                Credentials(server_url=self.token_server(), token=token.strip(), source="token")
            )
        except SpeckleError as exc:
            # The session is untouched, and so is a browser sign-in in progress.
            self.show_error(exc, next_flow=False)
            return
        self.session.store(creds, remember=self.panel.remember)

    def _on_sign_out(self, content: dict[str, Any]) -> None:
        server = self.panel.server_url
        if self.panel.state != "signed_in" or not server:
            return
        self.panel.update(busy=True)
        self.session.sign_out(server_url=server)

    def _on_use_source(self, content: dict[str, Any]) -> None:
        candidate = self._candidates.get(str(content.get("id")))
        if candidate is None:
            self.panel.update(message="That account is no longer available; pick another.")
            return
        self.panel.update(busy=True)
        try:
            creds = self.session.validate(candidate)
        except SpeckleError as exc:
            self.show_error(exc, next_flow=False)
            return
        self.server_url = creds.server_url
        self.session.store(creds, remember=self.panel.remember)

    _HANDLERS: ClassVar[dict[str, Callable[[SignInController, dict[str, Any]], None]]] = {
        "ready": _on_ready,
        "opened": _on_opened,
        "nudge": _on_nudge,
        "cancel": _on_cancel,
        "window-closed": _on_window_closed,
        "try-again": _on_try_again,
        "no-extension": _on_no_extension,
        "extension-status": _on_extension_status,
        "paste-url": _on_paste_url,
        "token": _on_token,
        "sign-out": _on_sign_out,
        "use-source": _on_use_source,
    }

    # ------------------------------------------------------------------ remember me, sources

    def _on_remember(self, change: dict[str, Any]) -> None:
        # ipywidgets swallows exceptions raised in observers: report them in the panel.
        try:
            creds = self.session.credentials(self.panel.server_url or None)
            if self.panel.state != "signed_in" or creds is None:
                return
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

    def sources(self, current: Credentials | None) -> list[dict[str, str]]:
        """Other credentials this kernel could switch to: the labels go to the view, the
        tokens stay in ``_candidates``."""
        from .local_accounts import env_credentials, local_accounts

        found: list[tuple[str, Credentials]] = []
        getters: tuple[tuple[str, Callable[[], Credentials | list[Credentials] | None]], ...] = (
            ("env", env_credentials),
            ("local", local_accounts),
        )
        for kind, getter in getters:
            try:
                value = getter()
            except SpeckleError as exc:
                log.info("speckle-nb: skipping %s credentials: %s", kind, exc)
                continue
            items = value if isinstance(value, list) else [value] if value is not None else []
            found.extend((kind, c) for c in items)
        for server in self.session.servers:
            other = self.session.credentials(server)
            if other is not None:
                found.append(("session", other))
        self._candidates = {}
        labels: list[dict[str, str]] = []
        seen: set[tuple[str, str]] = set()
        if current is not None:
            seen.add((current.server_url, current.token))
        for index, (kind, creds) in enumerate(found):
            key = (creds.server_url, creds.token)
            if key in seen:
                continue
            seen.add(key)
            ident = f"{kind}-{index}"
            self._candidates[ident] = creds
            labels.append({"id": ident, "label": _source_label(kind, creds)})
        return labels

    def refresh_sources(self) -> None:
        current = (
            self.session.credentials(self.panel.server_url or None)
            if self.panel.state == "signed_in"
            else None
        )
        self.panel.update(sources=self.sources(current))


_KIND_WORDS = {
    "env": ENV_TOKEN,
    "local": "Speckle desktop / specklepy account",
    "session": "signed in in this kernel",
}


def _source_label(kind: str, creds: Credentials) -> str:
    who = creds.user.name if creds.user and creds.user.name else "token"
    return f"{who} on {creds.server_url} ({_KIND_WORDS.get(kind, kind)})"


def _prompt(message: str) -> str:
    """A hidden prompt (ipykernel turns ``getpass`` into a password field)."""
    import getpass

    try:
        text = getpass.getpass(message)
    except EOFError:
        text = ""
    except Exception as exc:  # ipykernel's StdinNotImplementedError: no stdin in this front end
        if type(exc).__name__ != "StdinNotImplementedError":
            raise
        raise SignInError(
            "This front end cannot prompt for input while `sign_in(wait=True)` runs. Call "
            "`speckle_nb.sign_in()` without wait=True and use the panel, or "
            "`speckle_nb.use_token(...)`."
        ) from None
    if not text.strip():
        raise SignInCancelledError("Nothing was entered, so the sign-in was cancelled.")
    return text


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
        server_url: the Speckle server. Default: ``SPECKLE_SERVER_URL``, else the one the
            Jupyter server extension is configured for (app.speckle.systems for a token).
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

    choice = choose_mode(target)
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
        creds, note = _recall(session, target)
    if creds is not None:
        controller.server_url = creds.server_url
        panel.set_signed_in(creds, note, sources=controller.sources(creds))
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
        controller.wait_blocking()
    else:
        controller.start_background()
    return panel


def _recall(session: Session, server_url: str | None) -> tuple[Credentials | None, str]:
    """Credentials remembered by an earlier kernel, checked with the server and stored."""
    from .remember import recall

    try:
        creds = recall(server_url)
    except SpeckleError as exc:
        return None, f"Remembered credentials were not used: {exc}"
    if creds is None:
        return None, ""
    try:
        checked = session.validate(creds)
    except SpeckleError as exc:
        return (
            None,
            f"The remembered sign-in for {creds.server_url} no longer works ({exc}); sign in again.",
        )
    session.store(checked)
    session.mark_remembered(checked.server_url)
    return checked, "Signed in with the credentials remembered on this computer."
