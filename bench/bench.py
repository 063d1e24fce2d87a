"""webchat's benchmark: a real `webchat server` on loopback, driven by raw sockets and WebSockets.

Run `python bench/bench.py` (full counts, 3 interleaved runs) or `--quick` (tiny counts, one run,
used by the test suite to keep this script alive). Every workload is bounded in count and time and
raises if anything it sent is lost, so a fast-but-wrong figure never reaches the table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import cursors
import fairness
import page
import peers
import scaleout
import websockets
from harness import (
    FULL,
    QUICK,
    STACK,
    WORKLOAD_TIMEOUT,
    Counts,
    Server,
    count_messages,
    open_tcp,
    payload,
    subscriber,
    timed_write,
    wait_peers,
    webchat,
)


@dataclass
class Pair:
    """A webchat server with one subscriber and one TCP peer that it has seen connect."""

    server: Server
    ws: websockets.ClientConnection
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@contextlib.asynccontextmanager
async def pair(*flags: str) -> AsyncIterator[Pair]:
    async with webchat(*flags) as server:
        ws = await subscriber(server)
        reader, writer = await open_tcp(server)
        await wait_peers(server, ws, 1)
        try:
            yield Pair(server, ws, reader, writer)
        finally:
            writer.close()
            await ws.close()


async def tcp_to_ws(c: Counts, *flags: str) -> float:
    async with pair(*flags) as p:
        tag = uuid.uuid4().hex[:8]
        counting = count_messages(p.ws, tag, c.lines)
        block = payload(tag, 64) * 1000
        elapsed = await timed_write(p.writer, block, c.lines // 1000, counting)
        return c.lines / elapsed


async def tcp_to_ws_batched(c: Counts) -> float:
    """tcp→ws for a subscriber that asked for `?batch=1` (the page does)."""
    async with webchat() as server:
        ws = await subscriber(server, batch=True)
        _, writer = await open_tcp(server)
        await wait_peers(server, ws, 1)
        tag = uuid.uuid4().hex[:8]
        counting = count_messages(ws, tag, c.lines)
        elapsed = await timed_write(writer, payload(tag, 64) * 1000, c.lines // 1000, counting)
        writer.close()
        await ws.close()
        return c.lines / elapsed


async def client_ceiling(c: Counts) -> float:
    """How fast this client reads entry frames from a bare websockets server (bench/ceiling.py):
    the most the tcp→ws row could show, since the same client counts there."""
    script = Path(__file__).with_name("ceiling.py")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once per workload, outside the timing
        [sys.executable, str(script), str(c.lines)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.to_thread(proc.stdout.readline))
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/", max_size=None, max_queue=None, compression=None
        ) as ws:
            await ws.recv()
            started = time.perf_counter()
            await count_messages(ws, "ccc", c.lines)
            return c.lines / (time.perf_counter() - started)
    finally:
        peers.end(proc)
        if proc.stdout:
            proc.stdout.close()


async def durability_cost(c: Counts) -> float:
    """tcp→ws on the default SQLite file over the same on `--db :memory:`."""
    return await tcp_to_ws(c) / await tcp_to_ws(c, "--db", ":memory:")


async def ws_to_tcp(c: Counts, *flags: str) -> float:
    async with pair(*flags) as p:
        frame = json.dumps({"type": "send", "text": "m" * 63})
        started = time.perf_counter()

        async def send_all() -> None:
            for _ in range(c.sends):
                await p.ws.send(frame)

        async def read_echoes() -> None:
            """webchat paces a client's sends by how fast it reads its `out` echoes."""
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in p.ws:
                    pass

        sending = asyncio.create_task(send_all())
        echoes = asyncio.create_task(read_echoes())
        got = 0
        while got < c.sends:
            chunk = await p.reader.read(1 << 20)
            if not chunk:
                raise RuntimeError(f"TCP peer closed after {got} of {c.sends} lines")
            got += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        await sending
        echoes.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await echoes
        return c.sends / elapsed


async def round_trip(c: Counts, *flags: str) -> tuple[float, float]:
    async with pair(*flags) as p:
        ws, reader, writer = p.ws, p.reader, p.writer
        samples = []
        for i in range(c.round_trips):
            text = f"rt{i}"
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "send", "text": text}))
            writer.write(await reader.readline())
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("direction") == "in" and frame["text"] == text:
                    break
            samples.append((time.perf_counter() - started) * 1e6)
        cuts = statistics.quantiles(samples, n=100)
        return statistics.median(samples), cuts[98]


async def relay_fanout(c: Counts, *flags: str) -> float:
    async with webchat("--relay", *flags) as server:
        ws = await subscriber(server)
        receivers = [await open_tcp(server) for _ in range(c.relay_receivers)]
        _, sender = await open_tcp(server)
        await wait_peers(server, ws, c.relay_receivers + 1)
        line = payload("r", 64)
        expected = c.relay_lines * len(line)
        draining = asyncio.gather(*(peers.drain(r, expected) for r, _ in receivers))
        elapsed = await timed_write(sender, line * 100, c.relay_lines // 100, draining)
        for _, w in [*receivers, (None, sender)]:
            w.close()
        await ws.close()
        return c.relay_lines * c.relay_receivers / elapsed


async def ws_fanout(c: Counts) -> float:
    async with webchat() as server:
        subs = [await subscriber(server) for _ in range(c.subscribers)]
        _, writer = await open_tcp(server)
        await wait_peers(server, subs[0], 1)
        tag = uuid.uuid4().hex[:8]
        counting = asyncio.gather(*(count_messages(ws, tag, c.fanout_lines) for ws in subs))
        elapsed = await timed_write(writer, payload(tag, 64) * 100, c.fanout_lines // 100, counting)
        writer.close()
        for ws in subs:
            await ws.close()
        return c.fanout_lines * c.subscribers / elapsed


async def bulk(c: Counts) -> float:
    async with pair("--framing", "raw") as p:
        block = b"b" * (1 << 20)
        total = c.bulk_mib << 20

        async def receive() -> None:
            got = 0
            while got < total:
                frame = json.loads(await p.ws.recv())
                if frame.get("type") == "message":
                    got += len(frame["text"])

        elapsed = await timed_write(p.writer, block, c.bulk_mib, receive())
        return c.bulk_mib / elapsed


async def idle_tcp(c: Counts) -> float:
    async with webchat() as server:
        ws = await subscriber(server)
        await asyncio.sleep(0.2)
        before = server.rss_kb()
        peers = []
        for _ in range(c.idle_tcp):
            peers.append(await open_tcp(server))
        await wait_peers(server, ws, c.idle_tcp)
        after = server.rss_kb()
        for _, w in peers:
            w.close()
        await ws.close()
        return (after - before) / c.idle_tcp


async def idle_ws(c: Counts) -> float:
    async with webchat() as server:
        await asyncio.sleep(0.2)
        before = server.rss_kb()
        subs = [await subscriber(server) for _ in range(c.idle_ws)]
        after = server.rss_kb()
        for ws in subs:
            await ws.close()
        return (after - before) / c.idle_ws


Figure = float | tuple[float, float]
Workload = Callable[[Counts], Awaitable[Figure]]


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    run: Workload
    peer: str | None = None
    peer_run: Workload | None = None


WORKLOADS: list[Row] = [
    Row("tcp→ws", "lines/s", tcp_to_ws),
    Row("tcp→ws batched", "lines/s", tcp_to_ws_batched),
    Row("client ceiling", "frames/s", client_ceiling),
    Row("stack tcp→ws", "lines/s", lambda c: tcp_to_ws(c, STACK)),
    Row("ws→tcp", "messages/s", ws_to_tcp, "websockify", lambda c: peers.ws_to_tcp(c.sends)),
    Row("stack ws→tcp", "messages/s", lambda c: ws_to_tcp(c, STACK)),
    Row(
        "round trip",
        "p50 / p99 µs",
        round_trip,
        "websockify",
        lambda c: peers.round_trip(c.round_trips),
    ),
    Row("stack round trip", "p50 / p99 µs", lambda c: round_trip(c, STACK)),
    Row("round trip :memory:", "p50 / p99 µs", lambda c: round_trip(c, "--db", ":memory:")),
    Row(
        "relay fan-out",
        "deliveries/s",
        relay_fanout,
        "ncat",
        lambda c: peers.relay_fanout(c.relay_receivers, c.relay_lines),
    ),
    Row("stack relay fan-out", "deliveries/s", lambda c: relay_fanout(c, STACK)),
    Row("ws fan-out", "frames/s", ws_fanout),
    Row("bulk (raw)", "MiB/s", bulk, "websockify", lambda c: peers.bulk(c.bulk_mib)),
    Row("idle TCP peer", "RSS KB each", idle_tcp, "ncat", lambda c: peers.idle_tcp(c.idle_tcp)),
    Row(
        "idle WebSocket",
        "RSS KB each",
        idle_ws,
        "websockify",
        lambda c: peers.idle_ws(c.idle_ws),
    ),
    Row("durability cost", "SQLite/memory", durability_cost),
    Row("stalled readers", "ingest ratio", cursors.ingest_with_stalled_readers),
    Row("catch-up", "entries/s", cursors.catch_up),
    Row("RSS, stalled", "MB grown", cursors.rss_with_stalled_readers),
    Row("RSS, read-back", "MB in all", cursors.rss_reading_back),
    Row("RSS, read-back \\u0001", "MB in all", cursors.rss_reading_back_heaviest),
    Row("send under flood", "p50 / p99 ms", fairness.send_under_flood),
    *([Row("disk-full recovery", "s", fairness.disk_full_recovery)] if os.geteuid() == 0 else []),
    *(
        [
            Row("tcp→ws redis÷sqlite", "ratio", scaleout.on_redis(tcp_to_ws)),
            Row("ws→tcp redis÷sqlite", "ratio", scaleout.on_redis(ws_to_tcp)),
            Row("fan-out, 1 instance", "deliveries/s", lambda c: scaleout.fanout(c, 1)),
            Row("fan-out, 3 instances", "deliveries/s", lambda c: scaleout.fanout(c, 3)),
            Row("fan-out, 3 machines", "projected ÷ 1", scaleout.fanout_projected),
            Row("fan-out latency, 1", "p50 / p99 ms", lambda c: scaleout.fanout_latency(c, 1)),
            Row("fan-out latency, 3", "p50 / p99 ms", lambda c: scaleout.fanout_latency(c, 3)),
        ]
        if scaleout.available()
        else []
    ),
    *(
        [
            Row("page flood", "lines/s drawn / input p99 ms", page.page_flood),
            Row("page heap", "MB after the flood", page.page_heap),
        ]
        if page.available()
        else []
    ),
]


def summarise(values: list[float]) -> str:
    if any(math.isnan(v) for v in values):
        return "failed (see stderr)"
    middle = statistics.median(values)
    spread = (max(values) - min(values)) / middle * 100 if middle else 0.0
    digits = 2 if abs(middle) < 10 else 1  # ratios need their second decimal
    return f"{middle:,.{digits}f} (±{spread / 2:.0f}%)"


def columns(runs: list[list[float]]) -> list[list[float]]:
    return [list(c) for c in itertools.zip_longest(*runs, fillvalue=math.nan)]


async def measure(run: Workload, counts: Counts) -> list[float]:
    """The figures of one run; NaN where the workload failed, which fails the whole run."""
    try:
        async with asyncio.timeout(WORKLOAD_TIMEOUT):
            value = await run(counts)
    except Exception as exc:  # shown in the table, and the exit code says so
        print(f"{run.__name__} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return [math.nan]
    return list(value) if isinstance(value, tuple) else [value]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, one run (for tests)")
    parser.add_argument("--runs", type=int, default=None, help="interleaved runs (default 3)")
    parser.add_argument("--only", action="append", help="run only workloads whose name has this")
    parser.add_argument("--no-peers", action="store_true", help="measure webchat only")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 idle peers need the fds
    counts = QUICK if args.quick else FULL
    runs = args.runs or (1 if args.quick else 3)
    installed = {} if args.quick or args.no_peers else peers.available()
    chosen = [w for w in WORKLOADS if not args.only or any(o in w.name for o in args.only)]
    ours: dict[str, list[list[float]]] = {row.name: [] for row in chosen}
    theirs: dict[str, list[list[float]]] = {row.name: [] for row in chosen}
    for _ in range(runs):
        for row in chosen:
            ours[row.name].append(await measure(row.run, counts))
            if row.peer_run is not None and installed.get(row.peer or ""):
                theirs[row.name].append(await measure(row.peer_run, counts))
    print(f"webchat benchmark: {'quick' if args.quick else 'full'}, {runs} run(s)")
    print(
        f"{'workload':<21} {'unit':<14} {'webchat median (±half spread)':<34} peer: median, ratio"
    )
    for row in chosen:
        mine = [statistics.median(c) for c in columns(ours[row.name])]
        cells = " / ".join(summarise(c) for c in columns(ours[row.name]))
        peer = ""
        if theirs[row.name]:
            other = [statistics.median(c) for c in columns(theirs[row.name])]
            ratio = " / ".join(
                f"{m / o:.2f}x" if o else "n/a" for m, o in zip(mine, other, strict=True)
            )
            figures = " / ".join(f"{o:,.1f}" for o in other)
            peer = f"{row.peer}: {figures}, webchat ÷ peer {ratio}"
        elif row.peer:
            peer = "" if args.quick or args.no_peers else f"({row.peer} not installed)"
        print(f"{row.name:<21} {row.unit:<14} {cells:<34} {peer}")
    if args.json:
        args.json.write_text(json.dumps({"webchat": ours, "peers": theirs}, indent=2))
    failed = any(math.isnan(v) for runs in ours.values() for run in runs for v in run)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
