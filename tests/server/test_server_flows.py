"""``FlowStore`` on its own: expiry, the cap, superseding, once-only results, discards."""

from __future__ import annotations

import asyncio
import time

import pytest
from serverkit import FakeClock

from speckle_nb.credentials import Credentials, User
from speckle_nb.oauth import new_challenge
from speckle_nb.server.flows import FlowStore, PickupForbidden, StartRefused, pickup_hash

SECRET = "kernel-pickup-secret"


def creds(token: str = "t" * 42) -> Credentials:
    return Credentials("http://speckle.test", token, User("u1", "Demo"), source="sign-in")


def start(
    store: FlowStore, request_id: str, browser_flow_id: str | None = None, secret: str = SECRET
):  # type: ignore[no-untyped-def]
    return store.start(
        request_id=request_id,
        pickup_hash=pickup_hash(secret),
        server_url="http://speckle.test",
        challenge=new_challenge(),
        browser_flow_id=browser_flow_id,
    )


def finish(store: FlowStore, flow, credentials: Credentials | None = None) -> bool:  # type: ignore[no-untyped-def]
    store.begin_exchange(flow)
    return store.complete(flow, credentials or creds())


async def test_outcome_is_handed_out_once() -> None:
    store = FlowStore()
    flow = start(store, "request-0000000001")
    assert finish(store, flow)
    outcome = await store.pickup("request-0000000001", SECRET, 0)
    assert outcome is not None
    assert outcome.ok
    assert await store.pickup("request-0000000001", SECRET, 0) is None
    assert store.counts()["entries"] == 0


async def test_wrong_secret_raises_and_keeps_the_result() -> None:
    store = FlowStore()
    finish(store, start(store, "request-0000000001"))
    with pytest.raises(PickupForbidden):
        await store.pickup("request-0000000001", "wrong", 10)
    with pytest.raises(PickupForbidden):
        store.cancel("request-0000000001", "wrong")
    assert (await store.pickup("request-0000000001", SECRET, 0)) is not None


async def test_pending_flow_expires_in_real_time_and_wakes_its_waiter() -> None:
    store = FlowStore(flow_lifetime=0.3)
    start(store, "request-0000000001")
    began = time.monotonic()
    outcome = await store.pickup("request-0000000001", SECRET, 10)
    assert 0.25 <= time.monotonic() - began < 3
    assert outcome is not None
    assert outcome.reason == "expired"


async def test_expired_tombstone_then_forgotten() -> None:
    clock = FakeClock()
    store = FlowStore(clock=clock, result_lifetime=120)
    flow = start(store, "request-0000000001")
    clock.advance(600)
    assert store.get(flow.flow_id) is flow
    assert flow.ended_reason == "expired"
    clock.advance(120)
    assert store.get(flow.flow_id) is None
    assert store.counts() == {"flows": 0, "entries": 0}


async def test_unclaimed_result_expires_and_is_discarded() -> None:
    clock = FakeClock()
    discarded: list[Credentials] = []
    store = FlowStore(clock=clock, result_lifetime=120, on_discard=discarded.append)
    finish(store, start(store, "request-0000000001"), creds("x" * 42))
    clock.advance(119)
    store.purge()
    assert discarded == []
    clock.advance(2)
    store.purge()
    assert [c.token for c in discarded] == ["x" * 42]
    assert await store.pickup("request-0000000001", SECRET, 0) is None


def test_flow_lifetime_cannot_exceed_the_code_life() -> None:
    with pytest.raises(ValueError, match="600"):
        FlowStore(flow_lifetime=601)


async def test_cap_bounds_memory_and_ends_the_oldest_first() -> None:
    discarded: list[Credentials] = []
    store = FlowStore(max_flows=10, on_discard=discarded.append)
    done = start(store, "request-done-00000")
    finish(store, done)
    flows = [start(store, f"request-{i:011d}") for i in range(5000)]
    assert store.counts()["flows"] <= 10
    assert store.counts()["entries"] <= 10
    assert flows[-1].status == "pending"
    assert flows[0].ended_reason == "expired"
    # the finished-but-unclaimed result was pushed out too; its token is revoked
    assert len(discarded) == 1
    # the newest kernels still get their results
    assert finish(store, flows[-1])
    assert (await store.pickup("request-00000004999", SECRET, 0)) is not None


async def test_superseded_replaced_and_refused_starts() -> None:
    store = FlowStore()
    a = start(store, "request-aaaaaaaaaa")
    b = start(store, "request-bbbbbbbbbb", browser_flow_id=a.flow_id)
    assert a.ended_reason == "superseded"
    outcome = await store.pickup("request-aaaaaaaaaa", SECRET, 0)
    assert outcome is not None
    assert outcome.reason == "superseded"
    # the same request again, from the same browser: replaced silently
    b2 = start(store, "request-bbbbbbbbbb", browser_flow_id=b.flow_id)
    assert b.ended_reason == "replaced"
    assert b2.status == "pending"
    assert await store.pickup("request-bbbbbbbbbb", SECRET, 0) is None
    # another kernel cannot take the request over
    with pytest.raises(StartRefused) as refused:
        start(store, "request-bbbbbbbbbb", secret="another kernel")
    assert refused.value.reason == "request-taken"
    # nor restart one that already signed in
    finish(store, b2)
    with pytest.raises(StartRefused) as refused:
        start(store, "request-bbbbbbbbbb")
    assert refused.value.reason == "already-signed-in"


async def test_late_exchange_after_cancel_is_discarded() -> None:
    discarded: list[Credentials] = []
    store = FlowStore(on_discard=discarded.append)
    flow = start(store, "request-0000000001")
    store.begin_exchange(flow)
    assert store.cancel("request-0000000001", SECRET)
    assert not store.complete(flow, creds())
    assert len(discarded) == 1


async def test_refuse_only_records_for_fresh_requests() -> None:
    store = FlowStore()
    assert store.refuse("request-0000000001", pickup_hash(SECRET), "no app configured")
    outcome = await store.pickup("request-0000000001", SECRET, 0)
    assert outcome is not None
    assert outcome.reason == "failed"
    start(store, "request-0000000002")
    assert not store.refuse("request-0000000002", pickup_hash("other"), "x")
    assert await store.pickup("request-0000000002", SECRET, 0) is None


async def test_many_waiters_wake_only_for_their_own_request() -> None:
    store = FlowStore()
    flows = [start(store, f"request-{i:011d}") for i in range(20)]
    waiters = [
        asyncio.ensure_future(store.pickup(f"request-{i:011d}", SECRET, 5)) for i in range(20)
    ]
    await asyncio.sleep(0.05)
    finish(store, flows[7])
    done, pending = await asyncio.wait(waiters, timeout=0.3)
    assert [w for w in waiters if w in done] == [waiters[7]]
    for w in pending:
        w.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
