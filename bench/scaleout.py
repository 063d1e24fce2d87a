"""Scale-out rows: the Redis engine against SQLite, and one room's fan-out over 1 and 3
instances, with Debian's redis-server started here on a free port (skipped when absent)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import peers
import websockets
from harness import (
    Counts,
    Server,
    open_tcp,
    payload,
    subscriber,
    timed_write,
    wait_peers,
    webchat,
)


def available() -> bool:
    return shutil.which("redis-server") is not None


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[str]:
    """redis-server with an append-only file (`appendfsync everysec`, its default)."""
    port = peers.free_port()
    with tempfile.TemporaryDirectory(prefix="webchat-redis-") as where:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once per row, outside the timing
            [
                *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "yes", "--dir", where),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                await asyncio.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            peers.end(proc)


def on_redis(run: Callable[..., Awaitable[float]]) -> Callable[[Counts], Awaitable[float]]:
    """A row's figure on a Redis room (fresh, one instance) over the same on SQLite."""

    async def ratio(c: Counts) -> float:
        async with redis_server() as url:
            shared = await run(c, "--store", url, "--room", uuid.uuid4().hex[:8])
        return shared / await run(c)

    return ratio


LATENCY_RATE = 100
"""Lines per second while latency is measured: 300 readers then take 30,000 frames/s,
well under this client's ceiling, so the figure is the path's delay, not a queue's."""


@contextlib.asynccontextmanager
async def room(
    c: Counts, instances: int
) -> AsyncIterator[tuple[list[Server], list[websockets.ClientConnection], asyncio.StreamWriter]]:
    """`c.scale_readers` batched readers spread evenly over `instances` instances of one
    room, and a TCP sender on the first instance."""
    async with redis_server() as url, contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(webchat("--store", url)) for _ in range(instances)
        ]
        readers = [
            await subscriber(servers[n % instances], batch=True) for n in range(c.scale_readers)
        ]
        _, writer = await open_tcp(servers[0])
        await wait_peers(servers[0], readers[0], 1)
        try:
            yield servers, readers, writer
        finally:
            writer.close()
            for ws in readers:
                await ws.close()


async def count_tagged(ws: websockets.ClientConnection, tag: str, expected: int) -> None:
    """Counts the tag in each frame as it came, unparsed: parsing 300 readers' JSON took this
    client a whole core while one instance used a quarter of one, so the row measured the
    client. Now both take about as much CPU."""
    got = 0
    while got < expected:
        frame = await ws.recv()
        got += frame.count(tag) if isinstance(frame, str) else 0


async def fanout_run(c: Counts, instances: int) -> tuple[float, float]:
    """Deliveries per second, summed over the readers, of lines sent as fast as they go;
    and the CPU seconds all the instances took per delivery."""
    async with room(c, instances) as (servers, readers, writer):
        tag = uuid.uuid4().hex[:8]
        before = sum(server.cpu_seconds() for server in servers)
        counting = asyncio.gather(*(count_tagged(ws, tag, c.scale_lines) for ws in readers))
        elapsed = await timed_write(writer, payload(tag, 64) * 100, c.scale_lines // 100, counting)
        deliveries = c.scale_lines * c.scale_readers
        used = sum(server.cpu_seconds() for server in servers) - before
        return deliveries / elapsed, used / deliveries


async def fanout(c: Counts, instances: int) -> float:
    return (await fanout_run(c, instances))[0]


async def fanout_projected(c: Counts) -> float:
    """What 3 instances on 3 machines would deliver over 1 instance on one, each CPU-bound
    on its own core: 3 x (CPU per delivery on 1 instance / CPU per delivery on 3). Both
    costs are measured here, in one run; what they leave out is the network."""
    _, one = await fanout_run(c, 1)
    _, three = await fanout_run(c, 3)
    if not one or not three:
        return 0.0  # a run shorter than a clock tick (--quick) measures no CPU: no figure
    return 3 * one / three


async def fanout_latency(c: Counts, instances: int) -> tuple[float, float]:
    """p50 and p99 ms from a line written to the first instance's TCP port until a reader
    on any instance has its frame, at `LATENCY_RATE` lines/s; every reader's every line."""
    lines = max(c.scale_lines // 40, 5)
    async with room(c, instances) as (_, readers, writer):
        tag = uuid.uuid4().hex[:8]
        samples: list[float] = []

        async def read(ws: websockets.ClientConnection) -> None:
            got = 0
            while got < lines:
                frame = json.loads(await ws.recv())
                now = time.perf_counter_ns()
                for inner in frame["frames"] if frame["type"] == "batch" else (frame,):
                    if inner["type"] == "message" and inner["text"].startswith(tag):
                        got += 1
                        samples.append((now - int(inner["text"].split()[1])) / 1e6)

        reading = asyncio.gather(*(read(ws) for ws in readers))
        for _ in range(lines):
            writer.write(f"{tag} {time.perf_counter_ns()}\n".encode())
            await writer.drain()
            await asyncio.sleep(1 / LATENCY_RATE)
        await reading
        cuts = statistics.quantiles(samples, n=100)
        return statistics.median(samples), cuts[98]
