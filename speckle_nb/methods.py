"""The ways a kernel signs in, one small strategy each, all with the same three steps:

    method.start(server_url)          # a fresh Flow (and the panel traits that show it)
    method.wait(flow, timeout=…)      # block until the browser's answer reaches the kernel
    method.finish(flow, pasted_text)  # finish with the address the user pasted

``ExtensionMethod``  the Jupyter server's speckle-nb extension exchanges the code; the kernel
                     picks the result up (it cannot ``finish`` a pasted address).
``ListenerMethod``   the kernel holds the app and listens on its ``http://localhost:<port>``
                     redirect; a pasted address finishes the same flow too.
``PasteMethod``      the kernel holds the app; the user pastes the address the browser landed
                     on (nothing to ``wait`` for).
``TokenMethod``      no browser flow: a personal access token in the panel.

``modes.py`` decides which one applies and why; ``signin.py`` drives the panel with it. The
secrets of a flow (pickup secret, challenge, authorize URL) stay in ``Flow``, in kernel memory.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .errors import ConfigurationError, SignInCancelledError, SignInError, SpeckleError

if TYPE_CHECKING:
    from .credentials import Credentials
    from .listener import LoopbackReceiver
    from .oauth import App, Challenge, Method
    from .pickup import PickupClient, SignInRequest

__all__ = [
    "ExtensionMethod",
    "Flow",
    "ListenerMethod",
    "Mode",
    "PasteMethod",
    "SignInMethod",
    "TokenMethod",
]

log = logging.getLogger(__name__)

Mode = Literal["extension", "loopback", "paste", "token"]


@dataclass(eq=False)
class Flow:
    """One attempt to sign in. Secrets stay here, in the kernel's memory only."""

    id: str
    request: SignInRequest | None = None  # extension
    challenge: Challenge | None = field(default=None, repr=False)  # listener / paste
    authorize_url: str | None = field(default=None, repr=False)  # holds the challenge
    receiver: LoopbackReceiver | None = None  # while listening
    cancelled: threading.Event = field(default_factory=threading.Event)
    waiter: threading.Thread | None = None
    done: bool = False

    @property
    def waiting(self) -> bool:
        return self.waiter is not None and self.waiter.is_alive()


class SignInMethod:
    """What every way of signing in offers. ``app`` is the Speckle app whose consent page the
    user sees (None: the extension's, or no browser at all)."""

    mode: ClassVar[Mode]
    app: App | None = None
    redirect_url: str | None = None

    def start(self, server_url: str | None) -> tuple[Flow | None, dict[str, Any]]:
        """A fresh flow for ``server_url`` and the synced traits that describe it."""
        return None, {"request_id": "", "pickup_hash": "", "start_path": ""}

    def wait(self, flow: Flow, *, timeout: float) -> Credentials:
        """Block until ``flow`` ends; the credentials, or ``SpeckleError``."""
        raise ConfigurationError(f"The {self.mode} mode has nothing to wait for.")

    def finish(self, flow: Flow, pasted: str) -> Credentials:
        """Finish ``flow`` with the address the user pasted (its code is burned here)."""
        raise SignInError("This sign-in does not take a pasted address.")

    def stop(self, flow: Flow) -> None:
        """End ``flow`` here (and wherever else it lives); its waiter sees the event."""
        flow.done = True
        flow.cancelled.set()
        receiver = flow.receiver
        if receiver is not None:
            receiver.close()

    def close(self) -> None:
        """The panel no longer uses this method: release what it holds."""


class ExtensionMethod(SignInMethod):
    """The Jupyter server's extension signs in; the kernel picks the result up."""

    mode: ClassVar[Mode] = "extension"

    def __init__(self, pickup: PickupClient) -> None:
        self.pickup = pickup
        # Waits, nudges and cancels use the client from their own threads: it is closed when
        # the method is closed *and* the last of them is done, not under their feet.
        self._users = 0
        self._closing = False
        self._lock = threading.Lock()

    def start(self, server_url: str | None) -> tuple[Flow | None, dict[str, Any]]:
        from .pickup import SignInRequest

        request = SignInRequest.new(server_url=server_url)
        flow = Flow(id=request.request_id, request=request)
        return flow, {
            "request_id": request.request_id,
            "pickup_hash": request.pickup_hash,
            "start_path": request.start_path(),
        }

    def wait(self, flow: Flow, *, timeout: float) -> Credentials:
        assert flow.request is not None
        with self._using():
            creds: Credentials = self.pickup.wait(
                flow.request, timeout=timeout, cancelled=flow.cancelled
            )
            return creds

    def poll(self, flow: Flow, *, hold: float) -> Credentials | None:
        """One pickup now (the callback page said it is done)."""
        assert flow.request is not None
        with self._using():
            return self.pickup.poll(flow.request, hold=hold)

    def stop(self, flow: Flow) -> None:
        super().stop(flow)
        request = flow.request
        if request is None:
            return

        def cancel() -> None:
            try:
                with self._using():
                    self.pickup.cancel(request)
            except SpeckleError as exc:
                log.info("speckle-nb: could not cancel a sign-in at the Jupyter server: %s", exc)

        threading.Thread(target=cancel, name="speckle-nb cancel", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            idle = self._users == 0
        if idle:
            self.pickup.close()

    def _using(self) -> _Use:
        return _Use(self)


class _Use:
    """``with method._using():`` — the pickup client stays open until the block ends."""

    def __init__(self, method: ExtensionMethod) -> None:
        self.method = method

    def __enter__(self) -> None:
        with self.method._lock:
            if self.method._closing and self.method._users == 0:
                raise SignInCancelledError("The sign-in was cancelled.")
            self.method._users += 1

    def __exit__(self, *exc: object) -> None:
        with self.method._lock:
            self.method._users -= 1
            last = self.method._closing and self.method._users == 0
        if last:
            self.method.pickup.close()


class PasteMethod(SignInMethod):
    """The kernel holds ``app``; the user pastes the address the browser lands on."""

    mode: ClassVar[Mode] = "paste"
    #: The challenge method, probed once per panel (``GET /oauth/token``) and then reused.
    _method: Method | None = None

    def __init__(self, app: App, redirect_url: str | None) -> None:
        self.app: App = app
        self.redirect_url = redirect_url

    def start(self, server_url: str | None) -> tuple[Flow | None, dict[str, Any]]:
        from .fallback import prepare_fallback_sign_in

        challenge, url = prepare_fallback_sign_in(self.app, method=self._method)
        self._method = challenge.method
        flow = Flow(id=secrets.token_urlsafe(12), challenge=challenge, authorize_url=url)
        return flow, {"request_id": flow.id, "pickup_hash": "", "start_path": ""}

    def finish(self, flow: Flow, pasted: str) -> Credentials:
        return self._complete(flow, pasted, source="paste")

    def _complete(
        self, flow: Flow, params: Any, *, source: Literal["paste", "loopback"]
    ) -> Credentials:
        from .fallback import complete_from_callback

        assert self.app is not None
        assert flow.challenge is not None
        return complete_from_callback(
            self.app, flow.challenge, params, source=source, redirect_url=self.redirect_url
        )


class ListenerMethod(PasteMethod):
    """The kernel holds ``app`` and listens on its ``http://localhost:<port>`` redirect.

    The port is bound when the wait begins (the click), not when the panel shows: a panel
    left on screen must not hold a port a desktop connector may need.
    """

    mode: ClassVar[Mode] = "loopback"

    def __init__(self, app: App, redirect_url: str) -> None:
        super().__init__(app, redirect_url)
        self.redirect_url: str = redirect_url

    def wait(self, flow: Flow, *, timeout: float) -> Credentials:
        from .listener import LoopbackReceiver

        receiver = LoopbackReceiver(self.redirect_url, timeout=timeout)
        flow.receiver = receiver  # first: a stop() from now on closes it
        if flow.done or flow.cancelled.is_set():  # stopped while binding
            receiver.close()
            raise SignInCancelledError("The sign-in was cancelled.")
        params = receiver.wait()
        return self._complete(flow, params, source="loopback")


class TokenMethod(SignInMethod):
    """No browser sign-in: a personal access token."""

    mode: ClassVar[Mode] = "token"
