"""The server role (the seed's `tcp_server.py`): any number of peers, or `max_clients`.

Each accepted connection is admitted in a short task: the `--allow`/`--deny`
rules, the TLS handshake (done here, so a failure is a `rejected` entry with
its reason), the client limit, then the `connected` entry. After that the
peer is a protocol with no task of its own.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from webchat.hub import Hub
from webchat.model import Event, peer_name
from webchat.roles.base import RoleBase
from webchat.roles.net import BACKLOG, describe_error
from webchat.roles.peer import Peer
from webchat.types import FramingName, RoleName

TLS_HANDSHAKE_TIMEOUT = 10.0


class TcpServer(RoleBase):
    """Accepts peers on a bound socket; `relay` makes them a chat room."""

    kind: RoleName = "server"

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
        self._joining = 0
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
        await self.record([Event("listening", None, f"waiting for clients on {self._address}")])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
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
            await self.record([Event("rejected", peer.name, refused)])
            return
        self._joining += 1
        try:
            await self.join(peer, f"{len(self.peers) + 1} connected")
        finally:
            self._joining -= 1

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
            for other in self.peers.values():
                if other is not peer:
                    other.write(data)
