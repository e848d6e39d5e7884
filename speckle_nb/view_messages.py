"""What the panel's view asks of the kernel: one function per message ``type``.

Each takes the panel's ``SignInController`` and the message (``SignInPanel.handle_message``
turns what they raise into the panel's error state). A message that carries a secret
(``token``, ``paste-url``) is used once and kept nowhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .credentials import Credentials, normalize_server_url
from .errors import SpeckleError
from .methods import ExtensionMethod

if TYPE_CHECKING:
    from .signin import SignInController

__all__ = ["HANDLERS"]

log = logging.getLogger(__name__)


def on_ready(controller: SignInController, content: dict[str, Any]) -> None:
    controller.publish()


def on_opened(controller: SignInController, content: dict[str, Any]) -> None:
    flow = controller.live_flow(content.get("request"))
    if flow is None:
        return
    blocked = bool(content.get("blocked"))
    controller.panel.set_waiting("Your browser blocked the sign-in window." if blocked else "")
    controller.start_background()  # after: what the wait says (a busy port) must stay shown


def on_nudge(controller: SignInController, content: dict[str, Any]) -> None:
    """The callback page said "done" on the BroadcastChannel: pick the result up now,
    unless a wait is already on it."""
    flow = controller.live_flow(content.get("request"))
    method = controller.choice.method
    if flow is None or not isinstance(method, ExtensionMethod) or flow.waiting:
        return

    def poll() -> None:
        try:
            creds = method.poll(flow, hold=5.0)
        except SpeckleError as exc:
            controller.finish(flow, error=exc)
            return
        if creds is not None:
            controller.finish(flow, creds=creds)

    threading.Thread(target=poll, name="speckle-nb nudge", daemon=True).start()


def on_cancel(controller: SignInController, content: dict[str, Any]) -> None:
    flow = controller.live_flow(content.get("request"))
    if flow is None:
        return
    controller.stop_flow(flow)
    controller.prepare("Sign-in cancelled.")


def on_window_closed(controller: SignInController, content: dict[str, Any]) -> None:
    flow = controller.live_flow(content.get("request"))
    if flow is None:
        return
    # The flow stays alive: the sign-in may still finish (a browser can report a window
    # as closed when a cross-origin-isolated page is in it), and Try again reopens it.
    controller.panel.set_error(
        "The sign-in window was closed before finishing.", reason="window-closed"
    )


def on_try_again(controller: SignInController, content: dict[str, Any]) -> None:
    if controller.mode == "token" or controller.panel.error_reason == "invalid-token":
        controller.panel.set_idle()
        return
    if controller._flow is None or controller._flow.done:
        controller.prepare()
    controller.start_background()
    controller.panel.set_waiting()


def on_no_extension(controller: SignInController, content: dict[str, Any]) -> None:
    if controller.mode != "extension" or controller.panel.state == "signed_in":
        return
    why = str(content.get("why") or "the page cannot reach the speckle-nb extension")[:200]
    controller.rechoose(extension_refused=f"the page says {why}")


def on_extension_status(controller: SignInController, content: dict[str, Any]) -> None:
    server = content.get("server_url")
    if isinstance(server, str) and server:
        try:
            controller.session.extension_server_url = normalize_server_url(server)
        except ValueError:
            return
    if content.get("app_configured") is False and controller.mode == "extension":
        if controller.panel.state != "signed_in":  # (the kernel's ping said otherwise)
            ctx = controller.choice.context
            info = dict(ctx.extension or {}) if ctx is not None else {}
            controller.rechoose(extension={**info, "app_configured": False})
        return
    redirect = content.get("redirect_url")
    if isinstance(redirect, str) and redirect and controller.mode == "extension":
        controller.panel.update(redirect_url_hint=redirect)


def on_set_server(controller: SignInController, content: dict[str, Any]) -> None:
    """The user typed or picked the Speckle server to sign in to."""
    raw = content.get("server_url")
    if not isinstance(raw, str) or not raw.strip() or controller.panel.state == "signed_in":
        return
    try:
        server = normalize_server_url(raw.strip())
    except ValueError as exc:
        controller.panel.update(message=f"That is not a Speckle server address: {exc}")
        return
    if server == controller.server_url:
        return
    controller.server_url = server
    controller.panel.update(server_url=server)
    if controller.mode == "extension":  # the extension signs in where the request names
        controller.prepare()
        return
    controller.rechoose(server_url=server, asked_server=server)


def on_paste_url(controller: SignInController, content: dict[str, Any]) -> None:
    text = content.pop("url", None)  # used once, kept nowhere
    flow = controller.live_flow(content.get("request"))
    if not isinstance(text, str) or not text.strip():
        return
    if flow is None or flow.challenge is None:
        if controller.panel.state == "signed_in":
            return  # queued behind a sign-in that finished meanwhile
        controller.panel.set_error(
            "There is no sign-in waiting for a pasted address in this panel.",
            reason="failed",
            next_step="Click Try again, sign in in the new window, then paste the address.",
        )
        return
    controller.panel.update(busy=True)
    # A loopback listener of the same flow stops quietly: the pasted code wins.
    flow.cancelled.set()
    if flow.receiver is not None:
        flow.receiver.close()
    try:
        creds = controller.choice.method.finish(flow, text)
    except SpeckleError as exc:
        flow.done = True  # the code was burned by that one attempt
        controller.show_error(exc)
        return
    flow.done = True
    controller.session.store(creds, remember=controller.panel.remember)


def on_token(controller: SignInController, content: dict[str, Any]) -> None:
    token = content.pop("token", None)  # used once, kept nowhere
    if not isinstance(token, str) or not token.strip():
        return
    controller.panel.update(busy=True)
    try:
        creds = controller.session.validate(
            Credentials(server_url=controller.token_server(), token=token.strip(), source="token")
        )
    except SpeckleError as exc:
        # The session is untouched, and so is a browser sign-in in progress.
        controller.show_error(exc, next_flow=False)
        return
    controller.session.store(creds, remember=controller.panel.remember)


def on_sign_out(controller: SignInController, content: dict[str, Any]) -> None:
    server = controller.panel.server_url
    if controller.panel.state != "signed_in" or not server:
        return
    controller.panel.update(busy=True)
    controller.session.sign_out(server_url=server)


def on_use_source(controller: SignInController, content: dict[str, Any]) -> None:
    candidate = controller.source(str(content.get("id")))
    if candidate is None:
        controller.panel.update(message="That account is no longer available; pick another.")
        return
    controller.panel.update(busy=True)
    try:
        creds = controller.session.validate(candidate)
    except SpeckleError as exc:
        controller.show_error(exc, next_flow=False)
        return
    controller.server_url = creds.server_url
    controller.session.store(creds, remember=controller.panel.remember)


HANDLERS: dict[str, Callable[[SignInController, dict[str, Any]], None]] = {
    "ready": on_ready,
    "opened": on_opened,
    "nudge": on_nudge,
    "cancel": on_cancel,
    "window-closed": on_window_closed,
    "try-again": on_try_again,
    "no-extension": on_no_extension,
    "extension-status": on_extension_status,
    "set-server": on_set_server,
    "paste-url": on_paste_url,
    "token": on_token,
    "sign-out": on_sign_out,
    "use-source": on_use_source,
}
