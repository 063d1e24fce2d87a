"""Where the transcript lives: the `Store` interface and its engines.

The interface is small and engine-neutral on purpose: the store assigns ids
(one strictly increasing sequence), `append` returns the entries as stored,
and reads are by id range. A durable or networked engine implements these
few coroutines and nothing above it changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from webchat.model import Entry


class Store(Protocol):
    @property
    def last_id(self) -> int:
        """The id of the newest stored entry, 0 when there is none."""

    async def append(self, entries: Sequence[Entry]) -> list[Entry]:
        """Store entries (their `id` is ignored) and return them with their ids."""

    async def read(self, after: int, limit: int) -> list[Entry]:
        """Up to `limit` entries with id > `after`, oldest first."""

    async def close(self) -> None: ...


class MemoryStore:
    """The transcript in a list, keeping the newest `max_entries`.

    Ids are contiguous, so an id maps to a list index in O(1). Old entries are
    dropped in chunks of a quarter of the limit, which keeps trimming
    amortised O(1) per append.
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: list[Entry] = []
        self._last = 0

    @property
    def last_id(self) -> int:
        return self._last

    async def append(self, entries: Sequence[Entry]) -> list[Entry]:
        stored = [dataclasses.replace(e, id=self._last + i) for i, e in enumerate(entries, 1)]
        self._last += len(stored)
        self._entries.extend(stored)
        if len(self._entries) > self._max + self._max // 4:
            del self._entries[: len(self._entries) - self._max]
        return stored

    async def read(self, after: int, limit: int) -> list[Entry]:
        if not self._entries or limit <= 0:
            return []
        start = max(0, after + 1 - self._entries[0].id)
        return self._entries[start : start + limit]

    async def close(self) -> None:
        self._entries.clear()


def open_store(db: str | None, max_entries: int) -> Store:
    """The engine for `--db`. Until the durable engine lands every path keeps memory only."""
    return MemoryStore(max_entries)
