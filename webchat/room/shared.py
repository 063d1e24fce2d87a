"""A room that several instances share (`--store redis://`): whose peers are where, and the
sends, relayed lines and departures that cross from one instance to another.

Every entry carries the instance that recorded it (`origin`). Each instance keeps the
room's other peers (`RoleBase.remote`) from the `webchat:ROOM:peers` hash at start, then
from the `connected` and `disconnected` entries the others record. A send recorded
elsewhere is written here to the peers held here (to all of them, or to the one named);
with `--relay`, so is a line read elsewhere. Each instance beats in the
`webchat:ROOM:instances` hash every `BEAT` seconds; one whose beat is `LOST_AFTER`
seconds old is gone, and the instance that removes it from the hash (exactly one does:
`HDEL` answers 1 once) records `disconnected` ("instance lost") for each of its peers, and
a `chat` event ("ann left") for each chat name they held.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from redis.exceptions import RedisError

from webchat.model import Entry, Event, Message
from webchat.roles.base import RoleBase
from webchat.room.claims import RoomClaims
from webchat.store import StoreError
from webchat.store.lease import Lease
from webchat.store.redis import RedisStore

BEAT = 2.0
LOST_AFTER = 6.0
"""Seconds without a beat after which an instance is gone: its peers leave every roster
within `LOST_AFTER + BEAT` (8 s) of its death."""
INSTANCE_LOST = "instance lost"


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SharedRoom:
    """The hub listener and heartbeat that make one instance a member of the room."""

    def __init__(self, role: RoleBase, store: RedisStore, *, relay: bool) -> None:
        self._role, self.store, self._relay = role, store, relay
        self.me = store.instance
        self._peers = store.prefix + "peers"
        self._instances = store.prefix + "instances"
        self._tasks: set[asyncio.Task[object]] = set()
        self._hash_order = asyncio.Lock()
        """Our roster writes, one at a time in the order of their entries (the lock is
        fair), so a quick connect and disconnect never leaves a departed peer listed."""
        self.on_beat: list[Callable[[], Awaitable[None]]] = []
        """Awaited at every beat: the rules and snippets reload what other instances changed."""
        self.claims = RoomClaims(store)
        self.names: dict[str, str] = {}
        """The chat names of the room's peers, as the last beat read them: the roster
        shows the names of peers other instances hold."""
        """The room's chat names: a dead instance's are freed and told by whoever records
        its peers' departures, whatever its own flags."""
        self.on_lost: list[Callable[[list[str]], None]] = []
        """Told the chat names a dead instance's peers held: the chat room tells its peers
        (the other instances hear of it from the `chat` events recorded then)."""
        self._beating: asyncio.Task[None] | None = None
        self.lease: Lease | None = None
        """The client role's hold on the room, renewed with the beat."""

    async def start(self) -> None:
        """In the background: start-up never waits for Redis."""
        self._beating = asyncio.create_task(self._beat())

    async def _join(self) -> None:
        """The peers other instances already hold, from the hash they keep."""
        for name, instance in (await self._hash(self._peers)).items():
            if instance != self.me:
                self._role.remote.setdefault(name, instance)
        self._role.changed.set()

    async def stop(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        with contextlib.suppress(RedisError, OSError):
            await self.store.client.hdel(self._instances, self.me)
            if self.lease is not None:
                await self.lease.release()

    def __call__(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            if entry.origin is None:
                continue
            if isinstance(entry, Event):
                self._roster(entry)
            elif entry.origin != self.me:
                self._deliver(entry)

    def _roster(self, event: Event) -> None:
        if event.peer is None or event.kind not in ("connected", "disconnected"):
            return
        if event.origin == self.me:  # ours: the hash says so, for instances started later
            if event.kind == "connected":
                self._spawn(self.store.client.hset(self._peers, event.peer, self.me))
            else:
                self._spawn(self.store.client.hdel(self._peers, event.peer))
        elif event.kind == "connected":
            self._role.remote[event.peer] = event.origin or ""
            self._role.changed.set()
        if event.kind == "disconnected" and event.peer in self._role.remote:
            del self._role.remote[event.peer]
            self._role.changed.set()

    def _deliver(self, message: Message) -> None:
        """Another instance's send, to our peers; with `--relay`, another instance's line."""
        if message.direction == "out":
            ending = message.ending or "framing"  # as it went out where it was sent
            if message.peer is None:
                self._role.broadcast(message.data, ending=ending)
            elif message.peer in self._role.peers:
                self._role.broadcast(message.data, only=message.peer, ending=ending)
        elif self._relay:
            self._role.broadcast(message.data)

    def _spawn(self, step: object) -> None:
        async def run() -> None:
            async with self._hash_order:
                with contextlib.suppress(RedisError, OSError):
                    await step  # type: ignore[misc]

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hash(self, key: str) -> dict[str, str]:
        found = await self.store.client.hgetall(key)
        return {text(k): text(v) for k, v in found.items()}

    async def _beat(self) -> None:
        client = self.store.client
        joined = False
        while True:
            with contextlib.suppress(RedisError, OSError, StoreError):
                if not joined:
                    await self._join()
                    joined = True
                now = time.time()
                await client.hset(self._instances, self.me, str(now))
                if self.lease is not None:
                    await self.lease.renew()
                names = await self.claims.held()
                if names != self.names:
                    self.names = names
                    self._role.changed.set()
                for hook in self.on_beat:
                    with contextlib.suppress(StoreError):
                        await hook()
                for gone, at in (await self._hash(self._instances)).items():
                    stale = gone != self.me and now - float(at) > LOST_AFTER
                    if stale and await client.hdel(self._instances, gone):
                        await self._lost(gone)
            await asyncio.sleep(BEAT)

    async def _lost(self, gone: str) -> None:
        client = self.store.client
        names = [name for name, at in (await self._hash(self._peers)).items() if at == gone]
        if names:
            await client.hdel(self._peers, *names)
            await self._role.record([Event("disconnected", name, INSTANCE_LOST) for name in names])
        left = await self.claims.forget(gone)  # a chat room's names (none elsewhere)
        if left:
            for hook in self.on_lost:
                hook(left)
            await self._role.record([Event("chat", None, f"{name} left") for name in left])
