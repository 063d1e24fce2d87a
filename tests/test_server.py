"""Both TCP roles over real sockets on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from tests.conftest import OPENED, Recorder
from webchat.hub import Hub
from webchat.model import Message
from webchat.roles import server as server_module
from webchat.roles.base import TooLarge
from webchat.roles.net import bind_listener
from webchat.roles.peer import PeerOptions
from webchat.roles.server import TcpServer
from webchat.store.memory import MemoryStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("close_test_peers")]


def make_server(rec: Recorder, **options: object) -> TcpServer:
    hub = Hub(MemoryStore(1000), [rec])
    role = {k: options.pop(k) for k in ("max_clients", "relay", "refusal") if k in options}
    peers = PeerOptions(write_limit=65536, drain_timeout=5.0, **options)  # type: ignore[arg-type]
    return TcpServer(hub, bind_listener("127.0.0.1", 0), peers, **role)  # type: ignore[arg-type]


async def open_peer(server: TcpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, _, port = server.address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    OPENED.append(writer)
    return reader, writer


async def assert_silent(reader: asyncio.StreamReader) -> None:
    """The peer hears nothing within 0.1 s."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await reader.readline()


async def test_server_talks_to_many_peers_to_all_and_to_one() -> None:
    rec = Recorder()
    server = make_server(rec)
    await server.start()
    peers = [await open_peer(server) for _ in range(5)]
    await rec.wait(lambda: len(server.peers) == 5)
    names = list(server.peers)
    assert all(name.startswith("127.0.0.1:") for name in names)

    for i, (_, writer) in enumerate(peers):
        writer.write(f"hi from {i}\n".encode())
    await rec.wait(lambda: len(rec.texts()) == 5)
    assert sorted(rec.texts()) == [f"hi from {i}" for i in range(5)]

    await server.send(b"to everyone", None)
    for reader, _ in peers:
        assert await reader.readline() == b"to everyone\n"

    own_port = peers[2][1].get_extra_info("sockname")[1]
    target = f"127.0.0.1:{own_port}"
    entry = await server.send(b"just you", target)
    assert isinstance(entry, Message) and entry.peer == target and entry.id > 0
    assert await peers[2][0].readline() == b"just you\n"
    for i, (reader, _) in enumerate(peers):
        if i != 2:
            await assert_silent(reader)
    await server.stop()


async def test_partial_line_is_heard_after_silence() -> None:
    rec = Recorder()
    server = make_server(rec)
    await server.start()
    _, writer = await open_peer(server)
    writer.write(b"hello")
    await rec.wait(lambda: rec.texts() == ["hello"], timeout=2)
    await server.stop()


async def test_a_half_closed_peer_keeps_getting_replies_then_is_closed_after_the_linger() -> None:
    rec = Recorder()
    server = make_server(rec, half_close_linger=0.5)
    await server.start()
    reader, writer = await open_peer(server)
    writer.write(b"question?\nno newline")
    writer.write_eof()
    await rec.wait(lambda: rec.events("half_closed"))
    assert rec.texts() == ["question?", "no newline"]  # its partial line is complete now
    assert rec.events("half_closed")[0].detail == "peer finished sending"
    (peer,) = server.peers.values()
    assert peer.status()["half_closed"] is True
    await asyncio.sleep(0.3)
    await server.send(b"answer", None)  # a write restarts the linger
    assert await reader.readline() == b"answer\n"
    await asyncio.sleep(0.3)
    assert not rec.events("disconnected")
    assert await reader.read() == b""  # then our FIN
    (gone,) = rec.events("disconnected")
    assert gone.detail == "finished sending, and we said nothing more for 0.5 s"
    await server.stop()


async def test_without_half_close_an_eof_is_a_close() -> None:
    rec = Recorder()
    server = make_server(rec, half_close_linger=None)
    await server.start()
    reader, writer = await open_peer(server)
    writer.write(b"q\n")
    writer.write_eof()
    assert await reader.read() == b""
    await rec.wait(lambda: rec.events("disconnected"))
    assert not rec.events("half_closed")
    await server.stop()


@pytest.mark.parametrize(
    ("options", "end"),
    [({"framing": "crlf", "flush_after": None}, b"\r\n"), ({"flush_after": None}, b"\n")],
)
async def test_without_a_flush_a_line_split_by_a_pause_stays_one_line(
    options: dict[str, object], end: bytes
) -> None:
    rec = Recorder()
    server = make_server(rec, **options)
    await server.start()
    _, writer = await open_peer(server)
    writer.write(b"PING :irc.exa")
    await asyncio.sleep(0.5)  # longer than line framing's 0.2 s, and a retransmission's wait
    assert rec.texts() == []
    writer.write(b"mple.org" + end + b"tail")
    await rec.wait(lambda: rec.texts() == ["PING :irc.example.org"])
    writer.close()
    await rec.wait(lambda: rec.texts() == ["PING :irc.example.org", "tail"])
    await server.stop()


async def test_server_full_rejects_with_a_line_and_an_event() -> None:
    rec = Recorder()
    server = make_server(rec, max_clients=1)
    await server.start()
    await open_peer(server)
    await rec.wait(lambda: len(server.peers) == 1)
    reader, _ = await open_peer(server)
    assert await reader.read() == b"webchat: server full (1 client max)\n"
    await rec.wait(lambda: rec.events("rejected"))
    assert rec.events("rejected")[0].detail == "server full (1 client max)"
    assert len(server.peers) == 1
    await server.stop()


async def test_refusals_are_one_entry_a_minute_per_address_plus_a_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "WINDOW", 0.5)
    rec = Recorder()
    server = make_server(rec, refusal=lambda host: "address in denied network (--deny)")
    await server.start()
    for _ in range(30):
        reader, _ = await open_peer(server)
        with contextlib.suppress(ConnectionError):
            await reader.read()
    await asyncio.sleep(0.1)
    assert [e.detail for e in rec.events("rejected")] == ["address in denied network (--deny)"]
    await rec.wait(lambda: len(rec.events("rejected")) == 2, timeout=2)
    tally = rec.events("rejected")[1]
    assert tally.peer == "127.0.0.1"
    assert (
        tally.detail
        == "29 more connections refused in 0.5 s; last: address in denied network (--deny)"
    )
    reader, _ = await open_peer(server)  # a new minute: recorded at once again
    await rec.wait(lambda: len(rec.events("rejected")) == 3, timeout=2)
    reader, _ = await open_peer(server)
    await asyncio.sleep(0.1)
    await server.stop()  # the count still open is kept, not lost
    assert rec.events("rejected")[-1].detail.startswith("1 more connection refused")


async def test_relay_forwards_each_message_to_the_other_peers() -> None:
    rec = Recorder()
    server = make_server(rec, relay=True)
    await server.start()
    a, b, c = [await open_peer(server) for _ in range(3)]
    await rec.wait(lambda: len(server.peers) == 3)
    a[1].write(b"room message\r\n")
    assert await b[0].readline() == b"room message\r\n"
    assert await c[0].readline() == b"room message\r\n"
    await assert_silent(a[0])
    await server.stop()


async def test_departure_is_recorded_and_stop_sends_fin() -> None:
    rec = Recorder()
    server = make_server(rec, half_close_linger=None)
    await server.start()
    _, leaving = await open_peer(server)
    staying_reader, _ = await open_peer(server)
    await rec.wait(lambda: len(server.peers) == 2)
    leaving.close()
    await rec.wait(lambda: rec.events("disconnected"))
    assert rec.events("disconnected")[0].detail == "closed by peer"
    await server.stop()
    assert await staying_reader.read() == b""  # an orderly FIN, not a reset
    assert [e.detail for e in rec.events("disconnected")][1] == "webchat shutting down"


@pytest.mark.parametrize(
    "anyio_backend", [("asyncio", {"use_uvloop": True})], ids=["uvloop"]
)  # the CLI runs on uvloop, which reports a reset peer's address as None
async def test_connect_and_reset_churn_leaves_no_peer_and_no_error() -> None:
    rec = Recorder()
    server = make_server(rec)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    await server.start()
    host, _, port = server.address.rpartition(":")

    def churn() -> None:
        for _ in range(200):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST at once, often before the server has accepted

    await asyncio.to_thread(churn)
    await rec.wait(
        lambda: not server.peers and len(rec.events("connected")) == len(rec.events("disconnected"))
    )
    _, writer = await open_peer(server)
    writer.write(b"still serving\n")
    await rec.wait(lambda: rec.texts() == ["still serving"])
    await server.stop()
    loop.set_exception_handler(None)
    assert errors == []


async def test_send_without_peers_and_to_unknown_peer_fail_clearly() -> None:
    from webchat.roles.base import NotConnected, UnknownPeer

    server = make_server(Recorder())
    await server.start()
    with pytest.raises(NotConnected, match="no TCP client is connected"):
        await server.send(b"x", None)
    await open_peer(server)
    await asyncio.sleep(0.05)
    with pytest.raises(UnknownPeer, match="no peer named"):
        await server.send(b"x", "10.0.0.1:1")
    await server.stop()


async def test_peers_get_tcp_keepalive() -> None:
    rec = Recorder()
    server = make_server(rec)
    await server.start()
    await open_peer(server)
    await rec.wait(lambda: server.peers)
    (peer,) = server.peers.values()
    sock = peer.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
    await server.stop()


async def test_a_file_stops_at_its_limit_and_says_how_much_went_out() -> None:
    rec = Recorder()
    server = make_server(rec, max_line=1000)
    await server.start()
    reader, _ = await open_peer(server)
    await rec.wait(lambda: server.peers)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"z" * 1500

    with pytest.raises(TooLarge, match="its first 4000 bytes were sent"):
        await server.send_file(chunks(), None, limit=5000)
    assert await reader.readexactly(4000) == b"z" * 4000
    assert [len(t) for t in rec.texts("out")] == [1000] * 4
    await server.stop()
