"""Record entries through the store, then fan them out; replay, then live.

Fan-out never waits for a subscriber (websockets' broadcast topic explains
why): each subscriber owns a bounded queue fed without awaiting, and one
that falls `queue_size` frames behind is closed with 1013 so it can resume
with `?after=`. Recording awaits the store, so whoever records (a TCP read
loop) is paced by the store and reads no faster than entries are kept.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from webchat.model import Entry, dumps, entry_dict
from webchat.store import Store

Listener = Callable[[Sequence[Entry]], None]
"""Called with each recorded batch, e.g. the console mirror."""

GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
_REPLAY_PAGE = 500


class Closed(Exception):
    """The subscriber must close its WebSocket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Subscriber:
    """One `/ws` connection's bounded queue of encoded frames.

    Items are `(id, frame)`; replies that are not entries (errors) carry id 0
    and are never deduplicated.
    """

    def __init__(self, queue_size: int) -> None:
        self._queue: deque[tuple[int, str]] = deque()
        self._size = queue_size
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed: Closed | None = None

    def offer(self, item: tuple[int, str]) -> None:
        if self._closed is not None:
            return
        if len(self._queue) >= self._size:
            self.close(
                TRY_AGAIN_LATER,
                f"too slow: {self._size} frames queued; reconnect with ?after=<last id seen>",
            )
            return
        self._queue.append(item)
        self._wakeup.set()
        if len(self._queue) >= self._size // 2:
            self._room.clear()

    async def wait_for_room(self) -> None:
        """Pace this subscriber's own sends by how fast it reads: a client that sends
        faster than it reads its `out` echoes waits here instead of being closed."""
        await self._room.wait()

    def close(self, code: int, reason: str) -> None:
        if self._closed is None:
            self._closed = Closed(code, reason)
            self._queue.clear()
            self._wakeup.set()
            self._room.set()

    async def next_batch(self) -> list[tuple[int, str]]:
        """Everything queued so far, waiting for at least one item; raises `Closed`."""
        while not self._queue:
            if self._closed is not None:
                raise self._closed
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._closed is not None:
            raise self._closed
        batch = list(self._queue)
        self._queue.clear()
        self._room.set()
        return batch


class Hub:
    def __init__(self, store: Store, queue_size: int, listeners: Sequence[Listener] = ()) -> None:
        self.store = store
        self._queue_size = queue_size
        self._listeners = list(listeners)
        self.subscribers: set[Subscriber] = set()
        self._live: set[Subscriber] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def record(self, entries: Sequence[Entry]) -> list[Entry]:
        """Store, then publish: nothing is shown before it is kept."""
        stored = await self.store.append(entries)
        frames = [(entry.id, dumps(entry_dict(entry))) for entry in stored]
        for sub in self._live:
            for frame in frames:
                sub.offer(frame)
        for listener in self._listeners:
            listener(stored)
        return stored

    def subscribe(self) -> Subscriber:
        """Count a `/ws` endpoint; it gets live entries once `frames` has replayed."""
        sub = Subscriber(self._queue_size)
        self.subscribers.add(sub)
        self._idle.clear()
        return sub

    def go_live(self, sub: Subscriber) -> None:
        """From now on every recorded entry is queued for `sub`."""
        if sub in self.subscribers:
            self._live.add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self._live.discard(sub)
        if not self.subscribers:
            self._idle.set()

    async def frames(self, sub: Subscriber, after: int) -> AsyncIterator[list[str]]:
        """Batches of frames for `sub`: the stored entries after `after`, then live ones.

        `sub` joins the live fan-out only when a replay page comes back short,
        so a long replay (a million entries) does not fill its queue; one more
        read then covers what was published just before it joined. Live entries
        whose id a read already covered are skipped: no gap and no duplicate.
        """
        last = after
        while True:
            page = await self.store.read(last, _REPLAY_PAGE)
            if page:
                last = page[-1].id
                yield [dumps(entry_dict(entry)) for entry in page]
            if len(page) < _REPLAY_PAGE:
                if sub in self._live:
                    break
                self.go_live(sub)
        while True:
            batch = await sub.next_batch()
            fresh = [frame for entry_id, frame in batch if entry_id == 0 or entry_id > last]
            last = max(last, *(entry_id for entry_id, _ in batch))
            if fresh:
                yield fresh

    def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        for sub in self.subscribers:
            sub.close(code, reason)

    async def wait_unsubscribed(self) -> None:
        """Return once no `/ws` endpoint is left; the caller bounds the wait."""
        await self._idle.wait()
