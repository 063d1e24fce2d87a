"""The transcript in a list, keeping the newest `max_entries`: `--db :memory:`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from webchat.model import Entry, stamp
from webchat.store import Follower, Health, Match, payload_size


class MemoryStore:
    """Ids are contiguous, so an id maps to a list index in O(1). Old entries are
    dropped in chunks of a quarter of the limit, which keeps trimming amortised
    O(1) per append."""

    where = "memory (--db :memory:, kept until exit)"
    health = Health()

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: list[Entry] = []
        self._last = 0
        self._followers: list[Follower] = []
        self.epoch = uuid.uuid4().hex

    @property
    def last_id(self) -> int:
        return self._last

    def follow(self, follower: Follower) -> None:
        self._followers.append(follower)

    async def append(self, entries: Sequence[Entry], *, send: bool = False) -> Sequence[Entry]:
        for entry in entries:
            self._last += 1
            stamp(entry, self._last)
        self._entries.extend(entries)
        if len(self._entries) > self._max + self._max // 4:
            del self._entries[: len(self._entries) - self._max]
        for follower in self._followers:
            follower(entries)
        return entries

    async def read(
        self,
        after: int = 0,
        limit: int = 100,
        *,
        before: int | None = None,
        newest_first: bool = False,
        match: Match | None = None,
        max_bytes: int | None = None,
    ) -> list[Entry]:
        if not self._entries or limit <= 0:
            return []
        first = self._entries[0].id
        start = max(0, after + 1 - first)
        stop = (
            len(self._entries)
            if before is None
            else max(0, min(before - first, len(self._entries)))
        )
        span = range(stop - 1, start - 1, -1) if newest_first else range(start, stop)
        found: list[Entry] = []
        weight = 0
        for index in span:
            entry = self._entries[index]
            if match is None or match.accepts(entry):
                found.append(entry)
                weight += payload_size(entry)
                if len(found) == limit or (max_bytes is not None and weight >= max_bytes):
                    break
        return found

    async def clear(self) -> int:
        removed = len(self._entries)
        self._entries.clear()
        return removed

    async def close(self) -> None:
        self._entries.clear()
