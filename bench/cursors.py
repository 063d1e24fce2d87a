"""Workloads for readers as cursors: readers that never read must cost neither pace nor memory,
and a reader that paused must catch up at the store's read speed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import websockets
from harness import (
    Counts,
    Server,
    count_messages,
    open_tcp,
    payload,
    stalled_reader,
    subscriber,
    timed_write,
    wait_peers,
    webchat,
)


async def _flood(server: Server, ws: websockets.ClientConnection, lines: int, size: int) -> float:
    """Seconds for `lines` lines (a multiple of 1,024) of `size` bytes to go from one TCP peer
    to `ws`."""
    _, writer = await open_tcp(server)
    await wait_peers(server, ws, 1)
    tag = uuid.uuid4().hex[:8]
    block = payload(tag, size) * 1024
    elapsed = await timed_write(writer, block, lines // 1024, count_messages(ws, tag, lines))
    writer.close()
    return elapsed


async def _ingest(c: Counts, stalled: int) -> float:
    async with webchat() as server:
        frozen = [stalled_reader(server) for _ in range(stalled)]
        ws = await subscriber(server)
        elapsed = await _flood(server, ws, c.lines // 1024 * 1024, 64)
        await ws.close()
        for sock in frozen:
            sock.close()
        return c.lines // 1024 * 1024 / elapsed


async def ingest_with_stalled_readers(c: Counts) -> float:
    """tcp→ws with `c.stalled` readers that never read, over the same with none."""
    return await _ingest(c, c.stalled) / await _ingest(c, 0)


async def catch_up(c: Counts) -> float:
    """A reader that did not read during a whole flood, in entries/s until it reaches the head."""
    async with webchat() as server:
        fast = await subscriber(server)
        paused = await websockets.connect(server.ws_url, max_size=None, max_queue=4)
        await paused.recv()
        _, writer = await open_tcp(server)
        await wait_peers(server, fast, 1)
        tag = uuid.uuid4().hex[:8]
        counting = count_messages(fast, tag, c.lines)
        await timed_write(writer, payload(tag, 64) * 1000, c.lines // 1000, counting)
        started = time.perf_counter()
        await count_messages(paused, tag, c.lines)
        rate = c.lines / (time.perf_counter() - started)
        writer.close()
        await paused.close()
        await fast.close()
        return rate


async def rss_with_stalled_readers(c: Counts) -> float:
    """Growth of the server's RSS, in MB, over a flood of `c.rss_mib` MiB of 1 KiB lines
    while `c.rss_readers` readers never read and one reads everything."""
    async with webchat() as server:
        frozen = [stalled_reader(server) for _ in range(c.rss_readers)]
        ws = await subscriber(server)
        before = server.rss_kb()
        await _flood(server, ws, c.rss_mib * 1024, 1024)
        grown = (server.rss_kb() - before) / 1024
        await ws.close()
        for sock in frozen:
            sock.close()
        return grown


async def rss_reading_back(c: Counts, fill: bytes = b"A") -> float:
    """The server's whole RSS, in MB, once `c.readback_readers` readers that never read have
    asked for the whole transcript of a `c.readback_mib` MiB flood of `fill` without a
    newline: 64 KiB entries."""
    async with webchat() as server:
        ws = await subscriber(server)
        _, writer = await open_tcp(server)
        await wait_peers(server, ws, 1)
        pieces = c.readback_mib * 16
        counting = count_heavy(ws, pieces)
        await timed_write(writer, fill * (1 << 20), c.readback_mib, counting)
        frozen = [stalled_reader(server, "?after=0") for _ in range(c.readback_readers)]
        peak = 0
        for _ in range(15):  # the replays start at once; the peak comes within a second or two
            await asyncio.sleep(0.2)
            peak = max(peak, server.rss_kb())
        writer.close()
        await ws.close()
        for sock in frozen:
            sock.close()
        return peak / 1024


async def rss_reading_back_heaviest(c: Counts) -> float:
    """The same with the heaviest JSON there is: each byte a `\\u0001` escape, six times
    its size."""
    return await rss_reading_back(c, b"\x01")


async def count_heavy(ws: websockets.ClientConnection, expected: int) -> None:
    """Wait for `expected` full 64 KiB messages."""
    got = 0
    while got < expected:
        frame = json.loads(await ws.recv())
        if frame.get("type") == "message" and len(frame["text"]) == 65536:
            got += 1
