"""The SQLite file itself: schema and migrations, rows, the one query, error wording.

Shared by the live engine (`sqlite.py`) and `webchat export`, which reads a
file offline, beside a running server.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from webchat.model import Entry, Event, Message, decode
from webchat.store import Match, StoreError, contains

SCHEMA = 3
PAGE = 1000
"""Entries per read when streaming a whole transcript: constant memory at any size."""

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
_EPOCH = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('epoch', lower(hex(randomblob(16))));
"""
_META = "ALTER TABLE entries ADD COLUMN meta TEXT;  -- JSON: an event's tls, a message's rule, name"
"""What some entries carry beside their body, as JSON, else NULL; a send's `ending`
came later, with no migration: the column is JSON."""
MIGRATIONS = {1: _SCHEMA_V1, 2: _EPOCH, 3: _META}
"""`user_version` N+1 is reached by running MIGRATIONS[N+1]; add a step, never edit one."""

COLUMNS = "id, ts, kind, peer, body, meta"
OLD_COLUMNS = "id, ts, kind, peer, body, NULL"
"""What a read-only export selects from a file older than schema 3."""
INSERT = f"INSERT INTO entries ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
ROWS_PER_INSERT = 64
"""Rows in one multi-row INSERT: a third less time per row than one INSERT a row."""
INSERT_MANY = f"INSERT INTO entries ({COLUMNS}) VALUES " + ", ".join(
    ["(?, ?, ?, ?, ?, ?)"] * ROWS_PER_INSERT
)


def insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert `rows` inside the caller's transaction."""
    whole = len(rows) // ROWS_PER_INSERT * ROWS_PER_INSERT
    for start in range(0, whole, ROWS_PER_INSERT):
        conn.execute(
            INSERT_MANY, [v for values in rows[start : start + ROWS_PER_INSERT] for v in values]
        )
    if whole < len(rows):
        conn.executemany(INSERT, rows[whole:])


_MESSAGE_KINDS = ("in", "out")


def row(entry: Entry) -> tuple[Any, ...]:
    if isinstance(entry, Message):
        meta = None
        if entry.rule is not None or entry.name is not None or entry.ending is not None:
            extra = {"rule": entry.rule, "name": entry.name, "ending": entry.ending}
            meta = json.dumps({k: v for k, v in extra.items() if v is not None})
        return (entry.id, entry.ts, entry.direction, entry.peer, entry.data, meta)
    meta = None if entry.tls is None else json.dumps({"tls": entry.tls})
    return (entry.id, entry.ts, entry.kind, entry.peer, entry.detail, meta)


def entry(values: tuple[Any, ...]) -> Entry:
    entry_id, ts, kind, peer, body, meta = values
    extra = {} if meta is None else json.loads(meta)
    if kind in _MESSAGE_KINDS:
        data = bytes(body)
        rule, name, ending = extra.get("rule"), extra.get("name"), extra.get("ending")
        return Message(kind, peer, data, decode(data), ts, entry_id, rule, name, ending=ending)
    return Event(kind, peer, body, ts, entry_id, extra.get("tls"))


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
def translated(path: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise _problem(path, exc) from None
    except OSError as exc:
        raise StoreError(f"transcript {path} cannot be opened: {exc.strerror or exc}") from None


def _found(body: bytes | str, needle: str) -> bool:
    text = decode(body) if isinstance(body, bytes) else body
    return contains(text, needle)


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    uri = Path(path).absolute().as_uri() + ("?mode=ro" if read_only else "")
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.create_function("webchat_contains", 2, _found, deterministic=True)
    return conn


def migrate(conn: sqlite3.Connection, path: str) -> None:
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
                # One statement a line: an SQL `--` comment in a step must not swallow COMMIT.
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[step]}\nPRAGMA user_version = {step};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if conn.in_transaction:  # a step that ended its own transaction early, or never
            conn.execute("ROLLBACK")
            raise StoreError(f"transcript {path}: schema step {step} did not commit; nothing kept")


def epoch(conn: sqlite3.Connection) -> str:
    """The file's identity, made once by the migration that added it."""
    value: str = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
    return value


def select(
    after: int,
    limit: int,
    before: int | None,
    newest_first: bool,
    match: Match | None,
    columns: str = COLUMNS,
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
            where.append("webchat_contains(body, ?)")
            params.append(match.text)
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT {columns} FROM entries WHERE {' AND '.join(where)} ORDER BY id {order} LIMIT ?"
    return sql, [*params, limit]


def fetch(cursor: sqlite3.Cursor, max_bytes: int | None) -> list[tuple[Any, ...]]:
    """The rows of an executed select, stopping once their bodies reach `max_bytes`:
    SQLite steps rows lazily, so the rest are never read."""
    if max_bytes is None:
        return cursor.fetchall()
    rows: list[tuple[Any, ...]] = []
    weight = 0
    for values in cursor:
        rows.append(values)
        weight += len(values[4])
        if weight >= max_bytes:
            break
    return rows


def scan(path: str, after: int = 0, before: int | None = None) -> Iterator[list[Entry]]:
    """The file's entries in pages, oldest first, read-only: `webchat export` runs beside
    a live server without locking it out."""
    if not os.path.isfile(path):
        raise StoreError(f"transcript {path} does not exist: check --db")
    with translated(path):
        conn = connect(path, read_only=True)
    with contextlib.closing(conn), translated(path):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if not 1 <= version <= SCHEMA:  # every version so far has the same entries table
            raise StoreError(
                f"transcript {path} has schema {version}, this webchat reads 1 to {SCHEMA}"
            )
        columns = COLUMNS if version >= 3 else OLD_COLUMNS
        while rows := conn.execute(*select(after, PAGE, before, False, None, columns)).fetchall():
            yield [entry(values) for values in rows]
            after = rows[-1][0]
