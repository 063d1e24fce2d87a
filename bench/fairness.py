"""Sends in hard times: while TCP peers flood (the user's POST must not queue behind them),
and when the disk fills and space comes back (how soon sends are taken again).

The floods, and a page reading every frame, run in a process of their own, so the figure is
webchat's latency, not the benchmark's own event loop being busy with writing or reading them."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import Counts, open_tcp, subscriber, wait_peers, webchat

FLOOD_SECONDS = 30
"""The most the floods last; they stop as soon as the sends are measured."""
FULL_FOR = 5.0
"""Seconds the disk stays full: long enough for the retries to reach their slowest pace."""
FLOODER = """
import socket, sys, threading, time
from websockets.sync.client import connect
port, seconds, page = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
block = b"".join(b"flood %06d %s\\n" % (i, b"f" * 50) for i in range(1000))
deadline = time.monotonic() + seconds

def flood() -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    threading.Thread(target=lambda: [None for _ in iter(lambda: sock.recv(65536), b"")],
                     daemon=True).start()
    while time.monotonic() < deadline:
        sock.sendall(block)

def watch() -> None:
    with connect(page, max_size=None) as ws:
        while time.monotonic() < deadline:
            ws.recv()

threading.Thread(target=watch, daemon=True).start()
for _ in range(2):
    threading.Thread(target=flood, daemon=True).start()
sys.stdin.read()
"""
"""Two flooding peers and a page that reads every frame, in a process of their own: the
page's frames parsed in the benchmark's own loop delayed its POSTs (p99 ~2x once frames
were sent faster), measuring the benchmark instead of webchat."""


async def send_under_flood(c: Counts) -> tuple[float, float]:
    """p50 and p99 of `POST /api/messages`, in ms, while two peers flood 64-byte lines."""
    async with webchat() as server:
        ws = await subscriber(server)
        flooder = subprocess.Popen(  # noqa: ASYNC220 - started once, outside the timing
            [
                *(sys.executable, "-c", FLOODER),
                *(str(server.tcp_port), str(FLOOD_SECONDS), server.ws_url),
            ],
            stdin=subprocess.PIPE,
        )
        samples: list[float] = []
        try:
            await wait_peers(server, ws, 2)
            await ws.close()  # the page in the flooder's process reads from here on
            base = f"http://127.0.0.1:{server.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                await asyncio.sleep(0.5)  # the floods are under way
                for i in range(c.fair_sends):
                    started = time.perf_counter()
                    answer = await http.post("/api/messages", json={"text": f"fair {i}"})
                    if answer.status_code != 202:
                        raise RuntimeError(f"send refused: {answer.text}")
                    samples.append((time.perf_counter() - started) * 1e3)
        finally:
            flooder.kill()
            flooder.wait()
            await ws.close()
        cuts = statistics.quantiles(samples, n=100)
        return statistics.median(samples), cuts[98]


async def disk_full_recovery(c: Counts) -> float:
    """Seconds from freeing space on a full 2 MiB tmpfs to the first send accepted again
    (root only: it mounts the tmpfs), with a peer's lines waiting meanwhile."""
    with tempfile.TemporaryDirectory(prefix="webchat-disk-") as scratch:
        disk = Path(scratch)
        mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", scratch]
        subprocess.run(mount, check=True)  # noqa: ASYNC221 - once, outside the timing
        try:
            return await _recover(disk)
        finally:
            subprocess.run(["umount", "-l", scratch], check=True)  # noqa: ASYNC221


async def _recover(disk: Path) -> float:
    async with webchat("--db", str(disk / "t.sqlite3")) as server:
        ws = await subscriber(server)
        _, writer = await open_tcp(server)
        await wait_peers(server, ws, 1)
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as out:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        writer.write(b"".join(b"waiting %d %s\n" % (i, b"w" * 200) for i in range(200)))
        base = f"http://127.0.0.1:{server.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            while (await http.get("/api/status")).json()["store"]["ok"]:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.sleep(FULL_FOR)
            filler.unlink()
            freed = time.perf_counter()
            back = {"text": "back"}
            while (await http.post("/api/messages", json=back)).status_code != 202:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            recovered = time.perf_counter() - freed
        writer.close()
        await ws.close()
        return recovered
