"""What both roles share: the peers, sending, task tracking and an orderly stop.

Send failures are values of their own kind (`NotConnected`, `UnknownPeer`,
`Unframeable`); what they become on REST or `/ws` is decided at that edge.
"""

from __future__ import annotations

import abc
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from webchat.framing import Framer, FramingError, frame_send, make_framer
from webchat.hub import Hub
from webchat.model import Entry, Event, Message, TlsDetails
from webchat.roles.intake import Budget
from webchat.roles.net import tls_details
from webchat.roles.peer import Peer, PeerOptions
from webchat.store import StoreError
from webchat.telnet import escape
from webchat.types import LineEnding, RoleName

_Planned = tuple[Message, list[Peer], bytes]
Send = tuple[bytes, str | None, LineEnding, str | None]
"""A send as the role takes it: the payload, the target (None for all), the line ending,
and in `--chat` the page user's name."""

NO_CONNECTION = (
    "the server role makes no connection: its peers connect to it; "
    "/api/connection is for webchat client"
)
STOP_TIMEOUT = 2.0
"""Seconds peers get to read our FIN and close before their tasks are cancelled."""


class SendError(Exception):
    """A send that cannot be carried out; the message says what to do instead."""


class NotConnected(SendError):
    pass


class UnknownPeer(SendError):
    pass


class Unframeable(SendError):
    pass


class NoConnection(SendError):
    """Connect or disconnect asked of the server role, which makes no connection."""


class TooLarge(SendError):
    """A file over `--max-send`."""


class EmptyFile(SendError):
    pass


@dataclass(frozen=True)
class FileSent:
    """What a file send did: its bytes, and the `out` messages that recorded them."""

    bytes: int
    messages: int
    first_id: int
    last_id: int


class AlreadyTls(SendError):
    """STARTTLS asked of a connection that is TLS already, or is being upgraded."""


class HandshakeFailed(SendError):
    """A TLS handshake on request failed; the connection is closed."""


class RoleBase(abc.ABC):
    """A role owns its peers (`roles.peer.Owner`) and records through the hub."""

    kind: RoleName

    def __init__(
        self,
        hub: Hub,
        options: PeerOptions,
    ) -> None:
        self._hub = hub
        self.options = options
        self.backlog = Budget()
        self.peers: dict[str, Peer] = {}
        self.remote: dict[str, str] = {}
        """A shared room: the peers other instances hold, with the instance holding each."""
        self.changed = asyncio.Event()
        """Set when a peer comes or goes, or the connection's state changes."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.before_join: list[Callable[[Peer], Awaitable[None]]] = []
        """Awaited for each peer once its `connected` entry is kept, before it is listed or
        read: the chat room names it."""
        self.on_join: list[Callable[[Peer], None]] = []
        """Told of each peer once it is listed: the chat room welcomes it."""
        # Telnet's line end is CRLF (RFC 854): `line` framing sends it under --telnet.
        framing = "crlf" if options.telnet and options.framing == "line" else options.framing
        self._encoder = make_framer(framing, options.max_line)

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """The listening address (server) or the target (client)."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    def _not_connected(self) -> str:
        """Why a send failed with no peer, and what to do about it."""

    def new_peer(self) -> Peer:
        return Peer(self)

    def framer(self) -> Framer:
        return make_framer(self.options.framing, self.options.max_line)

    def record(self, entries: Sequence[Entry]) -> Coroutine[Any, Any, Sequence[Entry]]:
        return self._hub.record(entries)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def made(self, peer: Peer) -> None:  # noqa: B027 - the client role admits in its own loop
        """Server role: admit or refuse."""

    def lost(self, peer: Peer) -> None:
        if self.peers.get(peer.name) is peer:
            del self.peers[peer.name]
            self.changed.set()

    def connection(self) -> dict[str, object] | None:
        """The client role's connection state; None for the server role, which has none."""
        return None

    def connect_now(self) -> None:
        raise NoConnection(NO_CONNECTION)

    def disconnect(self) -> None:
        raise NoConnection(NO_CONNECTION)

    async def start_tls_now(self) -> TlsDetails:
        raise NoConnection(NO_CONNECTION)

    def relay(self, peer: Peer, data: bytes) -> None:  # noqa: B027 - most roles do not relay
        """Server role with `--relay` forwards."""

    async def join(self, peer: Peer, detail: str) -> bool:
        """Keep the `connected` entry, then register and start reading the peer: no peer is
        listed, or heard, before its arrival is in the transcript. False if it cannot be kept."""
        peer.tls = tls_details(peer.transport.get_extra_info("ssl_object"))
        try:
            await self.record([Event("connected", peer.name, detail, tls=peer.tls)])
            for named in self.before_join:
                await named(peer)
        except StoreError as exc:  # only at shutdown: a failing store is waited out
            sys.stderr.write(f"webchat: error: {exc}; dropped {peer.name}\n")
            peer.drop(str(exc))
            return False
        self.peers[peer.name] = peer
        self.changed.set()
        peer.admit()
        for hook in self.on_join:  # admitted (writable), and nothing read yet
            hook(peer)
        return True

    def _held_back(self) -> str | None:
        """Why no send may go out now though a peer is connected (a TLS upgrade)."""
        return None

    def targets(self, to: str | None) -> list[Peer]:
        """Who a send goes to, or the `SendError` it meets."""
        if not self.peers and not self.remote:
            raise NotConnected(self._not_connected())
        if held := self._held_back():
            raise NotConnected(held)
        if to is None:
            return list(self.peers.values())
        if to in self.peers:
            return [self.peers[to]]
        if to in self.remote:
            return []  # recorded here, written by the instance that holds it
        connected = ", ".join([*self.peers, *self.remote])
        raise UnknownPeer(f"no peer named {to!r}; connected: {connected}")

    def _plan(
        self,
        data: bytes,
        to: str | None,
        ending: LineEnding,
        rule: int | None = None,
        name: str | None = None,
    ) -> _Planned:
        """The entry, targets and framed bytes of a send, or the `SendError` it meets."""
        targets = self.targets(to)
        if self.options.chat and rule is None:  # the room sees who speaks: `<name> text`
            name = name or "web"
            data = f"<{name}> ".encode() + data
        try:
            wire = frame_send(self._encoder, data, ending)
        except FramingError as exc:
            raise Unframeable(f"{self.options.framing} framing: {exc}") from None
        if self.options.telnet:
            wire = escape(wire)
        entry = Message.sent(to, data, rule, name if self.options.chat else None, ending)
        return entry, targets, wire

    async def send(
        self,
        data: bytes,
        to: str | None,
        ending: LineEnding = "framing",
        *,
        rule: int | None = None,
        name: str | None = None,
    ) -> Entry:
        """Record the `out` entry, then write: the transcript never shows a reply first.
        `rule`: the auto-responder rule that sends it."""
        (outcome,) = await self.send_many([(data, to, ending, name)], rule=rule)
        if isinstance(outcome, SendError):
            raise outcome
        return outcome

    async def send_many(
        self, sends: Sequence[Send], *, rule: int | None = None
    ) -> list[Entry | SendError]:
        """Several sends in one commit, in order; each outcome is its entry or its error.
        Raises `StoreError` when the commit fails: then nothing was written."""
        planned: list[_Planned | SendError] = []
        for data, to, ending, name in sends:
            try:
                planned.append(self._plan(data, to, ending, rule, name))
            except SendError as exc:
                planned.append(exc)
        entries = [p[0] for p in planned if not isinstance(p, SendError)]
        if entries:
            await self._hub.record(entries, send=True)
        for plan in planned:
            if not isinstance(plan, SendError):
                for peer in plan[1]:
                    peer.write(plan[2])
        return [p if isinstance(p, SendError) else p[0] for p in planned]

    async def send_file(self, chunks: AsyncIterator[bytes], to: str | None, limit: int) -> FileSent:
        """Bytes as they come, unframed, recorded as `out` messages of at most `--max-line`
        (and `write_limit`) bytes, each written once the peers took the one before: memory
        stays one piece whatever the size. Past `limit` it stops with `TooLarge`; what
        went out before is in the transcript."""
        targets = self.targets(to)
        size = min(self.options.max_line, self.options.write_limit)
        buf = bytearray()
        total = sent = 0
        ids: list[int] = []
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise TooLarge(
                    f"the file is over --max-send ({limit} bytes); its first {sent} bytes were sent"
                )
            buf += chunk
            while len(buf) >= size:
                piece = bytes(buf[:size])
                del buf[:size]
                ids.append(await self._send_piece(piece, to, targets, sent))
                sent += len(piece)
        if buf:
            ids.append(await self._send_piece(bytes(buf), to, targets, sent))
        if not ids:
            raise EmptyFile("the file is empty: nothing was sent")
        return FileSent(total, len(ids), ids[0], ids[-1])

    async def _send_piece(
        self, piece: bytes, to: str | None, targets: list[Peer], sent: int
    ) -> int:
        """One piece of a file: wait for room at every peer still there, record, write."""
        for peer in targets:
            await peer.writable()
        here = [peer for peer in targets if self.peers.get(peer.name) is peer]
        if targets and not here:  # none but peers other instances hold: they write it
            raise NotConnected(
                f"the peer left after {sent} bytes of the file; those are in the transcript"
            )
        (entry,) = await self._hub.record([Message.sent(to, piece, ending="none")], send=True)
        wire = escape(piece) if self.options.telnet else piece
        for peer in here:
            peer.write(wire)
        return entry.id

    def broadcast(
        self,
        data: bytes,
        *,
        but: str | None = None,
        only: str | None = None,
        ending: LineEnding = "framing",
    ) -> None:
        """Framed bytes to every peer (but one, or only one), not recorded: what `--chat`
        relays and announces, and what other instances sent. The transcript has the line
        it came from."""
        wire = frame_send(self._encoder, data, ending)
        if self.options.telnet:
            wire = escape(wire)
        for name, peer in list(self.peers.items()):
            if name != but and only in (None, name):
                peer.write(wire)

    async def _stop_peers(self) -> None:
        """FIN to every peer, then wait (bounded) until each departure is recorded."""
        for peer in list(self.peers.values()):
            peer.close("webchat shutting down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT
        while (self.peers or self._tasks) and (left := deadline - loop.time()) > 0:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=left)
            else:
                await asyncio.sleep(0.01)  # a closed transport reports its loss next turn
        for peer in list(self.peers.values()):
            peer.drop("webchat shutting down")
        await asyncio.sleep(0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
