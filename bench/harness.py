"""The benchmark's harness: a `webchat server` process on free ports and its clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path

import peers
import websockets

START = re.compile(r"page at http://127\.0\.0\.1:(\d+)/ - TCP server on [\d.]+:(\d+)")
WORKLOAD_TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "120"))


@dataclass(frozen=True)
class Counts:
    lines: int
    sends: int
    round_trips: int
    relay_receivers: int
    relay_lines: int
    subscribers: int
    fanout_lines: int
    bulk_mib: int
    idle_tcp: int
    idle_ws: int
    stalled: int
    rss_readers: int
    rss_mib: int
    readback_readers: int
    readback_mib: int
    fair_sends: int
    page_lines: int
    scale_readers: int
    scale_lines: int


FULL = Counts(
    200_000,
    100_000,
    2_000,
    100,
    100_000,
    100,
    20_000,
    200,
    10_000,
    1_000,
    20,
    100,
    50,
    200,
    25,
    300,
    200_000,
    300,
    20_000,
)
QUICK = Counts(2_000, 1_000, 50, 5, 200, 5, 200, 2, 50, 20, 2, 3, 1, 3, 1, 10, 2_000, 6, 200)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    http_port: int
    tcp_port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/ws"

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]

    def cpu_seconds(self) -> float:
        """User and system time the server has used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STACK = "--stack"
"""A flag for `webchat()` that starts bench/stack.py, the bare stack, instead."""


@contextlib.asynccontextmanager
async def webchat(*flags: str) -> AsyncIterator[Server]:
    """A `webchat server` process on free ports, with a temporary transcript file (the
    default durable store) unless `flags` choose one; killed by PID when the workload ends.
    With `STACK` among the flags, the bare-stack bridge instead."""
    args = [sys.executable, "-m", "webchat", "server", "--tcp-port", "0", "--http-port", "0"]
    scratch = tempfile.TemporaryDirectory(prefix="webchat-bench-")
    if STACK in flags:
        stack = [flag for flag in flags if flag != STACK]
        command = [sys.executable, str(Path(__file__).with_name("stack.py")), *stack]
    else:
        if "--db" not in flags and "--store" not in flags:
            flags = (*flags, "--db", str(Path(scratch.name) / "bench.sqlite3"))
        command = [*args, "--quiet", *flags]
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once per workload, outside the timing
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        match = START.search(line)
        if not match:
            raise RuntimeError(f"webchat did not start: {line!r}")
        yield Server(proc, int(match[1]), int(match[2]))
    finally:
        peers.end(proc)
        if proc.stdout:
            proc.stdout.close()
        scratch.cleanup()


async def open_tcp(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.tcp_port, limit=1 << 20)


async def frames_of(ws: websockets.ClientConnection) -> AsyncIterator[dict[str, object]]:
    """Every frame a subscriber gets, with `?batch=1` batches opened up."""
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("type") == "batch":
            for inner in frame["frames"]:
                yield inner
        else:
            yield frame


async def wait_peers(server: Server, ws: websockets.ClientConnection, count: int) -> None:
    """Wait on a subscriber's event stream until `count` peers have connected."""
    seen = 0
    async for frame in frames_of(ws):
        seen += frame.get("kind") == "connected"
        if seen >= count:
            return


async def subscriber(server: Server, batch: bool = False) -> websockets.ClientConnection:
    url = server.ws_url + ("?batch=1" if batch else "")
    ws = await websockets.connect(url, max_size=None, max_queue=None)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "hello"
    return ws


async def count_messages(ws: websockets.ClientConnection, tag: str, expected: int) -> int:
    """Count this tag's messages; a plain loop, since this client's speed bounds the figure."""
    got = 0
    while got < expected:
        frame = json.loads(await ws.recv())
        for inner in frame["frames"] if frame["type"] == "batch" else (frame,):
            got += inner["type"] == "message" and inner["text"].startswith(tag)
    return got


def payload(tag: str, size: int) -> bytes:
    return (tag + "x" * (size - len(tag) - 1) + "\n").encode()


async def timed_write(
    writer: asyncio.StreamWriter, block: bytes, count: int, receiving: Awaitable[object]
) -> float:
    """Seconds from the first byte written until `receiving` has seen everything."""
    started = time.perf_counter()
    task = asyncio.ensure_future(receiving)
    for _ in range(count):
        writer.write(block)
        await writer.drain()
    await task
    return time.perf_counter() - started


def stalled_reader(server: Server, query: str = "") -> socket.socket:
    """A WebSocket that completes its handshake and then never reads, as a frozen tab."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.http_port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1:{server.http_port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"no WebSocket: {head!r}")
    return sock
