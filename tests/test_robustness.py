"""A real `webchat server` under floods, stalls, churn and garbage: memory and fds stay flat,
other users are unaffected. Every loop is bounded in count and time."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.conftest import Running, dial, recv_until, wait_until

pytestmark = pytest.mark.anyio
MIB = 1024 * 1024


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def tcp_connections() -> set[tuple[int, int]]:
    """(local port, remote port) of every IPv4 TCP socket on this machine."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        found.add((int(local.split(":")[1], 16), int(remote.split(":")[1], 16)))
    return found


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    monkeypatch.setenv("WEBCHAT_DRAIN_TIMEOUT", "1")
    monkeypatch.setenv("WEBCHAT_WRITE_LIMIT", "65536")
    running = Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet")
    yield running
    running.stop()


def api(server: Running) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=10)


def test_a_peer_that_speaks_and_hangs_up_at_once_is_heard(server: Running) -> None:
    """`printf 'q\\n' | nc -q1`: the line and the FIN can arrive before the peer is admitted."""
    with api(server) as http:
        for i in range(20):
            with socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5) as sock:
                sock.sendall(b"quick %d\n" % i)
                sock.shutdown(socket.SHUT_WR)

        def heard() -> list[str]:
            found = http.get("/api/messages", params={"q": "quick", "limit": 100}).json()
            return sorted(m["text"] for m in found["messages"])

        wait_until(lambda: len(heard()) == 20, 10)
        assert heard() == sorted(f"quick {i}" for i in range(20))


def pages(http: httpx.Client, url: str) -> Iterator[list[dict[str, object]]]:
    """Every page of a listing, following `next`."""
    next_url: str | None = url
    while next_url is not None:
        page = http.get(next_url).json()
        yield page["messages"]
        next_url = page["next"]


def test_a_flood_without_newline_is_cut_in_pieces_and_reading_it_back_stays_small(
    server: Running,
) -> None:
    with api(server) as http, dial(f"127.0.0.1:{server.tcp_port}") as sock:
        wait_until(lambda: http.get("/api/status").json()["peers"])
        before = rss_kb(server.proc.pid)
        block = b"\x01" * MIB  # the heaviest JSON there is: six characters a byte, plus base64
        for _ in range(25):
            sock.sendall(block)
        sock.sendall(b"\n")
        wait_until(lambda: http.get("/api/status").json()["peers"][0]["bytes_in"] > 25 * MIB, 60)
        grown = rss_kb(server.proc.pid) - before
        assert grown < 40 * 1024, f"RSS grew by {grown} KB for a 25 MiB flood"
        before = rss_kb(server.proc.pid)
        one = http.get("/api/messages?direction=in&limit=10000")
        assert len(one.content) < 2 * MIB and one.json()["next"]
        sizes = [len(p) for p in pages(http, "/api/messages?direction=in&limit=10000")]
        assert sum(sizes) == 25 * MIB // 65536 and max(sizes) <= 4
        frozen = [stalled_websocket(server.http_port, "?after=0") for _ in range(20)]
        time.sleep(3)
        grown = rss_kb(server.proc.pid) - before
        assert grown < 60 * 1024, f"RSS grew by {grown} KB reading back with 20 stalled readers"
        for ws in frozen:
            ws.close()


def test_a_stalled_tcp_reader_is_dropped_and_the_others_go_on(server: Running) -> None:
    with (
        api(server) as http,
        dial(f"127.0.0.1:{server.tcp_port}") as stalled,
        dial(f"127.0.0.1:{server.tcp_port}") as reader,
    ):
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_until(lambda: len(http.get("/api/status").json()["peers"]) == 2)
        stalled_name = f"127.0.0.1:{stalled.getsockname()[1]}"
        text = "z" * 60_000
        received = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            peers = [p["peer"] for p in http.get("/api/status").json()["peers"]]
            if stalled_name not in peers:
                break
            assert http.post("/api/messages", json={"text": text}).status_code == 202
            received += len(recv_until(reader, b"\n"))
        else:
            raise AssertionError("the stalled reader was never dropped")
        assert http.post("/api/messages", json={"text": "still here"}).status_code == 202
        assert recv_until(reader, b"\n") == b"still here\n"
        gone = http.get("/api/messages", params={"peer": stalled_name, "limit": 1000}).json()
        details = [e["detail"] for e in gone["messages"] if e.get("kind") == "disconnected"]
        assert details and "not reading" in details[0]


def stalled_websocket(port: int, query: str = "") -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads, as a frozen tab."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:  # peek, so the frames after the headers stay unread
        head = sock.recv(4096, socket.MSG_PEEK)
    head = sock.recv(head.index(b"\r\n\r\n") + 4)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def ws_lines(ws: websockets.ClientConnection, count: int) -> list[int]:
    """The ids of the next `count` messages on `ws`, skipping events."""
    ids: list[int] = []
    while len(ids) < count:
        frame = json.loads(await ws.recv())
        if frame["type"] == "message":
            ids.append(frame["id"])
    return ids


async def test_stalled_tabs_are_never_dropped_cost_no_memory_and_resume_in_order(
    server: Running,
) -> None:
    url = f"ws://127.0.0.1:{server.http_port}/ws"
    frozen = [stalled_websocket(server.http_port) for _ in range(10)]
    lines = 20_000
    async with (
        websockets.connect(url, max_queue=None) as fast,
        websockets.connect(url, max_queue=4) as paused,  # stops reading its socket at once
    ):
        await fast.recv()
        await paused.recv()
        before = rss_kb(server.proc.pid)
        _, writer = await asyncio.open_connection("127.0.0.1", server.tcp_port)
        writer.write(b"".join(b"line %d %s\n" % (i, b"p" * 1000) for i in range(lines)))
        async with asyncio.timeout(60):
            got = await ws_lines(fast, lines)
        grown = rss_kb(server.proc.pid) - before
        assert got == list(range(got[0], got[0] + lines))
        assert grown < 100 * 1024, f"RSS grew by {grown} KB with 11 readers not reading"
        await asyncio.sleep(1)  # the paused tab wakes up: everything, in order, same connection
        async with asyncio.timeout(60):
            assert await ws_lines(paused, lines) == got
        writer.close()
        await writer.wait_closed()
    for sock in frozen:
        sock.settimeout(5)
        assert sock.recv(1)  # still open: nothing closed it for being slow
        sock.close()


async def test_a_reader_far_behind_gets_its_pong_ahead_of_the_backlog(server: Running) -> None:
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        sock.sendall(b"".join(b"backlog %d\n" % i for i in range(100_000)))
        url = f"ws://127.0.0.1:{server.http_port}/ws"
        async with asyncio.timeout(60):
            while True:
                async with websockets.connect(url) as probe:
                    if json.loads(await probe.recv())["last_id"] >= 100_000:
                        break
                await asyncio.sleep(0.2)
    async with websockets.connect(url + "?after=0", max_queue=None) as ws:
        await ws.recv()
        started = time.monotonic()
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        entries = 0
        async with asyncio.timeout(10):
            while (frame := json.loads(await ws.recv()))["type"] != "pong":
                entries += 1
        assert frame["id"] == "p" and time.monotonic() - started < 1.0
        assert entries < 50_000  # it overtook the backlog it had not been sent yet


def test_churn_leaves_no_peer_no_fd_and_the_server_serves(server: Running) -> None:
    with api(server) as http:
        http.get("/api/status")
        time.sleep(0.3)
        fds_before = open_fds(server.proc.pid)
        linger_rst = struct.pack("ii", 1, 0)
        for i in range(1000):
            sock = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5)
            if i % 3 == 0:  # reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_rst)
            elif i % 3 == 1:  # half-open: we stop writing, then vanish
                sock.sendall(b"half\n")
                sock.shutdown(socket.SHUT_WR)
            else:  # garbage, then gone
                sock.sendall(os.urandom(64))
            sock.close()
        wait_until(lambda: not http.get("/api/status").json()["peers"], 30)
        wait_until(lambda: open_fds(server.proc.pid) <= fds_before + 2, 10)
        with dial(f"127.0.0.1:{server.tcp_port}") as sock:
            wait_until(lambda: http.get("/api/status").json()["peers"])
            assert http.post("/api/messages", json={"text": "alive"}).status_code == 202
            assert recv_until(sock, b"\n") == b"alive\n"


def test_odd_http_requests_get_4xx_not_5xx(server: Running) -> None:
    with api(server) as http:
        odd = [
            ("GET", "/api/messages?after=abc", None),
            ("GET", "/api/messages?limit=-5", None),
            ("POST", "/api/messages", b"\xff\xfe garbage"),
            ("POST", "/api/messages", b'{"text": 5}'),
            ("PUT", "/api/messages", None),
            ("GET", "/ws", None),
            ("GET", "/%00", None),
        ]
        for method, path, body in odd:
            status = http.request(method, path, content=body).status_code
            assert 400 <= status < 500, (method, path, status)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as raw:
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")


def test_an_oversized_or_malformed_browser_frame_closes_only_that_socket(
    server: Running,
) -> None:
    url = f"ws://127.0.0.1:{server.http_port}/ws"
    with ws_connect(url, max_size=None) as big, ws_connect(url) as bystander:
        big.recv(timeout=5)
        big.send(json.dumps({"type": "send", "text": "x" * (2 * MIB)}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                big.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        garbage = stalled_websocket(server.http_port)
        with garbage:
            garbage.sendall(b"\x8f\x85" + os.urandom(64))  # reserved opcode, unmasked junk
            garbage.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while garbage.recv(65536):
                    pass
        bystander.send(json.dumps({"type": "send", "text": "still fine"}))
        frames = iter(lambda: json.loads(bystander.recv(timeout=5)), None)
        error = next(f for f in frames if f["type"] == "error")
        assert "no TCP client is connected" in error["detail"]


def test_a_text_frame_that_is_not_utf8_closes_with_1007_and_one_log_line(
    server: Running,
) -> None:
    for _ in range(3):
        with stalled_websocket(server.http_port) as sock:
            mask = os.urandom(4)
            payload = b"\xff\xfe not utf-8"
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
            sock.settimeout(5)
            tail = b""
            while b"\x88\x02\x03\xef" not in tail:  # a close frame with code 1007
                chunk = sock.recv(65536)
                assert chunk, "closed without a 1007 close frame"
                tail += chunk
    server.proc.terminate()
    assert server.proc.stderr is not None
    log = server.proc.stderr.read()
    assert "Traceback" not in log and log.count("not UTF-8; closed it with 1007") == 3


def test_a_websocket_that_stops_answering_pings_is_released_even_with_a_full_buffer() -> None:
    pings = ("--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.3")
    with (
        Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", *pings) as running,
        api(running) as http,
        dial(f"127.0.0.1:{running.tcp_port}") as talker,
    ):
        wait_until(lambda: http.get("/api/status").json()["peers"])
        talker.sendall(b"".join(b"%d %s\n" % (i, b"f" * 1000) for i in range(4000)))
        wait_until(lambda: http.get("/api/status").json()["peers"][0]["bytes_in"] > 4_000_000)
        frozen = stalled_websocket(running.http_port, "?after=0")  # its buffers fill at once
        ours = (running.http_port, frozen.getsockname()[1])
        wait_until(lambda: http.get("/api/status").json()["subscribers"] == 1)
        assert ours in tcp_connections()
        wait_until(lambda: http.get("/api/status").json()["subscribers"] == 0, 10)
        wait_until(lambda: ours not in tcp_connections(), 5)  # the server's socket is gone
        frozen.settimeout(5)
        with pytest.raises(ConnectionResetError):  # RST: nothing is left queued for it
            while frozen.recv(1 << 20):
                pass
        frozen.close()


def close_code(data: bytes) -> int | None:
    """The code of the close frame among unmasked server frames, None if there is none."""
    while len(data) >= 2:
        opcode, size, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if size == 126:
            size, at = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, at = struct.unpack("!Q", data[2:10])[0], 10
        if opcode == 0x8:
            return int(struct.unpack("!H", data[at : at + 2])[0])
        data = data[at + size :]
    return None


def test_sigterm_with_stalled_readers_closes_every_one_with_1001_and_no_traceback() -> None:
    with (
        Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet") as running,
        api(running) as http,
        dial(f"127.0.0.1:{running.tcp_port}") as talker,
    ):
        wait_until(lambda: http.get("/api/status").json()["peers"])
        talker.sendall(b"".join(b"%d %s\n" % (i, b"s" * 1000) for i in range(3000)))
        wait_until(lambda: http.get("/api/status").json()["peers"][0]["bytes_in"] > 3_000_000)
        frozen = [stalled_websocket(running.http_port, "?after=0") for _ in range(5)]
        wait_until(lambda: http.get("/api/status").json()["subscribers"] == 5)
        time.sleep(0.5)  # their buffers are full: each handler waits in a send
        running.proc.terminate()
        for sock in frozen:  # they read again while webchat is stopping
            sock.settimeout(5)
            data = b""
            while chunk := sock.recv(1 << 20):
                data += chunk
            assert close_code(data) == 1001
            sock.close()
        assert running.proc.wait(10) == 0
        assert running.proc.stderr is not None
        log = running.proc.stderr.read()
    assert "Traceback" not in log and "CancelledError" not in log, log


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, so the disk really fills."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        for _ in range(4096):
            out.write(b"\0" * 4096)
            out.flush()
    return filler


def test_a_full_disk_refuses_sends_holds_peers_and_heals_by_itself(small_disk: Path) -> None:
    args = ("server", "--tcp-port", "0", "--http-port", "0", "--quiet")
    with (
        Running(*args, "--db", str(small_disk / "t.sqlite3")) as running,
        api(running) as http,
        dial(f"127.0.0.1:{running.tcp_port}") as talker,
    ):
        wait_until(lambda: http.get("/api/status").json()["peers"])
        filler = fill(small_disk)
        lines = [b"line %d %s\n" % (i, b"x" * 200) for i in range(200)]
        talker.sendall(b"".join(lines))
        wait_until(lambda: http.get("/api/status").json()["store"]["ok"] is False)
        store = http.get("/api/status").json()["store"]
        assert "disk is full" in store["error"] and store["since"]
        before = rss_kb(running.proc.pid)
        for _ in range(150):
            refused = http.post("/api/messages", json={"text": "y" * 1_000_000})
            assert refused.status_code == 503 and "disk is full" in refused.json()["detail"]
        assert rss_kb(running.proc.pid) - before < 30 * 1024
        late = dial(f"127.0.0.1:{running.tcp_port}")  # arrives while the disk is full: waits
        time.sleep(0.5)
        assert len(http.get("/api/status").json()["peers"]) == 1
        filler.unlink()
        wait_until(lambda: http.get("/api/status").json()["store"]["ok"], 5)
        wait_until(lambda: len(http.get("/api/status").json()["peers"]) == 2, 5)
        assert http.post("/api/messages", json={"text": "healed"}).status_code == 202
        assert recv_until(talker, b"healed\n").endswith(b"healed\n")
        kept = http.get("/api/messages", params={"q": "line ", "limit": 1000}).json()
        assert [m["text"] for m in kept["messages"]] == [x[:-1].decode() for x in lines]
        late.close()
        running.proc.terminate()
        assert running.proc.stderr is not None
        log = running.proc.stderr.read()
    assert "Traceback" not in log and log.count("disk is full") == 1, log
    assert log.count("writable again") == 1
