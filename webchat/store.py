"""Where the transcript lives: the `Store` interface and its engines.

The interface is small and engine-neutral on purpose: the store assigns ids
(one strictly increasing sequence), `append` returns the entries once they
are kept, and reads are by id range with an optional filter. A networked
engine (Redis Streams, for instances sharing one room) implements these few
coroutines and nothing above it changes.

`SqliteStore` is the durable default. One writer thread commits in groups:
whatever was appended while the previous commit ran goes into the next
transaction, so an idle server commits at once and a busy one batches,
without a timer. Readers use their own connections (WAL lets them read while
the writer writes), so a long export or replay never holds up the hub.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from webchat.model import Entry, Event, Message, decode

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, SQLite's own locking still applies
    fcntl = None  # type: ignore[assignment]

MEMORY = ":memory:"
SCHEMA = 1
GROUP = 512
"""Most entries in one transaction: large enough to batch a flood, small enough to publish often."""
PAGE = 1000
"""Entries per read when streaming a whole transcript: constant memory at any size."""
PRUNE_CHUNK = 10_000
"""Most rows one prune deletes, so pruning never stalls a commit for long."""


class StoreError(Exception):
    """The transcript cannot be opened or written; the message names the file and a remedy."""


@dataclass(frozen=True, slots=True)
class Match:
    """A search: `text` is a case-insensitive substring; unset fields match everything."""

    text: str | None = None
    peer: str | None = None
    direction: str | None = None

    def accepts(self, entry: Entry) -> bool:
        if self.peer is not None and entry.peer != self.peer:
            return False
        if isinstance(entry, Event):
            return self.direction is None and self._finds(entry.detail)
        if self.direction is not None and entry.direction != self.direction:
            return False
        return self._finds(entry.text)

    def _finds(self, text: str) -> bool:
        return self.text is None or self.text.casefold() in text.casefold()


class Store(Protocol):
    @property
    def last_id(self) -> int:
        """The id of the newest kept entry, 0 when there is none."""

    @property
    def where(self) -> str:
        """Where the transcript is kept, as the start-up line says it."""

    async def append(self, entries: Sequence[Entry]) -> list[Entry]:
        """Keep entries (their `id` is ignored) and return them with their ids."""

    async def read(
        self,
        after: int = 0,
        limit: int = 100,
        *,
        before: int | None = None,
        newest_first: bool = False,
        match: Match | None = None,
    ) -> list[Entry]:
        """Up to `limit` entries with `after` < id < `before` that `match`, in id order
        (or from the newest down with `newest_first`)."""

    async def close(self) -> None: ...


class MemoryStore:
    """The transcript in a list, keeping the newest `max_entries`; `--db :memory:`.

    Ids are contiguous, so an id maps to a list index in O(1). Old entries are
    dropped in chunks of a quarter of the limit, which keeps trimming
    amortised O(1) per append.
    """

    where = "memory (--db :memory:, kept until exit)"

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

    async def read(
        self,
        after: int = 0,
        limit: int = 100,
        *,
        before: int | None = None,
        newest_first: bool = False,
        match: Match | None = None,
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
        for index in span:
            entry = self._entries[index]
            if match is None or match.accepts(entry):
                found.append(entry)
                if len(found) == limit:
                    break
        return found

    async def close(self) -> None:
        self._entries.clear()


_SCHEMA_V1 = """
CREATE TABLE entries (
    id   INTEGER PRIMARY KEY,  -- assigned by webchat, never reused
    ts   REAL NOT NULL,        -- seconds since the epoch, UTC
    kind TEXT NOT NULL,        -- 'in' or 'out' for messages, else the event kind
    peer TEXT,                 -- NULL for a send to every peer and for listening
    body BLOB NOT NULL         -- a message's exact bytes, or an event's detail (TEXT)
);
CREATE INDEX entries_peer ON entries (peer, id);
"""
MIGRATIONS = {1: _SCHEMA_V1}
"""`user_version` N+1 is reached by running MIGRATIONS[N+1]; add a step, never edit one."""

_COLUMNS = "id, ts, kind, peer, body"
_MESSAGE_KINDS = ("in", "out")


def _row(entry: Entry, entry_id: int) -> tuple[Any, ...]:
    if isinstance(entry, Message):
        return (entry_id, entry.ts, entry.direction, entry.peer, entry.data)
    return (entry_id, entry.ts, entry.kind, entry.peer, entry.detail)


def _entry(row: tuple[Any, ...]) -> Entry:
    entry_id, ts, kind, peer, body = row
    if kind in _MESSAGE_KINDS:
        data = bytes(body)
        return Message(kind, peer, data, decode(data), ts, entry_id)
    return Event(kind, peer, body, ts, entry_id)


def _problem(path: str, exc: sqlite3.Error) -> StoreError:
    """One line naming the file, what is wrong and what to do, from SQLite's error code."""
    name = getattr(exc, "sqlite_errorname", "")
    remedies = {
        "SQLITE_NOTADB": "is not an SQLite database: move it away or choose another --db",
        "SQLITE_READONLY": "is read-only: make it writable or choose another --db",
        "SQLITE_FULL": "cannot grow, the disk is full: free space or choose another --db",
        "SQLITE_CANTOPEN": "cannot be opened: check the directory exists and is writable",
        "SQLITE_BUSY": "is locked by another program: stop it or choose another --db",
        "SQLITE_CORRUPT": "is damaged: move it away or choose another --db",
    }
    remedy = remedies.get("_".join(name.split("_")[:2]), f"failed: {exc}")
    return StoreError(f"transcript {path} {remedy}")


@contextlib.contextmanager
def _translated(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise _problem(path, exc) from None
    except OSError as exc:
        raise StoreError(f"transcript {path} cannot be opened: {exc.strerror or exc}") from None


def _connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    uri = Path(path).absolute().as_uri() + ("?mode=ro" if read_only else "")
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA:
        raise StoreError(
            f"transcript {path} was written by a newer webchat (schema {version}, this one "
            f"knows up to {SCHEMA}): upgrade webchat or choose another --db"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise StoreError(
            f"transcript {path} is an SQLite database but not a webchat transcript: "
            "choose another --db"
        )
    for step in range(version + 1, SCHEMA + 1):
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE; {MIGRATIONS[step]} PRAGMA user_version = {step}; COMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


class SqliteStore:
    """The durable transcript in one SQLite file (WAL), owned by one process at a time."""

    def __init__(self, path: str, max_entries: int, *, fsync: bool = False) -> None:
        self.path = path
        self.where = path
        self._max = max_entries
        self._lock_file = self._lock(path)
        try:
            with _translated(path):
                self._conn = _connect(path)
                if self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                    raise StoreError(f"transcript {path} cannot use WAL: choose a local file")
                self._conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
                _migrate(self._conn, path)
                first, last = self._conn.execute("SELECT min(id), max(id) FROM entries").fetchone()
        except BaseException:
            self._unlock()
            raise
        self._first = first or 1
        self._last = last or 0
        self._next = self._last + 1
        self._pending: deque[tuple[list[Entry], asyncio.Future[None]]] = deque()
        self._committer: asyncio.Task[None] | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "webchat-store-write")
        self._readers = concurrent.futures.ThreadPoolExecutor(2, "webchat-store-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._failure: StoreError | None = None

    @staticmethod
    def _lock(path: str) -> Any:
        """An advisory lock on the file: two writers would hand out the same ids."""
        Path(path).absolute().parent.mkdir(parents=True, exist_ok=True)
        with _translated(path):
            handle = open(path, "ab")  # noqa: SIM115 - held open for the store's life
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise StoreError(
                    f"transcript {path} is in use by another webchat: "
                    "stop it or choose another --db"
                ) from None
        return handle

    def _unlock(self) -> None:
        self._lock_file.close()

    @property
    def last_id(self) -> int:
        return self._last

    async def append(self, entries: Sequence[Entry]) -> list[Entry]:
        """Ids are given now, in call order; the call returns once its group is committed."""
        if self._failure is not None:
            raise self._failure
        stored = [dataclasses.replace(e, id=self._next + i) for i, e in enumerate(entries)]
        self._next += len(stored)
        done = asyncio.get_running_loop().create_future()
        self._pending.append((stored, done))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_groups())
        await done  # cancelling the caller cancels only this wait: the group still commits
        return stored

    async def _commit_groups(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group: list[tuple[list[Entry], asyncio.Future[None]]] = []
                size = 0
                while self._pending and (not group or size + len(self._pending[0][0]) <= GROUP):
                    group.append(self._pending.popleft())
                    size += len(group[-1][0])
                rows = [_row(e, e.id) for entries, _ in group for e in entries]
                try:
                    await loop.run_in_executor(self._writer, self._write, rows)
                except StoreError as exc:
                    self._failure = exc
                    for _, done in [*group, *self._pending]:
                        if not done.done():
                            done.set_exception(exc)
                    self._pending.clear()
                    return
                if rows:
                    self._last = rows[-1][0]
                for _, done in group:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._committer = None

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        with _translated(self.path):
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(f"INSERT INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself on some errors
                    conn.execute("ROLLBACK")
                raise
            if rows and rows[-1][0] - self._first >= self._max:
                self._prune(rows[-1][0])

    def _prune(self, last: int) -> None:
        """Drop the oldest entries beyond `max_entries`, a chunk at a time."""
        upto = min(last - self._max, self._first + PRUNE_CHUNK - 1)
        self._conn.execute("DELETE FROM entries WHERE id <= ?", (upto,))
        self._first = upto + 1

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
            self._reader_conns.append(conn)
        return conn

    async def read(
        self,
        after: int = 0,
        limit: int = 100,
        *,
        before: int | None = None,
        newest_first: bool = False,
        match: Match | None = None,
    ) -> list[Entry]:
        if limit <= 0:
            return []
        sql, params = select(after, limit, before, newest_first, match)
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._readers, self._query, sql, params)
        return [_entry(row) for row in rows]

    def _query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with _translated(self.path):
            return self._reader().execute(sql, params).fetchall()

    async def close(self) -> None:
        while self._committer is not None:
            await asyncio.shield(self._committer)
        self._writer.shutdown()
        self._readers.shutdown()
        for conn in [*self._reader_conns, self._conn]:
            conn.close()
        self._unlock()


def select(
    after: int, limit: int, before: int | None, newest_first: bool, match: Match | None
) -> tuple[str, list[Any]]:
    """The one query behind every read: an id range, a filter, an order."""
    where: list[str] = ["id > ?"]
    params: list[Any] = [after]
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if match is not None:
        if match.peer is not None:
            where.append("peer = ?")
            params.append(match.peer)
        if match.direction is not None:
            where.append("kind = ?")
            params.append(match.direction)
        if match.text is not None:
            where.append("CAST(body AS TEXT) LIKE ? ESCAPE '\\'")
            escaped = match.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT {_COLUMNS} FROM entries WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?"
    return sql, [*params, limit]


def scan(path: str, after: int = 0, before: int | None = None) -> Iterator[list[Entry]]:
    """The file's entries in pages, oldest first, read-only: `webchat export` runs beside
    a live server without locking it out."""
    if not os.path.isfile(path):
        raise StoreError(f"transcript {path} does not exist: check --db")
    with _translated(path):
        conn = _connect(path, read_only=True)
    with contextlib.closing(conn), _translated(path):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA:
            raise StoreError(f"transcript {path} has schema {version}, this webchat reads {SCHEMA}")
        while rows := conn.execute(*select(after, PAGE, before, False, None)).fetchall():
            yield [_entry(row) for row in rows]
            after = rows[-1][0]


def open_store(db: str, max_entries: int, *, fsync: bool = False) -> Store:
    """The engine for `--db`: `:memory:` keeps nothing on disk, anything else is a file."""
    if db == MEMORY:
        return MemoryStore(max_entries)
    return SqliteStore(db, max_entries, fsync=fsync)
