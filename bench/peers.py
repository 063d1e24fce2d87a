"""The same workloads against the tools people would pick instead: websockify and ncat --broker.

Each runs only where the tool is installed (`pip install websockify`, `apt-get install ncat`).
websockify forwards raw bytes between a WebSocket and one TCP connection, so it has the
ws→tcp, round trip, bulk and idle-WebSocket rows; `ncat --broker` is a TCP chat relay, so it
has the relay fan-out and idle-TCP rows. The TCP ends are asyncio servers in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import websockets

NCAT_MAX_CONNS = 1000
"""ncat's select() loop cannot go past FD_SETSIZE (1024) descriptors."""


def which(name: str) -> str | None:
    """A tool on PATH or beside this Python (a venv that was not activated)."""
    return shutil.which(
        name,
        path=os.pathsep.join(
            [str(Path(sys.executable).parent), os.defpath, os.environ.get("PATH", "")]
        ),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants: websockify forks one process a connection."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def wait_listening(port: int) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


@contextlib.asynccontextmanager
async def tool(args: list[str], port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A peer tool's process, listening on `port`; ended by PID when the workload ends."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    try:
        await wait_listening(port)
        yield proc
    finally:
        end(proc)


def end(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Stop a process this benchmark started, by its PID: politely, then for sure."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def websockify(handler: Handler) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """websockify in front of an asyncio TCP server running `handler`; yields its ws URL."""
    target = await asyncio.start_server(handler, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    port = free_port()
    exe = which("websockify")
    assert exe is not None
    async with target, tool([exe, f"127.0.0.1:{port}", f"127.0.0.1:{target_port}"], port) as proc:
        yield f"ws://127.0.0.1:{port}/", proc


async def ws_to_tcp(sends: int) -> float:
    counted: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while got < sends and (chunk := await reader.read(1 << 20)):
            got += chunk.count(b"\n")
        counted.set_result(time.perf_counter())
        writer.close()

    async with websockify(sink) as (url, _), websockets.connect(url) as ws:
        frame = b"m" * 63 + b"\n"
        started = time.perf_counter()
        for _ in range(sends):
            await ws.send(frame)
        return sends / (await counted - started)


async def round_trip(count: int) -> tuple[float, float]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)

    async with websockify(echo) as (url, _), websockets.connect(url) as ws:
        samples = []
        for i in range(count):
            started = time.perf_counter()
            await ws.send(b"rt%d\n" % i)
            got = b""
            while not got.endswith(b"\n"):
                got += bytes(await ws.recv())  # type: ignore[arg-type]
            samples.append((time.perf_counter() - started) * 1e6)
        cuts = statistics.quantiles(samples, n=100)
        return statistics.median(samples), cuts[98]


async def bulk(mib: int) -> float:
    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        block = b"b" * (1 << 20)
        for _ in range(mib):
            writer.write(block)
            await writer.drain()

    async with websockify(source) as (url, _), websockets.connect(url, max_size=None) as ws:
        started = time.perf_counter()
        got = 0
        while got < mib << 20:
            got += len(await ws.recv())
        return mib / (time.perf_counter() - started)


async def idle_ws(count: int) -> float:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with websockify(hold) as (url, proc):
        await asyncio.sleep(0.2)
        before = tree_rss_kb(proc.pid)
        conns = [await websockets.connect(url) for _ in range(count)]
        await asyncio.sleep(0.5)
        after = tree_rss_kb(proc.pid)
        for ws in conns:
            await ws.close()
        return (after - before) / count


@contextlib.asynccontextmanager
async def ncat_broker() -> AsyncIterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    exe = which("ncat")
    assert exe is not None
    args = [exe, "-l", "--broker", "-m", str(NCAT_MAX_CONNS), "127.0.0.1", str(port)]
    async with tool(args, port) as proc:
        yield port, proc


async def relay_fanout(receivers: int, lines: int) -> float:
    async with ncat_broker() as (port, _):
        readers = [await asyncio.open_connection("127.0.0.1", port) for _ in range(receivers)]
        _, sender = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.3)  # ncat has no event to wait on: let it register everyone
        line = b"r" * 63 + b"\n"
        expected = lines * len(line)
        started = time.perf_counter()
        draining = asyncio.gather(*(drain(r, expected) for r, _ in readers))
        for _ in range(lines // 100):
            sender.write(line * 100)
            await sender.drain()
        await draining
        elapsed = time.perf_counter() - started
        for _, w in [*readers, (None, sender)]:
            w.close()
        return lines * receivers / elapsed


async def idle_tcp(count: int) -> float:
    count = min(count, NCAT_MAX_CONNS - 10)
    async with ncat_broker() as (port, proc):
        await asyncio.sleep(0.2)
        before = tree_rss_kb(proc.pid)
        peers = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
        await asyncio.sleep(0.5)
        after = tree_rss_kb(proc.pid)
        for _, w in peers:
            w.close()
        return (after - before) / count


async def drain(reader: asyncio.StreamReader, expected: int) -> None:
    """Read until `expected` bytes came; a receiver closed early is a lost delivery."""
    got = 0
    while got < expected:
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise RuntimeError(f"a receiver was closed after {got} of {expected} bytes")
        got += len(chunk)


def available() -> dict[str, bool]:
    return {"websockify": bool(which("websockify")), "ncat": bool(which("ncat"))}
