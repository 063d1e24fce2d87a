"""The client role (the seed's `tcp_client.py`): one connection, reconnecting forever.

Only changes of state are recorded: the first failed attempt after a success
(not every retry), each connection and each departure. The loop survives a
transcript that cannot be written: it keeps retrying, so it heals when the
store does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence

from webchat.hub import Hub
from webchat.model import Event, Message, TlsDetails, peer_name
from webchat.roles.base import (
    AlreadyTls,
    HandshakeFailed,
    NoConnection,
    NotConnected,
    RoleBase,
    SendError,
)
from webchat.roles.net import backoff, describe_error, tls_details
from webchat.roles.peer import Peer, PeerOptions
from webchat.starttls import Preamble, Step
from webchat.store import StoreError
from webchat.types import RoleName, StartTlsName

CONNECT_TIMEOUT = 10.0
TLS_HANDSHAKE_TIMEOUT = 10.0
STARTTLS_TIMEOUT = 10.0
"""Seconds the server has to agree to STARTTLS, from our first preamble line."""
STABLE_AFTER = 5.0
"""Seconds a connection must last before the reconnect backoff starts over, so a server
that accepts and hangs up at once is not hammered every half second (websockets does so too)."""


class TcpClient(RoleBase):
    """Connects to `host:port` and keeps reconnecting."""

    kind: RoleName = "client"

    def __init__(
        self,
        hub: Hub,
        host: str,
        port: int,
        options: PeerOptions,
        *,
        on_connect: Sequence[bytes] = (),
        tls: ssl.SSLContext | None = None,
        starttls: tuple[StartTlsName, ssl.SSLContext] | None = None,
    ) -> None:
        super().__init__(hub, options)
        self._on_connect = list(on_connect)
        self._tls = tls
        self._starttls = starttls
        self._upgrading = False
        self._host = host
        self._port = port
        self._address = peer_name(host, port)
        self._retry_at = 0.0
        self._stopping = False
        self._held = False
        self._go = asyncio.Event()
        self._state = "connecting"
        self._runner: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return self._address

    def _not_connected(self) -> str:
        if self._held:
            return (
                f"not connected to {self._address}: it was disconnected on request; "
                "connect again (Connect now, or POST /api/connection/connect)"
            )
        wait = max(0.0, self._retry_at - asyncio.get_running_loop().time())
        return (
            f"not connected to {self._address}; retrying in {wait:.1f} s, send again once connected"
        )

    async def start(self) -> None:
        self._runner = self.spawn(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if not self.peers and self._runner is not None:
            self._runner.cancel()  # between attempts: nothing to close in order
        await self._stop_peers()

    async def _greet(self) -> None:
        """`--on-connect`, on every connection: a login must not be forgotten after a reconnect."""
        for data in self._on_connect:
            try:
                await self.send(data, None)
            except (SendError, StoreError):
                return  # gone again already; its departure says why

    async def _connect(self) -> asyncio.Future[None] | str:
        """One attempt: the connected peer's end, or why it failed."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, peer = await loop.create_connection(
                    self.new_peer,
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls else None,
                    ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._tls else None,
                )
        except OSError as exc:
            return describe_error(exc)
        if not peer.name:
            return "connection reset by peer"
        peer.done = loop.create_future()
        if not await self.join(peer, f"connected to {self._address}"):
            return "the transcript cannot be written"
        if self._starttls is not None and self._starttls[0] != "plain":
            failure = await self._preamble(peer, self._starttls[0])
            if failure is None:
                failure = await self._upgrade(peer)
            if failure is not None:
                peer.close(f"STARTTLS failed: {failure}")
                return peer.done
        await self._greet()
        return peer.done

    async def _preamble(self, peer: Peer, protocol: StartTlsName) -> str | None:
        """Say what the protocol needs before its handshake; None once the server agreed."""
        heard: asyncio.Queue[bytes] = asyncio.Queue()
        peer.tap = heard.put_nowait
        preamble = Preamble(protocol, self._host)
        self._upgrading = True
        try:
            async with asyncio.timeout(STARTTLS_TIMEOUT):
                steps = [preamble.first]
                while True:
                    for step in steps:
                        if step.send:
                            await self._say(peer, step.send)
                        if step.failure is not None or step.upgrade:
                            return step.failure
                    data = await heard.get()
                    steps = preamble.feed(data) if data else [Step(failure="the server closed")]
        except TimeoutError:
            return f"no answer within {STARTTLS_TIMEOUT:g} s"
        finally:
            peer.tap = None
            self._upgrading = False

    async def _say(self, peer: Peer, data: bytes) -> None:
        """A preamble line, recorded as a send of ours (after what it answers) and written."""
        await peer.settled()
        await self.record([Message.sent(peer.name, data.removesuffix(b"\r\n"))])
        peer.write(data)

    async def _upgrade(self, peer: Peer) -> str | None:
        """The TLS handshake on the open connection; None once it is done and recorded."""
        assert self._starttls is not None
        protocol, context = self._starttls
        loop = asyncio.get_running_loop()
        self._upgrading = peer.handshaking = True
        try:
            transport = await loop.start_tls(
                peer.transport,
                peer,
                context,
                server_hostname=self._host,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            )
        except (OSError, TimeoutError, ConnectionError) as exc:  # ssl.SSLError is an OSError
            return describe_error(exc)
        finally:
            self._upgrading = peer.handshaking = False
        if transport is None:
            return "the connection closed"
        peer.transport = transport
        peer.limit_writes()
        peer.tls = tls = tls_details(transport.get_extra_info("ssl_object"))
        detail = f"STARTTLS ({protocol}): {tls and tls['version']} {tls and tls['cipher']}"
        await self.record([Event("tls", peer.name, detail, tls=tls)])
        self.changed.set()
        return None

    def _held_back(self) -> str | None:
        if self._upgrading:
            return "upgrading the connection to TLS (STARTTLS); send again in a moment"
        return None

    async def start_tls_now(self) -> TlsDetails:
        """`--starttls plain`: the handshake now, on request. A failed one closes the
        connection (the stream is no longer plain text) and the client reconnects."""
        if self._starttls is None or self._starttls[0] != "plain":
            raise NoConnection(
                "upgrading on request needs webchat client --starttls plain "
                "(with --tls-ca FILE or the system's CAs)"
            )
        if not self.peers:
            raise NotConnected(self._not_connected())
        (peer,) = self.peers.values()
        if peer.tls is not None:
            raise AlreadyTls(f"the connection to {self._address} is TLS already")
        if self._upgrading:
            raise AlreadyTls("an upgrade to TLS is under way")
        failure = await self._upgrade(peer)
        if failure is not None:
            peer.close(f"STARTTLS failed: {failure}")
            raise HandshakeFailed(f"TLS handshake with {self._address} failed: {failure}")
        assert peer.tls is not None
        return peer.tls

    def connection(self) -> dict[str, object]:
        retry_in = None
        if self._state == "retrying":
            retry_in = round(max(0.0, self._retry_at - asyncio.get_running_loop().time()), 1)
        shown: dict[str, object] = {
            "target": self._address,
            "state": self._state,
            "retry_in": retry_in,
        }
        if self._starttls is not None:  # only then: the shape stays what it was without
            shown["starttls"] = self._starttls[0]
        return shown

    def connect_now(self) -> None:
        """Connect at once: out of `stopped`, or cutting a retry's wait short."""
        self._held = False
        self._go.set()

    def disconnect(self) -> None:
        """Close the connection (FIN) and make no other until `connect_now`."""
        self._held = True
        for peer in list(self.peers.values()):
            peer.close("disconnected from webchat (POST /api/connection/disconnect)")
        self._go.set()

    def _now(self, state: str) -> None:
        self._state = state
        self.changed.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delays = backoff()
        failing = False
        while not self._stopping:
            if self._held:
                self._now("stopped")
                self._go.clear()
                while self._held:
                    await self._go.wait()
                    self._go.clear()
                delays, failing = backoff(), False
            self._now("connecting")
            outcome = await self._connect()
            if isinstance(outcome, str):
                if not failing:
                    failing = True
                    detail = f"{outcome}; retrying with backoff up to 10 s"
                    with contextlib.suppress(StoreError):
                        await self.record([Event("connect_failed", self._address, detail)])
            else:
                failing = False
                connected_at = loop.time()
                self._now("connected")
                await outcome
                if self._stopping:
                    return
                if loop.time() - connected_at >= STABLE_AFTER:
                    delays = backoff()
            if self._held:
                continue
            delay = next(delays)
            self._retry_at = loop.time() + delay
            self._now("retrying")
            self._go.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # Connect now cuts it short
                    await self._go.wait()
