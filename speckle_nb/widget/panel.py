"""``SignInPanel``: the widget's model in the kernel — non-secret status traits and messages.

The panel is a thin view-model. ``speckle_nb.sign_in()`` connects it to a controller
(``speckle_nb.signin``) that runs the sign-in; the panel only holds what the view shows and
hands the view's messages to that controller.

What crosses the comm, and what never does:

* **Synced traits** (saved with the notebook's widget state) hold status only: the state,
  the mode and why, who is signed in where, the request id, a *hash* of the pickup secret and
  the start path. Never a token, refresh token, access code, pasted URL or challenge.
* **View → kernel messages** (``model.send``), each handled once and never stored:
  ``ready``, ``opened``, ``nudge``, ``cancel``, ``window-closed``, ``no-extension``,
  ``extension-status``, ``try-again``, ``sign-out``, ``use-source``, ``ping`` (answered
  ``pong``: the view checks the kernel still has this panel), and the two that carry a
  secret — ``token`` and ``paste-url`` — whose value the view clears from its field at once.
* **Kernel → view messages**: ``{"type": "authorize-url", "flow", "url"}`` in the paste and
  loopback modes. That URL holds the challenge, which for Speckle's plain method *is* the
  verifier, so it travels as a one-off custom message (not saved anywhere) instead of a trait.
"""

from __future__ import annotations

import logging
import pathlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..errors import (
    ConfigurationError,
    InvalidTokenError,
    SignInError,
    SpeckleError,
    TransportError,
    WorkspaceSsoError,
)

if TYPE_CHECKING:
    from ..credentials import Credentials

__all__ = ["MODES", "STATES", "SignInPanel", "message_for", "next_step_for", "reason_of"]

log = logging.getLogger(__name__)

_HERE = pathlib.Path(__file__).parent

STATES = ("idle", "waiting", "signed_in", "error")
MODES = ("", "extension", "loopback", "paste", "token")

MessageHandler = Callable[[dict[str, Any]], None]

#: Traits that describe the signed-in user; cleared whenever nobody is signed in.
_USER_TRAITS = {"user_name": "", "user_email": "", "avatar_url": "", "scopes": [], "source": ""}
_ERROR_TRAITS = {"error_reason": "", "next_step": ""}


class SignInPanel(anywidget.AnyWidget):
    """The "Sign in to Speckle" panel. Create it with ``speckle_nb.sign_in()``."""

    _esm = _HERE / "panel.js"
    _css = _HERE / "panel.css"

    state = traitlets.Enum(
        STATES, default_value="idle", help="idle, waiting, signed_in or error"
    ).tag(sync=True)
    mode = traitlets.Enum(MODES, default_value="", help="How this panel signs in.").tag(sync=True)
    mode_reason = traitlets.Unicode("", help="Why this mode was chosen, in words.").tag(sync=True)
    server_url = traitlets.Unicode("", help="The Speckle server ('' = the extension's).").tag(
        sync=True
    )
    user_name = traitlets.Unicode("").tag(sync=True)
    user_email = traitlets.Unicode("").tag(sync=True)
    avatar_url = traitlets.Unicode("").tag(sync=True)
    scopes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    source = traitlets.Unicode("", help="Where the signed-in token came from.").tag(sync=True)
    message = traitlets.Unicode("", help="The latest status line.").tag(sync=True)
    error_reason = traitlets.Unicode("", help="A short word: denied, timeout, …").tag(sync=True)
    next_step = traitlets.Unicode("", help="What the user can do about the error.").tag(sync=True)
    request_id = traitlets.Unicode("", help="The current sign-in request (not secret).").tag(
        sync=True
    )
    pickup_hash = traitlets.Unicode("", help="A hash of the pickup secret (not secret).").tag(
        sync=True
    )
    start_path = traitlets.Unicode("", help="Start URL relative to the Jupyter base URL.").tag(
        sync=True
    )
    redirect_url_hint = traitlets.Unicode("", help="The redirect URL an admin registers.").tag(
        sync=True
    )
    details = traitlets.List(
        traitlets.Unicode(), help="Which app signs in and why; why not each other way."
    ).tag(sync=True)
    paste_too = traitlets.Bool(
        False, help="Offer the paste field beside the listener (browser maybe elsewhere)."
    ).tag(sync=True)
    builtin_app = traitlets.Bool(
        False, help="Signing in with Speckle's built-in app (Desktop Connectors)."
    ).tag(sync=True)
    server_choices = traitlets.List(
        traitlets.Unicode(), help="Speckle servers the picker offers."
    ).tag(sync=True)
    remember = traitlets.Bool(False, help="Keep the credentials for later kernels.").tag(sync=True)
    sources = traitlets.List(traitlets.Dict(), help="[{id, label}] to switch to.").tag(sync=True)
    busy = traitlets.Bool(False, help="The kernel is working on a request from the view.").tag(
        sync=True
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._handler: MessageHandler | None = None
        self._on_close: Callable[[], None] | None = None
        # Background waits update the panel from their own threads.
        self._lock = threading.RLock()
        self._skip_next_display = False
        self.on_msg(self._on_custom_msg)

    # ------------------------------------------------------------------ wiring

    def connect(
        self, handler: MessageHandler | None, on_close: Callable[[], None] | None = None
    ) -> None:
        """Send the view's messages to ``handler``, and call ``on_close`` when the panel is
        closed (``speckle_nb.signin`` does this: a closed panel stops its sign-in)."""
        self._handler = handler
        self._on_close = on_close

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        super().close()
        if on_close is not None:
            on_close()

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Sequence[Any]) -> None:
        if not isinstance(content, Mapping) or not isinstance(content.get("type"), str):
            return
        if content["type"] == "ping":  # the view asks whether this kernel still has the panel
            self.send_private({"type": "pong"})
            return
        if self._handler is None:
            self.set_error(
                "This panel is not connected to a sign-in.",
                reason="not-connected",
                next_step="Run `speckle_nb.sign_in()` to get a working panel.",
            )
            return
        self.handle_message(dict(content))

    def handle_message(self, content: dict[str, Any]) -> None:
        """Run the handler for one view message; show any failure in the panel.

        ipywidgets swallows exceptions raised in message callbacks (they reach only the kernel
        log), so every failure is turned into the panel's error state here.
        """
        if self._handler is None:
            return
        try:
            self._handler(content)
        except SpeckleError as exc:
            self.set_error(message_for(exc), reason=reason_of(exc))
        except Exception as exc:
            # A bug of ours: keep the traceback for the kernel log, show the type only.
            log.exception("The sign-in panel could not handle a %r message", content.get("type"))
            self.set_error(
                f"Something went wrong in the kernel ({type(exc).__name__}).",
                reason="internal",
                next_step="Run `speckle_nb.sign_in()` again; the kernel log has the details.",
            )
        finally:
            if self.busy:
                self.update(busy=False)

    # ------------------------------------------------------------------ state changes

    @contextmanager
    def _batch(self) -> Iterator[None]:
        with self._lock, self.hold_sync():
            yield

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """State from the view (the remember checkbox), serialised with background updates."""
        with self._lock:
            super().set_state(sync_data)

    def update(self, **traits: Any) -> None:
        """Set several traits at once: the view sees one change, never a half-updated panel."""
        with self._batch():
            for name, value in traits.items():
                if not self.has_trait(name):
                    raise AttributeError(f"SignInPanel has no trait {name!r}")
                setattr(self, name, value)

    def set_idle(self, message: str = "", **traits: Any) -> None:
        """Nobody signed in; the button is ready (``traits`` may carry a new request)."""
        self.update(
            state="idle", message=message, busy=False, **_USER_TRAITS, **_ERROR_TRAITS, **traits
        )

    def set_waiting(self, message: str = "", **traits: Any) -> None:
        self.update(state="waiting", message=message, **_ERROR_TRAITS, **traits)

    def set_signed_in(self, creds: Credentials, message: str = "", **traits: Any) -> None:
        """Show who is signed in where. Reads only the non-secret fields of ``creds``."""
        user = creds.user
        self.update(
            state="signed_in",
            server_url=creds.server_url,
            user_name=(user.name if user else "") or "",
            user_email=(user.email if user else "") or "",
            avatar_url=_safe_avatar(user.avatar if user else None),
            scopes=list(creds.scopes),
            source=creds.source,
            message=message,
            busy=False,
            request_id="",
            pickup_hash="",
            start_path="",
            **_ERROR_TRAITS,
            **traits,
        )

    def set_error(
        self, message: str, *, reason: str = "failed", next_step: str = "", **traits: Any
    ) -> None:
        self.update(
            state="error",
            message=message,
            error_reason=reason,
            next_step=next_step or _NEXT_STEPS.get(reason, _NEXT_STEPS["failed"]),
            busy=False,
            **traits,
        )

    def show_session_problem(self, error: SpeckleError, *, by_sign_in: bool, **traits: Any) -> None:
        """The signed-in token stopped working (``InvalidTokenError`` after any refresh): no
        longer "Signed in", one next step. A lapsed workspace SSO session (``WorkspaceSsoError``)
        leaves the rest working: stay signed in and say what to do for that workspace."""
        if isinstance(error, WorkspaceSsoError):
            self.update(message=str(error))
            return
        reason = "token-dead" if by_sign_in else "invalid-token"
        where = self.server_url or error.server_url or "The Speckle server"
        cleared: dict[str, Any] = dict(_USER_TRAITS)  # nobody is signed in any more
        self.set_error(
            f"{where} no longer accepts the token this kernel signed in with: it was revoked "
            "or has expired.",
            reason=reason,
            **cleared,
            **traits,
        )

    def send_private(self, content: dict[str, Any]) -> None:
        """A one-off custom message to the views: delivered now, stored nowhere."""
        if self.comm is not None:
            self.send(content)

    # ------------------------------------------------------------------ display

    def show(self) -> None:
        """Display the panel once, and let the cell's result display (if it is this panel)
        show nothing, so ``speckle_nb.sign_in()`` as a cell's last line puts one panel on
        screen, not two. Outside IPython this prints the text repr."""
        from IPython.display import display

        shell = _shell()
        display(self)  # type: ignore[no-untyped-call]
        if shell is None:
            return
        self._skip_next_display = True

        def clear(*_args: Any) -> None:
            self._skip_next_display = False
            shell.events.unregister("post_run_cell", clear)

        shell.events.register("post_run_cell", clear)

    def _ipython_display_(self) -> None:
        if self._skip_next_display:
            self._skip_next_display = False
            return
        from IPython.display import display

        make_bundle = self._repr_mimebundle_  # ipywidgets sets it to None on close()
        bundle = make_bundle() if callable(make_bundle) else None
        if bundle is None:
            display(repr(self))  # type: ignore[no-untyped-call]
            return
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        display(data, metadata=metadata, raw=True)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        who = f", user={self.user_name!r}" if self.state == "signed_in" else ""
        server = self.server_url or "the Jupyter server's Speckle server"
        return f"SignInPanel(state={self.state!r}, mode={self.mode!r}, server={server!r}{who})"


_NEXT_STEPS: dict[str, str] = {
    "denied": "Click Try again and choose Authorize to sign in.",
    "expired": "The sign-in took too long and its code expired. Click Try again.",
    "timeout": "Click Try again, or call `speckle_nb.sign_in(timeout=…)` with more time.",
    "superseded": "A newer sign-in started in this browser. Use the newest panel, or click Try "
    "again here.",
    "cancelled": "Click Try again to start over.",
    "window-closed": "Click Try again to reopen the sign-in window.",
    "unreachable": "Check the server URL and your network, then click Try again.",
    "invalid-token": "Copy a valid token from Developer settings on your Speckle server, "
    "then click Try again and paste it.",
    "token-dead": "Click Try again to sign in again.",
    "configuration": "Fix the setting named above, restart the kernel, then run "
    "`speckle_nb.sign_in()` again.",
    "failed": "Click Try again. If it keeps failing, sign in with a personal access token.",
}


def reason_of(exc: BaseException) -> str:
    """The short ``error_reason`` word for an exception (no secrets: only its class)."""
    if isinstance(exc, SignInError):
        return exc.reason
    if isinstance(exc, InvalidTokenError):
        return "invalid-token"
    if isinstance(exc, TransportError):
        return "unreachable"
    if isinstance(exc, ConfigurationError):
        return "configuration"
    return "failed"


def message_for(exc: SpeckleError) -> str:
    """The panel's status line for ``exc``: its message, except where that names next steps
    of its own while ``next_step`` shows the panel's one (a refused token)."""
    if isinstance(exc, InvalidTokenError):
        said = f', saying "{exc.server_message}"' if exc.server_message else ""
        return f"{exc.server_url or 'The Speckle server'} refused the token{said}"
    return str(exc)


def next_step_for(reason: str) -> str:
    """What the user can do about an error of this ``reason``."""
    return _NEXT_STEPS.get(reason, _NEXT_STEPS["failed"])


def _safe_avatar(avatar: str | None) -> str:
    """Only http(s) and image data URLs reach the view's ``<img src>``."""
    if not avatar:
        return ""
    lowered = avatar[:16].lower()
    if lowered.startswith(("https://", "http://", "data:image/")):
        return avatar
    return ""


def _shell() -> Any | None:
    from IPython.core.getipython import get_ipython

    return get_ipython()  # type: ignore[no-untyped-call, unused-ignore]  # typed in IPython 9
