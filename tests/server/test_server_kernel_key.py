"""``pickup`` and ``refresh`` answer only kernels this Jupyter server started (issue 14).

They take no Jupyter login (kernels have none under JupyterHub); what proves a request
comes from one of this server's kernels is the server's kernel key, which the extension puts
in its own environment at start and kernels inherit. These tests send the requests a kernel
sends, with and without that key, and count what reaches Speckle (``FakeSpeckle.calls``;
the same against the real dev server is in ``test_server_devserver.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import pytest
from serverkit import Browser, FakeSpeckle, Kernel, kernel_headers, pickup, sign_in

from speckle_nb import errors
from speckle_nb.pickup import (
    KERNEL_KEY_ENV,
    KERNEL_KEY_HEADER,
    NOT_A_KERNEL,
    PickupClient,
    SignInRequest,
)

NOT_A_KERNEL_MESSAGE = "answers sign-in requests only from kernels it started itself"


async def post(
    fetch: Any, route: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    reply = await fetch(
        "speckle-nb",
        route,
        method="POST",
        body=json.dumps(body),
        headers=headers,
        raise_error=False,
    )
    return reply.code, json.loads(reply.body)


#: No Jupyter login, and no kernel key / a wrong one / one of another server.
STRANGERS = {
    "no key": {"Authorization": ""},
    "empty key": {"Authorization": "", KERNEL_KEY_HEADER: ""},
    "wrong key": {"Authorization": "", KERNEL_KEY_HEADER: "x" * 43},
    "non-ascii key": {"Authorization": "", KERNEL_KEY_HEADER: "\u00e9" * 10},
}


def assert_refused(status: int, body: dict[str, Any]) -> None:
    assert status == 403, body
    assert body["status"] == "error"
    assert body["reason"] == NOT_A_KERNEL
    assert NOT_A_KERNEL_MESSAGE in body["message"]
    assert "credentials" not in body
    assert "token" not in body


def test_the_extension_gives_its_kernels_the_key(jp_serverapp: Any, service: Any) -> None:
    assert os.environ[KERNEL_KEY_ENV] == service.kernel_key
    assert len(service.kernel_key) >= 40


@pytest.mark.parametrize("who", sorted(STRANGERS))
async def test_refresh_with_a_valid_refresh_token_is_refused_without_the_key(
    browser: Browser, speckle: FakeSpeckle, who: str
) -> None:
    kernel = Kernel()
    await sign_in(browser, speckle, kernel)
    creds = (await pickup(browser.fetch, kernel))[1]["credentials"]
    calls_before = list(speckle.calls)
    body = {"server_url": "http://speckle.test", "refresh_token": creds["refresh_token"]}
    assert_refused(*await post(browser.fetch, "refresh", body, STRANGERS[who]))
    assert speckle.calls == calls_before  # nothing reached Speckle
    # the same refresh token, from a kernel of this server: works (so the refusal above
    # was the missing key, not the token)
    status, answer = await post(browser.fetch, "refresh", body, kernel_headers())
    assert (status, answer["status"]) == (200, "ok")
    assert speckle.calls[len(calls_before) :] == ["POST /auth/token"]


@pytest.mark.parametrize("who", sorted(STRANGERS))
async def test_pickup_with_the_right_secret_is_refused_without_the_key(
    browser: Browser, speckle: FakeSpeckle, service: Any, who: str
) -> None:
    kernel = Kernel()
    await sign_in(browser, speckle, kernel)
    calls_before = list(speckle.calls)
    for action in ("wait", "cancel"):
        body = {"request": kernel.request_id, "secret": kernel.secret, "action": action}
        assert_refused(*await post(browser.fetch, "pickup", body, STRANGERS[who]))
    assert speckle.calls == calls_before  # a refused cancel revoked nothing either
    assert service.store.counts()["entries"] == 1  # the result still waits for its kernel
    _, answer, _ = await pickup(browser.fetch, kernel)
    assert answer["status"] == "ok"


async def test_a_jupyter_login_alone_does_not_make_a_kernel(
    browser: Browser, speckle: FakeSpeckle
) -> None:
    """jp_fetch sends the server's own token: a logged-in browser is not a kernel either."""
    kernel = Kernel()
    await sign_in(browser, speckle, kernel)
    body = {"request": kernel.request_id, "secret": kernel.secret, "hold": 0}
    assert_refused(*await post(browser.fetch, "pickup", body, {}))


async def test_ping_says_whether_the_caller_is_a_kernel_of_this_server(jp_fetch: Any) -> None:
    ping = {"action": "ping"}
    status, body = await post(jp_fetch, "pickup", ping, STRANGERS["no key"])
    assert (status, body["status"], body["kernel"]) == (200, "ready", False)
    status, body = await post(jp_fetch, "pickup", ping, kernel_headers())
    assert (status, body["status"], body["kernel"]) == (200, "ready", True)


async def test_the_kernel_client_sends_the_inherited_key(
    jp_serverapp: Any, http_server: Any, jp_http_port: int
) -> None:
    url = f"http://127.0.0.1:{jp_http_port}/a%40b/"
    with PickupClient(url) as ours:
        assert await asyncio.to_thread(ours.ping)
        assert await asyncio.to_thread(ours.poll, SignInRequest.new(), hold=0) is None
    with PickupClient(url, kernel_key="") as stranger:
        assert not await asyncio.to_thread(stranger.ping)  # so it signs in another way
        with pytest.raises(errors.ConfigurationError, match=NOT_A_KERNEL_MESSAGE):
            await asyncio.to_thread(stranger.poll, SignInRequest.new(), hold=0)
        with pytest.raises(errors.ConfigurationError, match=NOT_A_KERNEL_MESSAGE):
            await asyncio.to_thread(stranger.refresh, "http://speckle.test", "f" * 42)


async def test_refusals_are_logged_without_the_key(
    jp_fetch: Any, service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"server_url": "http://speckle.test", "refresh_token": "f" * 42}
    await post(jp_fetch, "refresh", body, STRANGERS["wrong key"])
    await post(jp_fetch, "refresh", body, kernel_headers())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "refresh refused: wrong kernel key" in text
    assert service.kernel_key not in text
    assert STRANGERS["wrong key"][KERNEL_KEY_HEADER] not in text


ADMINS_KEY = "an-administrators-kernel-key-" + "k" * 20


@pytest.mark.parametrize("speckle_env", [{KERNEL_KEY_ENV: ADMINS_KEY}])
def test_a_key_the_server_was_started_with_is_kept(jp_serverapp: Any, service: Any) -> None:
    """So kernels that outlive a server restart (a kernel gateway) stay its kernels."""
    assert service.kernel_key == ADMINS_KEY
    assert os.environ[KERNEL_KEY_ENV] == ADMINS_KEY


@pytest.mark.parametrize("speckle_env", [{KERNEL_KEY_ENV: "short"}])
def test_a_short_key_from_the_environment_is_replaced(jp_serverapp: Any, service: Any) -> None:
    assert service.kernel_key != "short"
    assert len(service.kernel_key) >= 40
    assert os.environ[KERNEL_KEY_ENV] == service.kernel_key
