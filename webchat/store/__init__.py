"""Where the transcript lives: the `Store` interface, one search rule, and its engines.

The interface is small and engine-neutral on purpose: the store assigns ids
(one strictly increasing sequence) as it commits, tells its followers about
every committed batch in id order (the tail the hub reads), and reads by id
range with an optional filter. A networked engine (Redis Streams, for
instances sharing one room) implements these few methods and nothing above
it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from webchat.model import Entry, Event, Message, iso_utc, searchable

MEMORY = ":memory:"

Follower = Callable[[Sequence[Entry]], None]
"""Called with each committed batch, in id order, before `append` returns."""


class StoreError(Exception):
    """The transcript cannot be opened or written; the message names the file and a remedy."""


@dataclass(frozen=True, slots=True)
class Health:
    """Whether the store takes writes. A failure (a full disk) is a state the store
    retries its way out of, not a verdict: `error` and `since` say what and from when."""

    error: str | None = None
    since: float | None = None

    def status(self) -> dict[str, object]:
        since = None if self.since is None else iso_utc(self.since)
        return {"ok": self.error is None, "error": self.error, "since": since}


def payload_size(entry: Entry) -> int:
    """What an entry weighs in a page read with `max_bytes`: its payload's length."""
    return len(entry.data) if isinstance(entry, Message) else len(entry.detail)


def contains(text: str, needle: str) -> bool:
    """The one search rule, for every engine and the page: a Unicode case-insensitive
    substring (`casefold`, so `CAFÉ` finds `café` and `STRASSE` finds `straße`)."""
    return needle.casefold() in text.casefold()


@dataclass(frozen=True, slots=True)
class Match:
    """A search: `text` is found by `contains`; unset fields match everything."""

    text: str | None = None
    peer: str | None = None
    direction: str | None = None

    def accepts(self, entry: Entry) -> bool:
        if self.peer is not None and entry.peer != self.peer:
            return False
        if self.direction is not None and (
            isinstance(entry, Event) or entry.direction != self.direction
        ):
            return False
        return self.text is None or contains(searchable(entry), self.text)


class Store(Protocol):
    @property
    def last_id(self) -> int:
        """The id of the newest committed entry, 0 when there is none."""

    @property
    def where(self) -> str:
        """Where the transcript is kept, as the start-up line says it."""

    @property
    def epoch(self) -> str:
        """This transcript's identity: ids restart when it changes (a new file, a new
        `:memory:` run), so a reader's old position means nothing then."""

    @property
    def health(self) -> Health: ...

    def follow(self, follower: Follower) -> None:
        """Call `follower` with every batch committed from now on."""

    async def append(self, entries: Sequence[Entry], *, send: bool = False) -> Sequence[Entry]:
        """Commit new entries; the store gives them their ids. Returns the same entries.
        While the store is failing, the call waits for it to heal, so its caller (a TCP
        peer, paused meanwhile) loses nothing. A `send` (someone is waiting for an answer)
        is committed ahead of what peers queued, and is refused with `StoreError` at once
        while the store fails (its user is told 503)."""

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
        """Up to `limit` entries with `after` < id < `before` that `match`, in id order
        (or from the newest down with `newest_first`). With `max_bytes`, the page stops
        once its payloads reach that size (always at least one entry), so one read of
        64 KiB entries costs what one of short lines does."""

    async def clear(self) -> int:
        """Remove every committed entry; returns how many. Ids go on from where they
        were (an id is never reused), and nothing cleared is read again."""

    async def close(self) -> None: ...


def open_store(db: str, max_entries: int, *, fsync: bool = False) -> Store:
    """The engine for `--db`: `:memory:` keeps nothing on disk, anything else is a file."""
    from webchat.store.memory import MemoryStore
    from webchat.store.sqlite import SqliteStore

    if db == MEMORY:
        return MemoryStore(max_entries)
    return SqliteStore(db, max_entries, fsync=fsync)
