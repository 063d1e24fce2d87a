"""The client role against real listening sockets on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import itertools
import socket
from dataclasses import replace

import pytest

from tests.conftest import OPENED, Recorder
from webchat.hub import Hub
from webchat.model import Message
from webchat.roles.base import SendError
from webchat.roles.client import TcpClient
from webchat.roles.net import backoff
from webchat.roles.peer import PeerOptions
from webchat.store.memory import MemoryStore

OPTIONS = PeerOptions(max_line=1024, write_limit=65536, drain_timeout=5)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_test_peers")]


async def test_backoff_doubles_from_half_a_second_to_ten() -> None:
    delays = backoff()
    assert [next(delays) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


async def test_client_reconnects_and_records_only_changes() -> None:
    rec = Recorder()
    hub = Hub(MemoryStore(1000), [rec])
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = TcpClient(hub, "127.0.0.1", port, OPTIONS)
    await client.start()
    await rec.wait(lambda: rec.events("connect_failed"))
    await asyncio.sleep(1.2)  # at least two more attempts fail
    assert len(rec.events("connect_failed")) == 1

    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put((r, w))

    listener = await asyncio.start_server(on_connect, "127.0.0.1", port)
    reader, writer = await asyncio.wait_for(accepted.get(), 5)
    OPENED.append(writer)
    await rec.wait(lambda: rec.events("connected"))
    writer.write(b"from server\n")
    await rec.wait(lambda: rec.texts() == ["from server"])
    await client.send(b"from client", None)
    assert await reader.readline() == b"from client\n"

    writer.close()
    listener.close()
    await listener.wait_closed()
    await rec.wait(lambda: rec.events("disconnected"))
    listener = await asyncio.start_server(on_connect, "127.0.0.1", port)
    reader, writer = await asyncio.wait_for(accepted.get(), 5)
    OPENED.append(writer)
    await rec.wait(lambda: len(rec.events("connected")) == 2)
    await client.send(b"again", None)
    assert await reader.readline() == b"again\n"
    await client.stop()
    assert await reader.read() == b""
    listener.close()
    await listener.wait_closed()


async def test_client_sends_its_login_on_every_connection() -> None:
    rec = Recorder()
    hub = Hub(MemoryStore(1000), [rec])
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await accepted.put((r, w))

    listener = await asyncio.start_server(on_accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = TcpClient(
        hub,
        "127.0.0.1",
        port,
        replace(OPTIONS, framing="crlf"),
        on_connect=[b"USER bob", b"\x00ping"],
    )
    await client.start()
    for _ in range(2):  # the first connection, then a reconnect after the server hangs up
        reader, writer = await asyncio.wait_for(accepted.get(), 10)
        OPENED.append(writer)
        assert await reader.readexactly(17) == b"USER bob\r\n\x00ping\r\n"
        writer.close()
    outs = [e for e in rec.entries if isinstance(e, Message) and e.direction == "out"]
    assert [m.data for m in outs] == [b"USER bob", b"\x00ping"] * 2
    await client.stop()
    listener.close()
    await listener.wait_closed()


async def test_a_server_that_hangs_up_at_once_is_not_hammered() -> None:
    rec = Recorder()
    hub = Hub(MemoryStore(1000), [rec])
    accepted: list[float] = []

    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(asyncio.get_running_loop().time())
        w.close()

    listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = TcpClient(hub, "127.0.0.1", port, OPTIONS)
    await client.start()
    await rec.wait(lambda: len(accepted) >= 4, timeout=10)
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert gaps[1] > gaps[0] * 1.5 and gaps[2] > gaps[1] * 1.5  # 0.5 s, 1 s, 2 s: backing off
    await client.stop()
    listener.close()
    await listener.wait_closed()


async def test_disconnect_holds_the_connection_until_connect_now() -> None:
    rec = Recorder()
    hub = Hub(MemoryStore(1000), [rec])
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        OPENED.append(w)
        await accepted.put((r, w))

    listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    client = TcpClient(hub, "127.0.0.1", port, OPTIONS)
    await client.start()
    reader, _ = await asyncio.wait_for(accepted.get(), 5)
    await rec.wait(lambda: client.connection()["state"] == "connected")
    assert client.connection() == {
        "target": f"127.0.0.1:{port}",
        "state": "connected",
        "retry_in": None,
    }
    client.disconnect()
    assert await reader.read() == b""  # our FIN
    await rec.wait(lambda: client.connection()["state"] == "stopped")
    assert "disconnected from webchat" in rec.events("disconnected")[0].detail
    await asyncio.sleep(0.8)  # no reconnect while held, even past the first backoff
    assert accepted.empty() and not client.peers
    with pytest.raises(SendError, match="connect again"):
        await client.send(b"x", None)
    client.connect_now()
    await asyncio.wait_for(accepted.get(), 5)
    await rec.wait(lambda: client.connection()["state"] == "connected")
    await client.stop()
    listener.close()
    await listener.wait_closed()


async def test_connect_now_cuts_a_retry_short() -> None:
    rec = Recorder()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = TcpClient(
        Hub(MemoryStore(1000), [rec]),
        "127.0.0.1",
        port,
        OPTIONS,
    )
    await client.start()
    for _ in range(4):  # the backoff reaches 4 s
        await rec.wait(lambda: client.connection()["state"] == "retrying")
        client.connect_now()
        await asyncio.sleep(0.05)
    listener = await asyncio.start_server(lambda r, w: OPENED.append(w), "127.0.0.1", port)
    await rec.wait(lambda: client.connection()["state"] == "retrying")
    assert float(str(client.connection()["retry_in"])) > 1
    client.connect_now()
    await rec.wait(lambda: client.connection()["state"] == "connected", timeout=1)
    await client.stop()
    listener.close()
    await listener.wait_closed()
