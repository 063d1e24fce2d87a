"""The asyncio TCP roles: a server for many peers, a client that reconnects.

Both roles share `Peer` (one connection: its framer, counters and bounded
write side) and `_pump` (its read loop). A read loop awaits `hub.record()`
before reading again, so a flood is paced at the socket by what the store
takes. Writes never wait for a slow reader: past `write_limit` queued bytes a
peer gets `drain_timeout` seconds to catch up, then only that peer is dropped.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, Literal, Protocol, cast

from webchat.framing import FLUSH_AFTER, FramingError, FramingName, make_framer
from webchat.hub import Hub
from webchat.model import Entry, Event, Message, iso_utc, peer_name
from webchat.store import StoreError

READ_SIZE = 64 * 1024
BACKLOG = 4096
"""Pending connections the kernel queues; asyncio's default of 100 drops bursts of clients."""
CONNECT_TIMEOUT = 10.0
TLS_HANDSHAKE_TIMEOUT = 10.0
STABLE_AFTER = 5.0
"""Seconds a connection must last before the reconnect backoff starts over, so a server
that accepts and hangs up at once is not hammered every half second (websockets does so too)."""
STOP_TIMEOUT = 2.0
"""Seconds peers get to read our FIN and close before their tasks are cancelled."""
_HARD_LIMIT_FACTOR = 4
"""Past this multiple of write_limit a peer is dropped at once: the timeout must not cost memory."""


class SendError(Exception):
    """A send that cannot be carried out; `status` is the HTTP status the API answers."""

    status = 409


class NotConnected(SendError):
    status = 409


class UnknownPeer(SendError):
    status = 404


class Unframeable(SendError):
    status = 422


class Peer:
    """One TCP connection, as the roles, the API and the page see it."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framing: FramingName,
        max_line: int,
        write_limit: int,
        drain_timeout: float,
    ) -> None:
        address = writer.get_extra_info("peername")
        if address is None:  # reset before the transport could ask getpeername()
            raise ConnectionResetError("peer left before it could be named")
        host, port = address[:2]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        self.host = host
        self.name = peer_name(host, port)
        self.reader = reader
        self.writer = writer
        self.framer = make_framer(framing, max_line)
        self.connected_at = time.time()
        self.bytes_in = 0
        self.bytes_out = 0
        self.drop_reason: str | None = None
        self._write_limit = write_limit
        self._drain_timeout = drain_timeout
        self._watchdog: asyncio.Task[None] | None = None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            keepalive(sock)
        writer.transport.set_write_buffer_limits(high=write_limit)

    def status(self) -> dict[str, object]:
        return {
            "peer": self.name,
            "connected_at": iso_utc(self.connected_at),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """The server side of a TLS handshake on this connection, before any payload."""
        await self.writer.start_tls(context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        self.writer.transport.set_write_buffer_limits(high=self._write_limit)  # a new transport

    def write(self, data: bytes) -> None:
        transport = self.writer.transport
        if transport.is_closing():
            return
        transport.write(data)
        self.bytes_out += len(data)
        queued = transport.get_write_buffer_size()
        if queued > self._write_limit * _HARD_LIMIT_FACTOR:
            self.drop(f"not reading: {queued} bytes unsent")
        elif queued > self._write_limit and self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch_drain())

    async def _watch_drain(self) -> None:
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self.writer.drain()
        except TimeoutError:
            self.drop(f"not reading: write buffer full for {self._drain_timeout:g} s")
        except OSError:
            pass  # the read loop sees the same failure and records it
        finally:
            self._watchdog = None

    def drop(self, reason: str) -> None:
        """Abort the connection (RST); the read loop records `reason`."""
        self.drop_reason = self.drop_reason or reason
        self.writer.transport.abort()

    def close(self, reason: str) -> None:
        """Orderly close: queued bytes go out, then our FIN."""
        self.drop_reason = self.drop_reason or reason
        self.writer.close()


KEEPALIVE = {"TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 5}
"""A silent dead peer is noticed after about 2 minutes, not the system's default 2 hours."""


def keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):  # not every platform has all three
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def describe_error(exc: BaseException) -> str:
    """An OSError in the words of netcat users: 'connection refused', not '[Errno 111]'."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {(exc.reason or str(exc)).replace('_', ' ').lower()}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    return str(exc) or type(exc).__name__


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening socket for either side; `::` also takes IPv4 where the OS allows."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def backoff(first: float = 0.5, cap: float = 10.0) -> Iterator[float]:
    """Reconnect delays, restarted after each success (websockets' `backoff()`)."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


class Role(Protocol):
    kind: Literal["server", "client"]

    @property
    def address(self) -> str: ...

    @property
    def peers(self) -> dict[str, Peer]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, data: bytes, to: str | None) -> Entry: ...


class _Base(abc.ABC):
    """What both roles share: peers, the read loop, sending, stopping."""

    def __init__(
        self,
        hub: Hub,
        framing: FramingName,
        max_line: int,
        write_limit: int,
        drain_timeout: float,
        idle_timeout: float | None,
    ) -> None:
        self._hub = hub
        self._idle_timeout = idle_timeout
        self._framing: FramingName = framing
        self._max_line = max_line
        self._write_limit = write_limit
        self._drain_timeout = drain_timeout
        self._peers: dict[str, Peer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._encoder = make_framer(framing, max_line)

    @property
    def peers(self) -> dict[str, Peer]:
        return self._peers

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._track(task)
        return task

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _new_peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Peer:
        return Peer(
            reader, writer, self._framing, self._max_line, self._write_limit, self._drain_timeout
        )

    @abc.abstractmethod
    def _not_connected(self) -> str:
        """Why a send failed with no peer, and what to do about it."""

    async def send(self, data: bytes, to: str | None) -> Entry:
        """Record the `out` entry, then write: the transcript never shows a reply first."""
        if not self._peers:
            raise NotConnected(self._not_connected())
        if to is None:
            targets = list(self._peers.values())
        elif to in self._peers:
            targets = [self._peers[to]]
        else:
            raise UnknownPeer(f"no peer named {to!r}; connected: {', '.join(self._peers)}")
        try:
            wire = self._encoder.encode(data)
        except FramingError as exc:
            raise Unframeable(f"{self._framing} framing: {exc}") from None
        (entry,) = await self._hub.record([Message.sent(to, data)])
        for peer in targets:
            peer.write(wire)
        return entry

    async def _pump(self, peer: Peer, relay: Callable[[Peer, bytes], None] | None) -> None:
        """Read `peer` until it closes; record what it says, then its departure."""
        reason = "closed by peer"
        reader, framer, record = peer.reader, peer.framer, self._hub.record
        idle = self._idle_timeout
        clock = asyncio.get_running_loop().time
        heard = clock()
        try:
            while True:
                waits = [FLUSH_AFTER] if framer.pending else []
                if idle:
                    waits.append(heard + idle - clock())
                try:
                    if waits:
                        async with asyncio.timeout(max(0.0, min(waits))):
                            data = await reader.read(READ_SIZE)
                    else:
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    if idle and clock() - heard >= idle:
                        reason = f"idle: said nothing for {idle:g} s (--idle-timeout)"
                        break
                    payloads = framer.flush()
                else:
                    heard = clock()
                    if not data:
                        break
                    peer.bytes_in += len(data)
                    payloads = framer.feed(data)
                    if relay is not None:
                        relay(peer, data)
                if payloads:
                    await record([Message.received(peer.name, p) for p in payloads])
                if framer.error is not None:
                    reason = f"protocol error: {framer.error}"
                    break
        except OSError as exc:
            reason = describe_error(exc)
        except StoreError as exc:
            self._lost(peer, exc)
            return
        self._peers.pop(peer.name, None)
        peer.writer.close()
        tail: list[Entry] = [Message.received(peer.name, p) for p in framer.flush()]
        tail.append(Event("disconnected", peer.name, peer.drop_reason or reason))
        with contextlib.suppress(StoreError):
            await record(tail)

    def _lost(self, peer: Peer, exc: StoreError) -> None:
        """The transcript cannot keep what this peer says, so stop reading it rather than
        show messages nobody can find again."""
        self._peers.pop(peer.name, None)
        peer.drop(str(exc))
        sys.stderr.write(f"webchat: error: {exc}; dropped {peer.name}\n")

    async def _stop_peers(self) -> None:
        for peer in list(self._peers.values()):
            peer.close("webchat shutting down")
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)


class _PausedUntilTls(asyncio.StreamReaderProtocol):
    """Reads nothing until `start_tls`: a ClientHello read into the stream buffer first
    would be lost to the handshake (uvloop reads at once and loses it every time)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.ReadTransport, transport).pause_reading()  # uvloop's are not subclasses
        super().connection_made(transport)


class TcpServer(_Base):
    """Accepts any number of peers (or `max_clients`); `relay` makes them a chat room."""

    kind: Literal["server", "client"] = "server"

    def __init__(
        self,
        hub: Hub,
        sock: socket.socket,
        *,
        framing: FramingName,
        max_line: int,
        max_clients: int,
        relay: bool,
        write_limit: int,
        drain_timeout: float,
        idle_timeout: float | None = None,
        refusal: Callable[[str], str | None] = lambda host: None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(hub, framing, max_line, write_limit, drain_timeout, idle_timeout)
        self._refusal = refusal
        self._tls = tls
        self._sock = sock
        self._max_clients = max_clients
        self._relay = relay
        self._server: asyncio.Server | None = None
        host, port = sock.getsockname()[:2]
        self._address = peer_name(host, port)

    @property
    def address(self) -> str:
        return self._address

    def _not_connected(self) -> str:
        nc = self._address.rpartition(":")
        return f"no TCP client is connected; connect one, e.g. nc {nc[0].strip('[]')} {nc[2]}"

    async def start(self) -> None:
        def protocol() -> asyncio.StreamReaderProtocol:
            reader = asyncio.StreamReader(limit=READ_SIZE)
            kind = _PausedUntilTls if self._tls else asyncio.StreamReaderProtocol
            return kind(reader, self._accept)

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(protocol, sock=self._sock, backlog=BACKLOG)
        await self._hub.record(
            [Event("listening", None, f"waiting for clients on {self._address}")]
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._stop_peers()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        try:
            peer = self._new_peer(reader, writer)
        except OSError:
            writer.transport.abort()  # gone before we could ask its address
            return
        refused = self._refusal(peer.host)
        if refused is not None:
            writer.transport.abort()
            await self._hub.record([Event("rejected", peer.name, refused)])
            return
        if self._tls is not None:
            try:
                await peer.start_tls(self._tls)
            except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
                writer.transport.abort()
                why = f"TLS handshake failed: {describe_error(exc)}"
                await self._hub.record([Event("rejected", peer.name, why)])
                return
        if self._max_clients and len(self._peers) >= self._max_clients:
            plural = "" if self._max_clients == 1 else "s"
            why = f"server full ({self._max_clients} client{plural} max)"
            writer.write(f"webchat: {why}\n".encode())
            writer.close()
            await self._hub.record([Event("rejected", peer.name, why)])
            return
        self._peers[peer.name] = peer
        await self._hub.record([Event("connected", peer.name, f"{len(self._peers)} connected")])
        await self._pump(peer, self._relay_chunk if self._relay else None)

    def _relay_chunk(self, source: Peer, data: bytes) -> None:
        """Forward the bytes as they came, as `ncat --broker` does."""
        for peer in self._peers.values():
            if peer is not source:
                peer.write(data)


class TcpClient(_Base):
    """Connects to `host:port` and keeps reconnecting, recording only changes of state."""

    kind: Literal["server", "client"] = "client"

    def __init__(
        self,
        hub: Hub,
        host: str,
        port: int,
        *,
        framing: FramingName,
        max_line: int,
        write_limit: int,
        drain_timeout: float,
        idle_timeout: float | None = None,
        on_connect: Sequence[bytes] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(hub, framing, max_line, write_limit, drain_timeout, idle_timeout)
        self._on_connect = list(on_connect)
        self._tls = tls
        self._host = host
        self._port = port
        self._address = peer_name(host, port)
        self._retry_at = 0.0
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return self._address

    def _not_connected(self) -> str:
        wait = max(0.0, self._retry_at - asyncio.get_running_loop().time())
        return (
            f"not connected to {self._address}; retrying in {wait:.1f} s, send again once connected"
        )

    async def start(self) -> None:
        self._runner = self._spawn(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if not self._peers and self._runner is not None:
            self._runner.cancel()  # between attempts: nothing to close in order
        await self._stop_peers()

    async def _greet(self) -> None:
        """`--on-connect`, on every connection: a login must not be forgotten after a reconnect."""
        for data in self._on_connect:
            try:
                await self.send(data, None)
            except SendError:
                return  # gone again already; the read loop records why

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delays = backoff()
        failing = False
        while True:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    reader, writer = await asyncio.open_connection(
                        self._host,
                        self._port,
                        limit=READ_SIZE,
                        ssl=self._tls,
                        server_hostname=self._host if self._tls else None,
                        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._tls else None,
                    )
                peer = self._new_peer(reader, writer)
            except OSError as exc:
                if not failing:
                    failing = True
                    detail = f"{describe_error(exc)}; retrying with backoff up to 10 s"
                    await self._hub.record([Event("connect_failed", self._address, detail)])
                delay = next(delays)
                self._retry_at = loop.time() + delay
                await asyncio.sleep(delay)
                continue
            failing = False
            self._peers[peer.name] = peer
            await self._hub.record([Event("connected", peer.name, f"connected to {self._address}")])
            await self._greet()
            connected_at = loop.time()
            await self._pump(peer, None)
            if self._stopping:
                return
            if loop.time() - connected_at >= STABLE_AFTER:
                delays = backoff()
            delay = next(delays)
            self._retry_at = loop.time() + delay
            await asyncio.sleep(delay)
