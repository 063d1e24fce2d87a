"""The hub without sockets: readers are cursors over the store's tail and a shared window."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from webchat.hub import CONTROL_LIMIT, Closed, Hub, Reader, Window
from webchat.model import Event, Message
from webchat.store.memory import MemoryStore
from webchat.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


def line(text: str) -> Message:
    return Message.received("127.0.0.1:1", text.encode())


async def ids_until(hub: Hub, reader: Reader, last: int) -> list[int]:
    """Every entry id the reader is sent until it reaches `last`."""
    seen: list[int] = []
    async with asyncio.timeout(10):
        while not seen or seen[-1] < last:
            seen += [json.loads(f)["id"] for f in await hub.next_frames(reader)]
    return seen


def test_window_maps_positions_and_forgets_the_oldest() -> None:
    window = Window(1, max_entries=4, max_bytes=1000)
    window.add(1, ["a", "b", "c"])
    assert window.after(0, 10, 100) == ["a", "b", "c"] and window.after(2, 1, 100) == ["c"]
    window.add(4, ["d", "e", "f"])
    assert window.after(0, 10, 100) is None  # ids 1 and 2 left the window
    assert window.after(2, 10, 100) == ["c", "d", "e", "f"] and window.after(6, 10, 100) == []
    assert window.after(9, 10, 100) == []  # a reader ahead of the window (it read the store)


def test_window_is_bounded_by_bytes_and_restarts_after_a_gap() -> None:
    window = Window(1, max_entries=100, max_bytes=10)
    window.add(1, ["12345", "12345", "12345"])
    assert window.after(0, 10, 100) is None and window.after(1, 10, 100) == ["12345", "12345"]
    assert window.after(1, 10, 5) == ["12345"] and window.after(1, 10, 1) == ["12345"]
    window.add(10, ["x"])  # ids jumped: nothing older is kept
    assert window.after(8, 10, 100) is None and window.after(9, 10, 100) == ["x"]


async def test_a_reader_far_behind_the_window_reads_the_store_then_rejoins() -> None:
    hub = Hub(MemoryStore(100_000), window_entries=16, window_bytes=1 << 20)
    await hub.record([line(f"old {i}") for i in range(3000)])
    reader = hub.attach(100)
    assert (await ids_until(hub, reader, 3000)) == list(range(101, 3001))
    await hub.record([line("live")])
    assert [json.loads(f)["text"] for f in await hub.next_frames(reader)] == ["live"]


async def test_a_reader_that_stops_reading_is_never_dropped_and_resumes_in_order() -> None:
    hub = Hub(MemoryStore(1_000_000), window_entries=64, window_bytes=1 << 16)
    paused, fine = hub.attach(0), hub.attach(0)
    for i in range(200):
        await hub.record([line(f"{i} " + "p" * 500) for _ in range(10)])
        await hub.next_frames(fine)
    assert paused.closed is None and paused.position == 0
    assert await ids_until(hub, paused, 2000) == list(range(1, 2001))


async def test_the_hub_hears_of_entries_from_the_store_not_from_the_writer() -> None:
    store = MemoryStore(1000)
    hub = Hub(store)
    reader = hub.attach(0)
    await store.append([Event("connected", "x:1")])  # another writer, not hub.record
    assert [json.loads(f)["kind"] for f in await hub.next_frames(reader)] == ["connected"]


async def test_replies_overtake_pending_entries_and_are_bounded() -> None:
    hub = Hub(MemoryStore(100_000))
    reader = hub.attach(0)
    await hub.record([line(str(i)) for i in range(5000)])
    reader.reply('{"type":"pong","id":1}')
    assert await hub.next_frames(reader) == ['{"type":"pong","id":1}']
    for i in range(CONTROL_LIMIT):
        reader.reply(str(i))
    assert not reader.room.is_set()  # the client's frames wait until its replies go out
    assert len(await hub.next_frames(reader)) == CONTROL_LIMIT and reader.room.is_set()


async def test_a_waiting_reader_wakes_for_a_commit_and_closes_with_its_code() -> None:
    hub = Hub(MemoryStore(100))
    reader = hub.attach(0)
    waiting = asyncio.create_task(hub.next_frames(reader))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await hub.record([line("wake")])
    assert len(await waiting) == 1
    hub.close_all(1001, "bye")
    with pytest.raises(Closed) as closed:
        await hub.next_frames(reader)
    assert closed.value.code == 1001
    hub.detach(reader)
    async with asyncio.timeout(1):
        await hub.wait_detached()


async def test_replay_meets_live_without_gap_or_duplicate_under_traffic(tmp_path: Path) -> None:
    hub = Hub(SqliteStore(str(tmp_path / "l.db"), 1_000_000), window_entries=100)
    await hub.record([line(f"old {i}") for i in range(3000)])

    async def traffic() -> None:
        for n in range(3000):
            await hub.record([line(f"live {n}")])

    writer = asyncio.create_task(traffic())
    reader = hub.attach(0)
    seen = await ids_until(hub, reader, 6000)
    await writer
    assert seen == list(range(1, 6001))
    await hub.store.close()
