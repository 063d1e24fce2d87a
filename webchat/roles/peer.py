"""One TCP peer as an `asyncio.Protocol`: no streams, and no task while it is idle.

Reading goes on while the peer's entries are committed, a bounded amount
ahead of the store, then pauses until it catches up (`Intake`, which takes
pause and resume as callables, as websockets' `Assembler` does), so a flood
is paced at the socket by what the store takes.
The partial-line flush and the idle timeout are timers, re-armed lazily: a
busy peer costs a clock read per chunk, not a timer. Writes never wait: past
`write_limit` queued bytes a peer has `drain_timeout` seconds to catch up,
past four times that it is dropped at once; either way only that peer goes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from webchat.framing import Framer
from webchat.model import Entry, Event, Message, TlsDetails, decode, iso_utc, peer_name
from webchat.roles.intake import Budget, Intake
from webchat.roles.net import describe_error, keepalive
from webchat.store import StoreError
from webchat.telnet import TelnetFilter
from webchat.types import FramingName

HARD_LIMIT_FACTOR = 4
"""Past this multiple of write_limit a peer is dropped at once: the timeout must not cost memory."""


@dataclass(frozen=True, slots=True)
class PeerOptions:
    """How every peer of a role behaves: one value, shared, read from `Settings`."""

    framing: FramingName = "line"
    max_line: int = 65536
    write_limit: int = 1024 * 1024
    drain_timeout: float = 10.0
    idle_timeout: float | None = None
    flush_after: float | None = 0.2
    """Seconds of silence before a partial line is delivered; None waits for the terminator."""
    half_close_linger: float | None = None
    """Seconds a peer that finished sending stays writable after our last write; None
    (the client role, `--no-half-close`) takes its EOF as a close."""
    chat: bool = False
    """`--chat`: lines carry their speaker's name; sends from the page are `<name> text`."""
    telnet: bool = False
    """Refuse telnet options, keep IAC sequences out of the text, end lines at CR NUL too."""


class Owner(Protocol):
    """What a peer needs from its role; one reference per peer instead of several callables."""

    options: PeerOptions
    backlog: Budget
    """What every peer of the role may hold uncommitted, together."""

    def record(self, entries: Sequence[Entry]) -> Awaitable[object]: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> object: ...

    def made(self, peer: Peer) -> None:
        """The connection exists; reading is paused until `Peer.admit`."""

    def lost(self, peer: Peer) -> None:
        """The connection is gone; its last entries are about to be recorded."""

    def relay(self, peer: Peer, data: bytes) -> None: ...

    def framer(self) -> Framer:
        """A new framer for one connection's stream."""


READ_SIZE = 64 * 1024
"""Most bytes one read takes. uvloop reads 256 KiB at a time: framing ~4,000 lines and
building their entries in one callback held every other task for ~10 ms, a send's
latency under a flood among them. Every peer reads into one buffer (`_READ`): a read
and its `buffer_updated` happen together, on one thread, so it is never shared at once."""
_READ = memoryview(bytearray(READ_SIZE))


class Peer(asyncio.BufferedProtocol):
    """One TCP connection, as the roles, the API and the page see it."""

    __slots__ = (
        "_drain_timer",
        "_early",
        "_flush_timer",
        "_framer",
        "_half_closed",
        "_heard",
        "_idle_timer",
        "_intake",
        "_out",
        "_owner",
        "_room",
        "_state",
        "_telnet",
        "active_at",
        "bytes_in",
        "bytes_out",
        "chat_name",
        "connected_at",
        "done",
        "drop_reason",
        "handshaking",
        "host",
        "name",
        "tap",
        "tls",
        "transport",
    )

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self._framer: Framer | None = None  # made on first data: an idle peer costs less
        self.name = self.host = ""
        self.transport = cast(asyncio.Transport, None)
        self.connected_at = self.active_at = time.time()
        self.bytes_in = self.bytes_out = 0
        self.drop_reason: str | None = None
        self.done: asyncio.Future[None] | None = None
        self.handshaking = False
        self.tls: TlsDetails | None = None
        self.chat_name: str | None = None
        self.tap: Callable[[bytes], None] | None = None
        """Also told every chunk read: the STARTTLS preamble listens here."""
        self._state = "new"  # new -> open -> closed; "gone" when lost before it was admitted
        self._early = b""
        self._half_closed = False
        self._out: list[bytes] | None = None
        self._room: asyncio.Future[None] | None = None
        self._heard = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._intake: Intake | None = None  # likewise
        self._telnet = TelnetFilter() if owner.options.telnet else None

    def status(self) -> dict[str, object]:
        """What the roster shows; `pending` growing is the sign of a peer that stopped reading."""
        pending = self.transport.get_write_buffer_size() if self.transport else 0
        shown: dict[str, object] = {
            "peer": self.name,
            "connected_at": iso_utc(self.connected_at),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "last_activity": iso_utc(self.active_at),
            "pending": pending + sum(map(len, self._out or ())),
        }
        # Only where they say something: a plain peer's status keeps the shape it had.
        if self._half_closed:
            shown["half_closed"] = True
        if self.tls is not None:
            shown["tls"] = self.tls
        if self.chat_name is not None:
            shown["name"] = self.chat_name
        return shown

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()  # until admitted: a TLS ClientHello must stay unread
        address = transport.get_extra_info("peername")
        if address is None:  # reset before it could be named
            self._state = "gone"
            self.transport.abort()
            return
        host, port = address[:2]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        self.host, self.name = host, peer_name(host, port)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            keepalive(sock)
        self.limit_writes()
        self._owner.made(self)

    async def settled(self) -> None:
        """Until what the peer said so far is in the transcript."""
        if self._intake is not None:
            await self._intake.settled()

    def limit_writes(self) -> None:
        """Also after STARTTLS-like upgrades: `start_tls` hands back a new transport."""
        self.transport.set_write_buffer_limits(high=self._owner.options.write_limit)

    def admit(self) -> None:
        """The `connected` entry is kept: start reading (or record the departure at once)."""
        if self._state == "gone":  # it left while its arrival was being kept
            self._state = "closed"
            self._owner.lost(self)
            said = self.framer.feed(self._early) if self._early else []
            self._owner.spawn(self._finish(said))
            return
        self._state = "open"
        self._heard = asyncio.get_running_loop().time()
        self._arm_idle()
        self.transport.resume_reading()
        if self._early:
            early, self._early = self._early, b""
            self.data_received(early)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _READ

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_READ[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        if self._state != "open":  # uvloop reads before a new protocol can pause it
            self._early += data
            if not self.handshaking:  # in a TLS handshake, self.transport is the raw one
                self.transport.pause_reading()
            return
        self.bytes_in += len(data)
        self._heard = asyncio.get_running_loop().time()
        self.active_at = time.time()
        if self._telnet is not None:
            data = self._negotiate(data)
        self._owner.relay(self, data)
        framer = self.framer
        payloads = framer.feed(data)
        if payloads:
            self._commit(payloads)
        if self.tap is not None:  # after the lines are taken: the listener's reply follows them
            self.tap(data)
        if framer.error is not None:
            self.close(f"protocol error: {framer.error}")
        elif framer.pending and self._flush_timer is None and self._owner.options.flush_after:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self._owner.options.flush_after, self._flush
            )

    def _negotiate(self, data: bytes) -> bytes:
        """`--telnet`: refuse the options offered, record what was said, keep the text."""
        assert self._telnet is not None
        filtered = self._telnet.feed(data)
        if filtered.reply:
            self.write(filtered.reply)
        if filtered.notes:
            self._take([Event("telnet", self.name, filtered.describe())])
        return filtered.data

    @property
    def framer(self) -> Framer:
        if self._framer is None:
            self._framer = self._owner.framer()
        return self._framer

    def _commit(self, payloads: list[bytes]) -> None:
        name, now = self.name, time.time()  # the lines of one read arrived together
        if self.chat_name is not None:
            said = self.chat_name
            self._take([Message("in", name, p, decode(p), now, name=said) for p in payloads])
            return
        self._take([Message.received(name, p, now) for p in payloads])

    def _take(self, entries: list[Entry]) -> None:
        if self._intake is None:
            owner = self._owner
            self._intake = Intake(
                owner.record, owner.spawn, self._pause, self._resume, owner.backlog
            )
        self._intake.take(entries, self._kept)

    def _kept(self, failure: StoreError | None) -> None:
        if failure is not None:
            sys.stderr.write(f"webchat: error: {failure}; dropped {self.name}\n")
            self.drop(str(failure))
        if self._state == "closed":  # it left while its last batch was being kept
            self._owner.spawn(self._finish())

    def _flush(self) -> None:
        """After `--flush-after` seconds of silence, a partial line is delivered as it is."""
        self._flush_timer = None
        loop = asyncio.get_running_loop()
        wait = (self._owner.options.flush_after or 0) - (loop.time() - self._heard)
        if wait > 0:
            self._flush_timer = loop.call_later(wait, self._flush)
        elif payloads := self.framer.flush():
            self._commit(payloads)

    def _arm_idle(self) -> None:
        """One timer for two waits: `--idle-timeout` while the peer talks, and
        `--half-close-linger` (counted from our last write) once it finished sending."""
        loop = asyncio.get_running_loop()
        if self._half_closed:
            linger = self._owner.options.half_close_linger or 0
            wait = self.active_at + linger - time.time()
        elif idle := self._owner.options.idle_timeout:
            wait = self._heard + idle - loop.time()
        else:
            return
        self._idle_timer = loop.call_later(max(0.0, wait), self._idle)

    def _idle(self) -> None:
        self._idle_timer = None
        if self._half_closed:
            linger = self._owner.options.half_close_linger or 0
            if time.time() - self.active_at >= linger:
                self.close(f"finished sending, and we said nothing more for {linger:g} s")
                return
        elif asyncio.get_running_loop().time() - self._heard >= (
            idle := self._owner.options.idle_timeout or 0
        ):
            self.close(f"idle: said nothing for {idle:g} s (--idle-timeout)")
            return
        self._arm_idle()

    def eof_received(self) -> bool:
        """The peer shut its write side (`nc -N`, `shutdown(SHUT_WR)`): keep it writable,
        so a piped request still gets its reply. TLS has no half-close (asyncio closes)."""
        options = self._owner.options
        if self._half_closed:  # told again after a resume_reading()
            return True
        if (
            options.half_close_linger is None
            or self._state != "open"
            or self.transport.get_extra_info("ssl_object") is not None
        ):
            return False
        self._half_closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self.active_at = time.time()
        tail: list[Entry] = [Message.received(self.name, p) for p in self.framer.flush()]
        tail.append(Event("half_closed", self.name, "peer finished sending"))
        self._take(tail)
        self._arm_idle()
        return True

    def write(self, data: bytes) -> None:
        """Queue `data`; what is written in one loop iteration goes out as one write(2)
        (uvloop makes a system call per transport write, ~5 µs each)."""
        if self._state != "open" or self.transport.is_closing():
            return
        if self._out is None:
            self._out = []
            asyncio.get_running_loop().call_soon(self._send_out)
        self._out.append(data)
        self.bytes_out += len(data)
        self.active_at = time.time()

    def _send_out(self) -> None:
        out, self._out = self._out, None
        transport = self.transport
        if not out or transport.is_closing():
            return
        transport.write(b"".join(out) if len(out) > 1 else out[0])
        queued = transport.get_write_buffer_size()
        if queued > self._owner.options.write_limit * HARD_LIMIT_FACTOR:
            self.drop(f"not reading: {queued} bytes unsent")

    def pause_writing(self) -> None:
        timeout = self._owner.options.drain_timeout
        why = f"not reading: write buffer full for {timeout:g} s"
        self._drain_timer = asyncio.get_running_loop().call_later(timeout, self.drop, why)

    def resume_writing(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        self._make_room()

    def _make_room(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        self._room = None

    async def writable(self) -> None:
        """Until the kernel took what was queued past `write_limit` (or the peer is gone):
        a file is sent at the peer's pace, never queued whole."""
        while self._drain_timer is not None and self._state == "open":  # paused writing
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            await self._room

    def drop(self, reason: str) -> None:
        """Abort the connection (RST); the departure records `reason`."""
        self.drop_reason = self.drop_reason or reason
        self.transport.abort()

    def close(self, reason: str) -> None:
        """Orderly close: queued bytes go out, then our FIN."""
        self.drop_reason = self.drop_reason or reason
        self._send_out()
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._flush_timer, self._idle_timer, self._drain_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._idle_timer = self._drain_timer = None
        self._make_room()
        if self._state == "new":
            self._state = "gone"
            return
        if self._state != "open":
            return
        self._state = "closed"
        self.drop_reason = self.drop_reason or (
            "closed by peer" if exc is None else describe_error(exc)
        )
        self._owner.lost(self)
        if self._intake is None or not self._intake.busy:
            self._owner.spawn(self._finish())

    async def _finish(self, said: Sequence[bytes] = ()) -> None:
        """The peer's last words: what it said before leaving, its partial line, its departure."""
        payloads = [*said, *(self._framer.flush() if self._framer else [])]
        tail: list[Entry] = [Message.received(self.name, p) for p in payloads]
        tail.append(Event("disconnected", self.name, self.drop_reason or "closed by peer"))
        try:
            await self._owner.record(tail)
        except StoreError:
            pass  # the store said so already, once; the peer is gone either way
        finally:
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    def _pause(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._state == "open" and not self._half_closed and not self.transport.is_closing():
            self.transport.resume_reading()
