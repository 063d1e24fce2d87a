"""The hub and the memory store without sockets: replay then live, bounded queues, pacing."""

from __future__ import annotations

import asyncio
import json

import pytest

from webchat.hub import TRY_AGAIN_LATER, Closed, Hub
from webchat.model import Event, Message
from webchat.store import MemoryStore

pytestmark = pytest.mark.anyio


def line(text: str) -> Message:
    return Message.received("127.0.0.1:1", text.encode())


async def test_store_assigns_contiguous_ids_and_keeps_the_newest() -> None:
    store = MemoryStore(4)
    for i in range(10):
        await store.append([line(str(i))])
    assert store.last_id == 10
    kept = await store.read(0, 100)
    assert [e.id for e in kept][-4:] == [7, 8, 9, 10] and len(kept) <= 5
    assert [e.id for e in await store.read(8, 1)] == [9]


async def test_replay_then_live_has_no_gap_and_no_duplicate() -> None:
    hub = Hub(MemoryStore(10_000), 10_000)
    await hub.record([line(f"old {i}") for i in range(1200)])
    sub = hub.subscribe()
    frames = hub.frames(sub, 100)
    seen: list[int] = []
    first = await anext(frames)
    seen += [json.loads(f)["id"] for f in first]
    await hub.record([line("during replay")])  # lands in the store and in the live queue
    while len(seen) < 1101:
        seen += [json.loads(f)["id"] for f in await anext(frames)]
    await hub.record([line("live")])
    seen += [json.loads(f)["id"] for f in await anext(frames)]
    assert seen == list(range(101, 1203))


async def test_slow_subscriber_is_closed_with_1013_and_others_go_on() -> None:
    hub = Hub(MemoryStore(1000), 4)
    slow, fine = hub.subscribe(), hub.subscribe()
    hub.go_live(slow)
    hub.go_live(fine)
    for i in range(3):
        await hub.record([line(str(i))])
        await fine.next_batch()
    await hub.record([line("3"), line("4")])
    with pytest.raises(Closed) as closed:
        await slow.next_batch()
    assert closed.value.code == TRY_AGAIN_LATER and "?after=" in closed.value.reason
    assert len(await fine.next_batch()) == 2


async def test_a_subscriber_that_does_not_read_has_its_own_sends_paced() -> None:
    hub = Hub(MemoryStore(1000), 4)
    sub = hub.subscribe()
    hub.go_live(sub)
    await hub.record([Event("connected", "x"), Event("connected", "y")])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await sub.wait_for_room()
    await sub.next_batch()
    async with asyncio.timeout(1):
        await sub.wait_for_room()
