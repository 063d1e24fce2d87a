"""The transcript is the hub: every reader is a cursor into it.

A reader (a `/ws` connection; later another instance) is a position, the
last id it was sent. It takes what follows that position from a small window
of recent frames, encoded once and shared by every reader, while it is near
the head; once it has fallen behind the window, from the store, a page at a
time; then it joins the window again. Nothing is queued per reader, so no
reader is ever dropped for being slow and memory does not grow with how far
behind readers are (Kafka consumer offsets and Redis Streams' `XREAD` work
the same way). The hub learns of new entries from the store's tail, not from
whoever appended them, so an engine with several writers fits under it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from webchat.model import Entry
from webchat.store import Store, StoreError
from webchat.wire.json import frame

Listener = Callable[[Sequence[Entry]], None]
"""Called with each committed batch, e.g. the console mirror."""

GOING_AWAY = 1001
WINDOW_ENTRIES = 16_384
WINDOW_BYTES = 8 * 1024 * 1024
"""The shared window: enough for a reader to ride out a burst, small against the store."""
PAGE_ENTRIES = 500
PAGE_BYTES = 64 * 1024
"""A read from the store is bounded by payload bytes too: one 64 KiB entry weighs 1,000
short ones. Its frames are cut again at `TAKE_BYTES`, since a frame can weigh seven times
its payload (`\u0001` in text plus base64)."""
TAKE = 1000
TAKE_BYTES = 256 * 1024
"""Most frames, and encoded bytes, one `next_frames` hands out: what a reader that stopped
reading holds while its send waits, and what a reply waits behind."""
READ_RETRY = 0.5
"""Seconds a reader behind the window waits before asking a store that failed again."""
CONTROL_LIMIT = 64
"""Replies (pong, error) a reader may have waiting; past it its client's frames wait."""


class Closed(Exception):
    """The reader must close its WebSocket with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class Window:
    """The frames of the newest committed entries, bounded by count and bytes.

    Ids in the window are contiguous, so a position maps to an index in O(1);
    the front is trimmed lazily, amortised O(1) per frame."""

    __slots__ = ("_bytes", "_first", "_frames", "_max_bytes", "_max_entries", "_start")

    def __init__(self, next_id: int, max_entries: int, max_bytes: int) -> None:
        self._first = next_id  # id of _frames[_start]
        self._frames: list[str] = []
        self._start = 0
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes

    @property
    def next_id(self) -> int:
        return self._first + len(self._frames) - self._start

    def add(self, first_id: int, frames: Sequence[str]) -> None:
        if first_id != self.next_id:  # a gap (another writer's ids): start over from here
            self._frames, self._start, self._bytes = [], 0, 0
            self._first = first_id
        self._frames.extend(frames)
        self._bytes += sum(map(len, frames))
        while len(self._frames) - self._start > self._max_entries or (
            self._bytes > self._max_bytes and len(self._frames) - self._start > 1
        ):
            self._bytes -= len(self._frames[self._start])
            self._start += 1
            self._first += 1
        if self._start > len(self._frames) // 2:
            del self._frames[: self._start]
            self._start = 0

    def after(self, position: int, most: int, max_bytes: int) -> list[str] | None:
        """Frames after `position`, up to `most` of them or `max_bytes` (at least one);
        None when `position` is older than the window."""
        if position + 1 < self._first:
            return None
        start = self._start + position + 1 - self._first
        stop = min(start + most, len(self._frames))
        weight = 0
        for index in range(start, stop):
            weight += len(self._frames[index])
            if weight >= max_bytes:
                stop = index + 1
                break
        return self._frames[start:stop]


class Reader:
    """One cursor: its position, the replies it owes, and its wake-up."""

    __slots__ = ("closed", "control", "position", "room", "status", "wake", "wants_status")

    def __init__(self, position: int, *, wants_status: bool = False) -> None:
        self.position = position
        self.wants_status = wants_status
        self.control: deque[str] = deque()
        self.status: str | None = None  # the newest status frame not yet sent: one, not a queue
        self.closed: Closed | None = None
        self.wake = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    def reply(self, text: str) -> None:
        """A frame that is not an entry (pong, error): it goes out ahead of entries."""
        self.control.append(text)
        if len(self.control) >= CONTROL_LIMIT:
            self.room.clear()
        self.wake.set()

    def close(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = Closed(code, reason)
        self.wake.set()
        self.room.set()

    def tell(self, status: str) -> None:
        """A status frame replaces the one still waiting: a reader that stopped reading
        gets the newest state when it reads again, not every state in between."""
        self.status = status
        self.wake.set()

    def take_replies(self) -> list[str]:
        replies = list(self.control)
        self.control.clear()
        if self.status is not None:
            replies.append(self.status)
            self.status = None
        self.room.set()
        return replies


class Hub:
    def __init__(
        self,
        store: Store,
        listeners: Sequence[Listener] = (),
        *,
        window_entries: int = WINDOW_ENTRIES,
        window_bytes: int = WINDOW_BYTES,
    ) -> None:
        self.store = store
        self._listeners = list(listeners)
        self._window_entries, self._window_bytes = window_entries, window_bytes
        self._window = Window(store.last_id + 1, window_entries, window_bytes)
        self.readers: set[Reader] = set()
        self._waiting: set[Reader] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        store.follow(self._committed)

    def listen(self, listener: Listener) -> None:
        """Also tell `listener` of every committed entry (the auto-responder)."""
        self._listeners.append(listener)

    async def record(self, entries: Sequence[Entry], *, send: bool = False) -> Sequence[Entry]:
        """Commit `entries`; they reach readers through the store's tail. `send` as in
        `Store.append`."""
        return await self.store.append(entries, send=send)

    def _committed(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        self._window.add(entries[0].id, [frame(entry) for entry in entries])
        for reader in self._waiting:
            reader.wake.set()
        self._waiting.clear()
        for listener in self._listeners:
            listener(entries)

    def attach(self, position: int, *, status: bool = False) -> Reader:
        """A new cursor; with `status`, it is also told the status as it changes."""
        reader = Reader(position, wants_status=status)
        self.readers.add(reader)
        self._idle.clear()
        return reader

    def detach(self, reader: Reader) -> None:
        self.readers.discard(reader)
        self._waiting.discard(reader)
        if not self.readers:
            self._idle.set()

    async def next_frames(self, reader: Reader) -> list[str]:
        """What `reader` is sent next: its replies, else the entries after its position,
        waiting for one. Raises `Closed`."""
        while True:
            if reader.closed is not None:
                raise reader.closed
            if reader.control or reader.status is not None:
                return reader.take_replies()
            frames = self._window.after(reader.position, TAKE, TAKE_BYTES)
            if frames is None:
                try:
                    frames, last = await self._page(reader.position)
                except StoreError:  # the store is away (Redis down): the reader waits for it
                    await asyncio.sleep(READ_RETRY)
                    continue
            else:
                last = reader.position + len(frames)
            if frames:
                reader.position = last
                return frames
            reader.wake.clear()
            self._waiting.add(reader)
            await reader.wake.wait()

    async def _page(self, position: int) -> tuple[list[str], int]:
        """Behind the window: the next page from the store, encoded for this reader only,
        up to `TAKE_BYTES` of frames (at least one), and the id it ends at (pruned ids are
        simply not there). What a stalled reader holds is then one take, as at the head."""
        page = await self.store.read(position, PAGE_ENTRIES, max_bytes=PAGE_BYTES)
        frames: list[str] = []
        weight = 0
        for entry in page:
            frames.append(frame(entry))
            weight += len(frames[-1])
            if weight >= TAKE_BYTES:
                return frames, entry.id
        return frames, (page[-1].id if page else position)

    async def clear(self) -> int:
        """Empty the transcript and the window; readers go on from their positions and
        find nothing older. The caller records why, so a clear is never silent."""
        removed = await self.store.clear()
        self._window = Window(self.store.last_id + 1, self._window_entries, self._window_bytes)
        return removed

    def tell_all(self, status: str) -> None:
        for reader in self.readers:
            if reader.wants_status:
                reader.tell(status)

    def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> None:
        for reader in self.readers:
            reader.close(code, reason)

    async def wait_detached(self) -> None:
        """Return once no reader is left; the caller bounds the wait."""
        await self._idle.wait()
