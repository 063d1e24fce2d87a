"""The server role (the seed's `tcp_server.py`): any number of peers, or `max_clients`.

Each accepted connection is admitted in a short task: the `--allow`/`--deny`
rules, the TLS handshake (done here, so a failure is a `rejected` entry with
its reason), the client limit, then the `connected` entry. After that the
peer is a protocol with no task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import Callable

from webchat.hub import Hub
from webchat.model import Event, peer_name
from webchat.roles.base import RoleBase
from webchat.roles.net import BACKLOG, describe_error
from webchat.roles.peer import Peer, PeerOptions
from webchat.roles.rejections import WINDOW, Rejections
from webchat.store import StoreError
from webchat.telnet import escape
from webchat.types import RoleName

TLS_HANDSHAKE_TIMEOUT = 10.0


class TcpServer(RoleBase):
    """Accepts peers on a bound socket; `relay` makes them a chat room."""

    kind: RoleName = "server"

    def __init__(
        self,
        hub: Hub,
        sock: socket.socket,
        options: PeerOptions,
        *,
        max_clients: int = 0,
        relay: bool = False,
        refusal: Callable[[str], str | None] = lambda host: None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(hub, options)
        self._refusal = refusal
        self._tls = tls
        self._sock = sock
        self._max_clients = max_clients
        self._relay = relay
        self._joining = 0
        self._rejections = Rejections(WINDOW)
        self._tally_timer: asyncio.TimerHandle | None = None
        self._server: asyncio.Server | None = None
        host, port = sock.getsockname()[:2]
        self._address = peer_name(host, port)

    @property
    def address(self) -> str:
        return self._address

    def _not_connected(self) -> str:
        host, _, port = self._address.rpartition(":")
        return f"no TCP client is connected; connect one, e.g. nc {host.strip('[]')} {port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.new_peer, sock=self._sock, backlog=BACKLOG)
        listening = Event("listening", None, f"waiting for clients on {self._address}")
        self.spawn(self._recorded([listening]))  # a store that is away must not hold up the page

    async def _recorded(self, entries: list[Event]) -> None:
        with contextlib.suppress(StoreError):  # only at shutdown: the store said so already
            await self.record(entries)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._tally_timer is not None:
            self._tally_timer.cancel()
        self._tally(math.inf)  # the counts still open are recorded now, not lost
        await self._stop_peers()

    def made(self, peer: Peer) -> None:
        self.spawn(self._admit(peer))

    async def _admit(self, peer: Peer) -> None:
        refused = self._refusal(peer.host)
        if refused is None and self._tls is not None:
            refused = await self._handshake(peer)
        if refused is None and self._full():
            plural = "" if self._max_clients == 1 else "s"
            refused = f"server full ({self._max_clients} client{plural} max)"
            peer.transport.write(f"webchat: {refused}\n".encode())
            peer.transport.close()
        elif refused is not None:
            peer.transport.abort()
        if refused is not None:
            await self._rejected(peer, refused)
            return
        self._joining += 1
        try:
            await self.join(peer, f"{len(self.peers) + 1} connected")
        finally:
            self._joining -= 1

    async def _rejected(self, peer: Peer, reason: str) -> None:
        """The first refusal from an address in a minute is recorded; the rest are counted."""
        loop = asyncio.get_running_loop()
        if self._rejections.next_due() is None:
            self._tally_timer = loop.call_at(loop.time() + WINDOW, self._tally)
        if self._rejections.refuse(peer.host, reason, loop.time()):
            await self.record([Event("rejected", peer.name, reason)])

    def _tally(self, now: float | None = None) -> None:
        """Record the counts that fell due, and wait for the next."""
        loop = asyncio.get_running_loop()
        tallies = self._rejections.due(loop.time() if now is None else now)
        if tallies:
            self.spawn(self._keep([Event("rejected", t.source, t.detail) for t in tallies]))
        due = self._rejections.next_due()
        self._tally_timer = None if due is None else loop.call_at(due, self._tally)

    async def _keep(self, events: list[Event]) -> None:
        await self.record(events)

    def _full(self) -> bool:
        return bool(self._max_clients) and len(self.peers) + self._joining >= self._max_clients

    async def _handshake(self, peer: Peer) -> str | None:
        """The server side of TLS on this connection, before any payload is read."""
        assert self._tls is not None
        loop = asyncio.get_running_loop()
        peer.handshaking = True
        try:
            transport = await loop.start_tls(
                peer.transport,
                peer,
                self._tls,
                server_side=True,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )
        except (OSError, TimeoutError, ConnectionError) as exc:  # ssl.SSLError is an OSError
            return f"TLS handshake failed: {describe_error(exc)}"
        finally:
            peer.handshaking = False
        if transport is None:
            return "TLS handshake failed: the connection closed"
        transport.pause_reading()  # until the `connected` entry is kept
        peer.transport = transport
        peer.limit_writes()
        return None

    def relay(self, peer: Peer, data: bytes) -> None:
        """`--relay`: forward the bytes as they came to every other peer, as `ncat --broker`."""
        if self._relay:
            if self.options.telnet:
                data = escape(data)
            for other in self.peers.values():
                if other is not peer:
                    other.write(data)
