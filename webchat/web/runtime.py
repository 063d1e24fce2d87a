"""What the lifespan builds and every route reads: settings, hub, role, in-flight sends."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.types import ASGIApp

from webchat.console import Console
from webchat.hub import Hub, Listener
from webchat.model import Entry, iso_utc
from webchat.roles.base import RoleBase
from webchat.roles.client import TcpClient
from webchat.roles.net import bind_listener
from webchat.roles.server import TcpServer
from webchat.roles.viewer import Viewer
from webchat.room.autoreply import AutoReply
from webchat.room.chat import ChatRoom
from webchat.room.shared import SharedRoom
from webchat.room.snippets import Snippets
from webchat.settings import Settings
from webchat.store import MEMORY, Store, open_store
from webchat.store.files import SUFFIX, data_dir
from webchat.store.lease import Lease
from webchat.store.redis import RedisStore
from webchat.store.shelf import RoomShelf
from webchat.wire.json import dumps

STATUS_EVERY = 1.0
"""Seconds between status frames while only counters change."""
ROSTER_PEERS = 200
"""Peers listed in a status frame (`peer_count` has them all): 10,000 peers would make each
frame 1.5 MB, sent every second to every page. `/api/status` lists every one."""

try:
    VERSION = version("webchat")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0"


@dataclass
class Visitor:
    """A page (or script) on `/ws`, as the roster shows it: who, from where, since when."""

    address: str
    name: str | None = None
    viewer: bool = False
    connected_at: float = field(default_factory=time.time)
    active_at: float = field(default_factory=time.time)
    sends: int = 0

    def status(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": self.address,
            "view_only": self.viewer,
            "connected_at": iso_utc(self.connected_at),
            "last_activity": iso_utc(self.active_at),
            "sends": self.sends,
        }


@dataclass
class Runtime:
    settings: Settings
    hub: Hub
    role: RoleBase
    console: Console | None = None
    auto: AutoReply | None = None
    snippets: Snippets | None = None
    chat: ChatRoom | None = None
    shared: SharedRoom | None = None
    visitors: dict[object, Visitor] = field(default_factory=dict)
    """Each open `/ws`, by its reader."""
    sending: set[asyncio.Task[None]] = field(default_factory=set)

    def status(self, most_peers: int | None = None) -> dict[str, Any]:
        """`/api/status`, and the `status` frames pushed over `/ws` (with `most_peers`)."""
        peers = self.role.peers.values()
        listed = list(peers) if most_peers is None else list(itertools.islice(peers, most_peers))
        status: dict[str, Any] = {
            "role": self.settings.role,
            "tcp": self.role.address,
            "framing": self.settings.framing,
            "peers": [*(self._held(peer.status()) for peer in listed), *self._elsewhere()],
            "subscribers": len(self.hub.readers),
            "store": self.hub.store.health.status(),
        }
        if self.visitors:  # only then: with no page open, the status keeps its old shape
            shown = itertools.islice(self.visitors.values(), most_peers)
            status["pages"] = [visitor.status() for visitor in shown]
        if most_peers is not None:
            status["peer_count"] = len(peers) + len(self.role.remote)
        connection = self.role.connection()
        if connection is not None:
            status["connection"] = connection
        return status

    async def publish_status(self) -> None:
        """Each reader is told the status when it changed: at once when a peer comes or
        goes, else at most every `STATUS_EVERY` seconds. Encoded once for all; a reader
        holds only the newest one (`Reader.tell`), so a stalled page costs nothing more."""
        last = ""
        while True:
            if any(reader.wants_status for reader in self.hub.readers):
                frame = dumps({"type": "status", **self.status(ROSTER_PEERS)})
                if frame != last:
                    self.hub.tell_all(frame)
                    last = frame
            self.role.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_EVERY):
                    await self.role.changed.wait()

    def _held(self, shown: dict[str, object]) -> dict[str, object]:
        """In a shared room, each peer says which instance holds it."""
        if self.shared is not None:
            shown["instance"] = self.shared.me
        return shown

    def _elsewhere(self) -> list[dict[str, object]]:
        """The peers other instances hold: where, and (`--chat`) their names within 2 s."""
        names = self.shared.names if self.shared is not None else {}
        listed: list[dict[str, object]] = []
        for peer, held in self.role.remote.items():
            shown: dict[str, object] = {"peer": peer, "instance": held}
            if peer in names:
                shown["name"] = names[peer]
            listed.append(shown)
        return listed

    def hello(self) -> dict[str, object]:
        """The first `/ws` frame: who we are and where the transcript stands."""
        return {
            "type": "hello",
            "role": self.settings.role,
            "tcp": self.role.address,
            "framing": self.settings.framing,
            "peers": list(self.role.peers),
            "version": VERSION,
            **({"chat": True} if self.chat is not None else {}),
            "last_id": self.hub.store.last_id,
            "epoch": self.hub.store.epoch,
        }


RULES_SUFFIX = ".rules.json"
"""The auto-responder's rules live beside the transcript, one file per transcript."""


def beside(settings: Settings, tcp_sock: socket.socket | None) -> str | None:
    """The transcript file, where snippets and rules are kept beside it; None when there
    is no file (`:memory:`: they then last as long as the process; a Redis room keeps
    them on its shelves)."""
    if settings.redis_url is not None:
        return None
    path = transcript_path(settings, tcp_sock)
    return None if path == MEMORY else path


def rules_path(settings: Settings, tcp_sock: socket.socket | None) -> str | None:
    path = beside(settings, tcp_sock)
    return None if path is None else path + RULES_SUFFIX


def runtime(app: ASGIApp) -> Runtime:
    rt: Runtime = app.state.runtime  # type: ignore[attr-defined]
    return rt


def transcript_path(settings: Settings, tcp_sock: socket.socket | None) -> str:
    """`--db`, else one file per endpoint, so two instances never share one by accident."""
    if settings.transcript_file is not None:
        return settings.transcript_file
    if tcp_sock is not None:
        name = f"server-{tcp_sock.getsockname()[1]}"
    else:
        host, port = settings.target
        name = f"client-{host}-{port}"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return str(data_dir() / f"{safe}{SUFFIX}")


def open_transcript(settings: Settings, tcp_sock: socket.socket | None) -> Store:
    """The store for these settings; raises `StoreError` with a line fit for the user."""
    if settings.redis_url is not None:
        store = RedisStore(settings.redis_url, settings.room, settings.max_history)
        if settings.role == "client":  # one instance of a room holds the connection
            Lease(store, "client").take()  # here, so a refusal is one line before serving
        return store
    path = transcript_path(settings, tcp_sock)
    return open_store(path, settings.max_history, fsync=settings.fsync)


def build(settings: Settings, tcp_sock: socket.socket | None, store: Store | None) -> Runtime:
    if tcp_sock is None and settings.role == "server":
        tcp_sock = bind_listener(settings.tcp_host, settings.tcp_port)
    store = store or open_transcript(settings, tcp_sock)
    console = None if settings.quiet else Console()
    hub = Hub(store, () if console is None else (console,))
    role = make_role(settings, hub, tcp_sock)
    room = store if isinstance(store, RedisStore) else None
    rules_shelf, snippets_shelf = (None, None) if room is None else shelves(room)
    auto = AutoReply(role, rules_path(settings, tcp_sock), settings.echo, rules_shelf)
    hub.listen(ours(auto, store))
    snippets = Snippets(beside(settings, tcp_sock), snippets_shelf)
    shared = None
    if room is not None:
        shared = SharedRoom(role, room, relay=settings.relay and not settings.chat)
        if settings.role == "client":
            shared.lease = Lease(room, "client")  # taken in open_transcript; renewed here
        shared.on_beat += [auto.fresh, snippets.fresh]  # what other instances changed
        hub.listen(shared)
    chat = None
    if role.options.chat:
        if shared is None:
            chat = ChatRoom(role)
        else:  # names are the room's, and other instances' lines are told here
            chat = ChatRoom(role, shared.claims, shared.me)
            shared.on_lost.append(chat.lost)
        hub.listen(chat)
    return Runtime(settings, hub, role, console, auto, snippets, chat, shared)


def shelves(room: RedisStore) -> tuple[RoomShelf, RoomShelf]:
    """Where a shared room keeps its rules and snippets: every instance finds them there."""
    return RoomShelf(room, "rules"), RoomShelf(room, "snippets")


def ours(listener: Listener, store: Store) -> Listener:
    """In a shared room, only the entries this instance recorded: the auto-responder
    answers once, where the peer is, not on every instance."""
    if not isinstance(store, RedisStore):
        return listener
    me = store.instance

    def local(entries: Sequence[Entry]) -> None:
        mine = [entry for entry in entries if entry.origin == me]
        if mine:
            listener(mine)

    return local


def make_role(settings: Settings, hub: Hub, tcp_sock: socket.socket | None) -> RoleBase:
    options = settings.peer_options
    if settings.role == "view":
        return Viewer(hub, options, settings.room)
    if tcp_sock is None:
        host, port = settings.target
        return TcpClient(
            hub,
            host,
            port,
            options,
            on_connect=settings.greeting,
            tls=settings.client_tls,
            starttls=settings.upgrade,
        )
    return TcpServer(
        hub,
        tcp_sock,
        options,
        max_clients=settings.max_clients,
        relay=settings.relay and not settings.chat,  # the room relays lines, named
        refusal=settings.rules.refusal,
        tls=settings.tcp_tls,
    )
