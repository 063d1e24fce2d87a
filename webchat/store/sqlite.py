"""The durable transcript: one SQLite file in WAL mode, owned by one process at a time.

Commits are grouped without a timer: whatever was appended while the previous
commit ran goes into the next transaction, so an idle server commits at once
and a busy one batches. A group of small entries is committed on the event
loop itself: a one-row WAL commit takes ~17 µs, while handing it to a thread
and back cost ~30 µs at p50 and ~200 µs at p99 on a busy loop. Work that is
long and drops the GIL goes to threads: groups of large payloads and commits
that must fsync to the writer; checkpoints and pruning to an upkeep thread of
their own, so a large group never waits behind a checkpoint's fsync. Ids are
given as a group is taken for commit, in append order, so they are one
strictly increasing sequence.
Readers use their own connections (WAL lets them read while the writer
writes), so a long export or replay never holds up the tail.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webchat.model import Entry, stamp
from webchat.store import Follower, Health, Match, StoreError
from webchat.store.files import lock
from webchat.store.schema import (
    connect,
    entry,
    epoch,
    fetch,
    insert,
    migrate,
    row,
    select,
    translated,
)

GROUP = 128
"""Most entries in one transaction: large enough to batch a flood (the tcp→ws rate is the
same as with 512), small enough that a send waits for little (a send's p99 under two
flooding peers went from 120 ms with 512 to about 50)."""
GROUP_BYTES = 1024 * 1024
"""Most payload bytes in one transaction, so a group of 64 KiB entries stays short too."""
INLINE_BYTES = 256 * 1024
"""Groups with more payload than this are committed in the writer thread, off the loop."""
PRUNE_CHUNK = 2_000
"""Most rows one prune deletes: it holds the write lock, and inline commits wait for it."""
CHECKPOINT_BYTES = 8 * 1024 * 1024
"""Payload committed between checkpoints, which run in the thread instead of inside a commit."""
RETRY_FIRST = 0.05
RETRY_MOST = 1.0
"""Seconds between attempts while writes fail: a freed disk is noticed within a second."""


@dataclass(slots=True, eq=False)
class _Append:
    """One `append` on its way: its entries, how many are in a group already (a peer's
    large append is committed a group at a time, so a send can go in between), and the
    future its caller awaits."""

    entries: Sequence[Entry]
    done: asyncio.Future[None]
    send: bool
    taken: int = 0


_Part = tuple[_Append, int]
"""An append in a group, and where its part of the group starts."""


class SqliteStore:
    def __init__(self, path: str, max_entries: int, *, fsync: bool = False) -> None:
        self.path = path
        self.where = path
        self._max = max_entries
        self._lock_file = lock(path)
        try:
            with translated(path):
                self._conn = connect(path)
                if self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                    raise StoreError(f"transcript {path} cannot use WAL: choose a local file")
                self._conn.execute(f"PRAGMA synchronous = {'FULL' if fsync else 'NORMAL'}")
                self._conn.execute("PRAGMA wal_autocheckpoint = 0")  # see _maintain
                migrate(self._conn, path)
                self.epoch = epoch(self._conn)
                first, last = self._conn.execute("SELECT min(id), max(id) FROM entries").fetchone()
        except BaseException:
            self._lock_file.close()
            raise
        self._first = first or 1
        self._floor = 0
        self._last = last or 0
        self._next = self._last + 1
        self._sends: deque[_Append] = deque()
        self._pending: deque[_Append] = deque()
        self._committer: asyncio.Task[None] | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "webchat-store-write")
        self._upkeep = concurrent.futures.ThreadPoolExecutor(1, "webchat-store-upkeep")
        self._readers = concurrent.futures.ThreadPoolExecutor(2, "webchat-store-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._followers: list[Follower] = []
        self.health = Health()
        self._fsync = fsync
        self._unchecked = 0
        self._maintenance: asyncio.Future[None] | None = None
        self._closing = False

    @property
    def last_id(self) -> int:
        return self._last

    def follow(self, follower: Follower) -> None:
        self._followers.append(follower)

    async def append(self, entries: Sequence[Entry], *, send: bool = False) -> Sequence[Entry]:
        """Returns once the entries' group is committed and followed."""
        if send and self.health.error is not None:
            raise StoreError(self.health.error)  # a new one each time: a kept one grows
        done = asyncio.get_running_loop().create_future()
        (self._sends if send else self._pending).append(_Append(entries, done, send))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_groups())
        await done  # cancelling the caller cancels only this wait: the group still commits
        return entries

    def _take_group(self) -> tuple[list[_Part], list[Entry], list[tuple[Any, ...]], int]:
        """The next group: sends first, then what peers queued, up to `GROUP` entries and
        `GROUP_BYTES`; its entries and rows, given their ids now; its payload bytes. A
        send goes whole into one group, so it is committed all or nothing."""
        group: list[_Part] = []
        batch: list[Entry] = []
        rows: list[tuple[Any, ...]] = []
        weight = 0
        for queue in (self._sends, self._pending):
            while queue and len(rows) < GROUP and weight < GROUP_BYTES:
                item = queue[0]
                if item.send and rows and len(rows) + len(item.entries) > GROUP:
                    return group, batch, rows, weight
                group.append((item, item.taken))
                for new in item.entries[item.taken :]:
                    if not item.send and rows and (len(rows) >= GROUP or weight >= GROUP_BYTES):
                        break
                    stamp(new, self._next + len(rows))
                    batch.append(new)
                    rows.append(row(new))
                    weight += len(rows[-1][4])
                    item.taken += 1
                if item.taken < len(item.entries):
                    break
                queue.popleft()
        return group, batch, rows, weight

    async def _commit_groups(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_FIRST
        try:
            await asyncio.sleep(0)  # appends made in this loop iteration join the first group
            while self._sends or self._pending:
                group, batch, rows, weight = self._take_group()
                try:
                    if self._fsync or weight > INLINE_BYTES:
                        await loop.run_in_executor(self._writer, self._write, rows)
                    else:
                        self._write(rows)
                except StoreError as exc:
                    self._failed(str(exc), group)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MOST)
                    continue
                if self.health.error is not None:
                    self._healed()
                    delay = RETRY_FIRST
                self._committed(group, batch, weight)
                await asyncio.sleep(0)  # let readers and peers run between groups
        finally:
            self._committer = None

    def _committed(self, group: list[_Part], batch: list[Entry], weight: int) -> None:
        self._next += len(batch)
        if batch:
            self._last = batch[-1].id
            for follower in self._followers:
                follower(batch)
        for item, _ in group:
            if item.taken == len(item.entries) and not item.done.done():
                item.done.set_result(None)  # its last part was in this group
        self._unchecked += weight + 64 * len(batch)
        self._maintain()

    def _maintain(self, _: object = None) -> None:
        """Checkpoint and prune in the thread, one round at a time; a round that ends
        with more to do starts the next."""
        due = self._unchecked >= CHECKPOINT_BYTES or self._last - self._first >= self._max
        if due and (self._maintenance is None or self._maintenance.done()) and not self._closing:
            self._unchecked = 0
            loop = asyncio.get_running_loop()
            self._maintenance = loop.run_in_executor(self._upkeep, self._checkpoint, self._last)
            self._maintenance.add_done_callback(self._maintain)

    def _failed(self, why: str, group: list[_Part]) -> None:
        """Refuse the sends (they must not wait) and put the rest back, in order, for the
        next attempt; they get their ids again then. Said once on stderr, not per attempt."""
        if self.health.error is None:
            self.health = Health(why, time.time())
            sys.stderr.write(f"webchat: error: {why}; sends are refused and TCP peers wait\n")
            self._unchecked = CHECKPOINT_BYTES  # pruning and a checkpoint may give space back
            self._maintain()
        for item, start in reversed(group):
            if item.taken == len(item.entries):  # it had left its queue whole
                (self._sends if item.send else self._pending).appendleft(item)
            item.taken = start
        refused = [*self._sends, *(self._pending if self._closing else ())]
        self._sends.clear()
        if self._closing:
            self._pending.clear()
        for item in refused:
            if not item.done.done():
                item.done.set_exception(StoreError(why))

    def _healed(self) -> None:
        lasted = time.time() - (self.health.since or time.time())
        self.health = Health()
        sys.stderr.write(f"webchat: transcript {self.path} writable again after {lasted:.1f} s\n")

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        with translated(self.path):
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                insert(conn, rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself on some errors
                    conn.execute("ROLLBACK")
                raise

    def _checkpoint(self, last: int) -> None:
        """In the thread, on its own connection: drop the oldest entries beyond
        `max_entries` (a chunk at a time), then copy the WAL into the file."""
        conn = self._reader()
        with contextlib.suppress(sqlite3.Error):  # a busy or full file: the next round retries
            if last - self._first >= self._max:
                upto = min(last - self._max, self._first + PRUNE_CHUNK - 1)
                conn.execute("DELETE FROM entries WHERE id <= ?", (upto,))
                self._first = upto + 1
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
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
        max_bytes: int | None = None,
    ) -> list[Entry]:
        if limit <= 0:
            return []
        after = max(after, self._floor)  # cleared rows may still be on their way out
        sql, params = select(after, limit, before, newest_first, match)
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self._readers, self._query, sql, params, max_bytes)
        return [entry(values) for values in rows]

    def _query(self, sql: str, params: list[Any], max_bytes: int | None) -> list[tuple[Any, ...]]:
        with translated(self.path):
            return fetch(self._reader().execute(sql, params), max_bytes)

    async def clear(self) -> int:
        """Hidden at once (reads start above the floor); deleted in the writer thread a
        chunk at a time, as pruning does, so commits on the loop wait for one chunk only."""
        floor = self._last
        self._floor = floor
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._upkeep, self._delete_upto, floor)

    def _delete_upto(self, last: int) -> int:
        conn = self._reader()
        removed = 0
        with translated(self.path):
            while self._first <= last:
                upto = min(last, self._first + PRUNE_CHUNK - 1)
                removed += conn.execute("DELETE FROM entries WHERE id <= ?", (upto,)).rowcount
                self._first = upto + 1
        return removed

    async def close(self) -> None:
        self._closing = True
        while self._committer is not None:
            await asyncio.shield(self._committer)
        if self._maintenance is not None:
            with contextlib.suppress(sqlite3.Error):
                await self._maintenance
        self._writer.shutdown()
        self._upkeep.shutdown()
        self._readers.shutdown()
        for conn in [*self._reader_conns, self._conn]:
            conn.close()
        self._lock_file.close()
