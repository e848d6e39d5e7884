"""``sign_in(wait=True)``: block the cell until signed in, prompting in it where a panel cannot.

While the cell blocks, the kernel handles no widget message, so the wait needs none ("Run
All" works): it waits for the panel's flow (extension pickup or loopback listener), or asks
for the pasted address or a token with a hidden prompt, and resends the authorize URL to a
view that renders late. The panel's ``SignInController`` (``signin.py``) does the rest.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .credentials import Credentials
from .errors import PortInUseError, SignInCancelledError, SignInError, SpeckleError

if TYPE_CHECKING:
    from .methods import Flow
    from .signin import SignInController

__all__ = ["wait_blocking"]

#: How often a blocked kernel re-sends the authorize URL to views that rendered late.
_RESEND_DELAYS = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)


def wait_blocking(controller: SignInController) -> Credentials:
    """``sign_in(wait=True)``: block this thread until signed in; raise on failure."""
    flow = controller.live_flow()
    if flow is None and controller.mode != "token":
        raise SignInError(controller.panel.message or "The sign-in could not start.")
    controller.panel.update(busy=True)
    resender = _start_resender(controller, flow) if flow is not None else None
    try:
        if controller.mode == "paste":
            assert flow is not None
            creds = controller.choice.method.finish(
                flow,
                _prompt(
                    "Sign in in the window the panel opens, then paste the address your browser "
                    "lands on (hidden; Enter to cancel): "
                ),
            )
        elif controller.mode == "token":
            token = _prompt("Personal access token (hidden; Enter to cancel): ")
            creds = controller.session.validate(
                Credentials(
                    server_url=controller.token_server(), token=token.strip(), source="token"
                )
            )
        else:
            assert flow is not None
            try:
                creds = controller.wait_flow(flow)
            except PortInUseError as exc:
                if not controller.listener_busy(flow, exc):
                    raise
                pasted = _prompt(f"{exc} Paste it here (hidden; Enter to cancel): ")
                creds = controller.choice.method.finish(flow, pasted)
    except KeyboardInterrupt:
        if flow is not None:
            controller.stop_flow(flow)
        controller.prepare("Sign-in interrupted.")
        raise
    except SpeckleError as exc:
        signed_in = controller.session.credentials(controller.server_url)
        if (
            isinstance(exc, SignInCancelledError)
            and flow is not None
            and flow.cancelled.is_set()
            and signed_in is not None
        ):
            return signed_in  # another panel (or use_token) signed in meanwhile
        if flow is not None:
            controller.finish(flow, error=exc)
        else:
            controller.show_error(exc, next_flow=False)
        raise
    finally:
        controller.panel.update(busy=False)
        if resender is not None:
            resender.set()
    if flow is not None:
        controller.finish(flow, creds=creds)
    else:
        controller.session.store(creds, remember=controller.panel.remember)
    return creds


def _start_resender(controller: SignInController, flow: Flow) -> threading.Event | None:
    """While this thread blocks, the kernel cannot answer a view's ``ready``: send the
    authorize URL now and then, so a view that renders late still gets it."""
    if not flow.authorize_url:
        return None
    stop = threading.Event()

    def resend() -> None:
        delays = iter(_RESEND_DELAYS)
        while not stop.wait(next(delays, _RESEND_DELAYS[-1])) and not flow.done:
            controller.publish()

    threading.Thread(target=resend, name="speckle-nb resend", daemon=True).start()
    return stop


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
