"""``BrowserPlayer`` as other layers use it: per-origin headers, hop-by-hop history."""

from __future__ import annotations

from speckle_nb.devserver import BrowserPlayer, DevServer
from speckle_nb.devserver.state import App

from .helpers import CHALLENGE

JUPYTER_AUTH = {"Authorization": "token jupyter-secret-token"}


def test_headers_go_only_to_their_origin(devserver: DevServer, dev_app: App) -> None:
    # Same server, two origins: localhost (the Speckle double) and 127.0.0.1 (posing as
    # Jupyter). The dev server answers 403 to any request carrying an unknown token, so
    # a header that leaked to the Speckle origin would break the sign-in.
    jupyter_origin = devserver.url.replace("localhost", "127.0.0.1")
    verify = f"{devserver.url}/authn/verify/{dev_app.id}/{CHALLENGE}"
    with BrowserPlayer(headers_by_origin={jupyter_origin: JUPYTER_AUTH}) as browser:
        landed = browser.sign_in_and_consent(verify, "bob@example.org", "bob-pass")
        leaked = browser.open(f"{jupyter_origin}/graphql/probe")

    assert landed.startswith(f"{dev_app.redirect_url}?access_code=")
    assert leaked is not None
    assert leaked.response.status_code == 403  # the header was sent there, and only there


def test_history_records_every_hop(devserver: DevServer, dev_app: App) -> None:
    verify = f"{devserver.url}/authn/verify/{dev_app.id}/{CHALLENGE}"
    with BrowserPlayer() as browser:
        landed = browser.sign_in_and_consent(
            verify, "demo@example.org", "speckle-demo", stop_at_prefix="http://127.0.0.1:8888/"
        )

    assert browser.history == [
        verify,
        f"{devserver.url}/authn/login",
        f"{devserver.url}/authn/login",  # the form post
        verify,
        verify,  # the consent form post
        landed,
    ]
    assert browser.stopped_at == landed
