"""Both store engines behind one interface, and the SQLite file's promises and failures."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from webchat.model import Event, Message, TlsDetails
from webchat.store import Match, Store, StoreError, schema
from webchat.store.memory import MemoryStore
from webchat.store.schema import MIGRATIONS, SCHEMA, scan
from webchat.store.sqlite import GROUP, SqliteStore

pytestmark = pytest.mark.anyio


def line(text: str, peer: str = "127.0.0.1:1") -> Message:
    return Message.received(peer, text.encode())


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    engine: Store = (
        MemoryStore(1000)
        if request.param == "memory"
        else SqliteStore(str(tmp_path / "t.db"), 1000)
    )
    yield engine
    await engine.close()


async def test_entries_come_back_with_ids_and_exact_bytes(store: Store) -> None:
    raw = Message.received("[::1]:7", b"caf\xc3\xa9 \xff\x00end")
    stored = await store.append(
        [Event("listening", None, "waiting"), raw, Message.sent(None, b"hi")]
    )
    assert [e.id for e in stored] == [1, 2, 3] and store.last_id == 3
    back = await store.read(0, 10)
    assert back == stored
    message = back[1]
    assert isinstance(message, Message)
    assert message.data == b"caf\xc3\xa9 \xff\x00end" and message.text == "café \ufffd\x00end"


async def test_reads_by_range_in_either_order(store: Store) -> None:
    await store.append([line(str(i)) for i in range(1, 21)])
    assert [e.id for e in await store.read(5, 3)] == [6, 7, 8]
    assert [e.id for e in await store.read(0, 3, before=10, newest_first=True)] == [9, 8, 7]
    assert [e.id for e in await store.read(15, 100, before=18)] == [16, 17]
    assert await store.read(20, 5) == [] and await store.read(0, 0) == []


async def test_search_by_text_peer_and_direction(store: Store) -> None:
    await store.append(
        [
            line("Hello World", "a:1"),
            line("100% _literal_", "b:2"),
            Message.sent("a:1", b"hello back"),
            Event("connected", "a:1", "HELLO event"),
        ]
    )

    async def ids(match: Match) -> list[int]:
        return [e.id for e in await store.read(0, 10, match=match)]

    assert await ids(Match(text="hello")) == [1, 3, 4]
    assert await ids(Match(text="hello", direction="in")) == [1]
    assert await ids(Match(peer="a:1", direction="out")) == [3]
    assert await ids(Match(text="0% _")) == [2]
    assert await ids(Match(text="%")) == [2]
    assert await ids(Match(text="_l")) == [2]
    assert await ids(Match(text="nowhere")) == []


async def test_search_ignores_case_beyond_ascii_in_every_engine(store: Store) -> None:
    await store.append([line("Café CRÈME"), line("STRASSE"), Event("connected", "x:1", "ÉTÉ")])

    async def ids(text: str) -> list[int]:
        return [e.id for e in await store.read(0, 10, match=Match(text=text))]

    assert await ids("CAFÉ") == [1] and await ids("crème") == [1]
    assert await ids("straße") == [2]  # casefold: ß is ss
    assert await ids("été") == [3]


async def test_a_page_is_bounded_by_bytes_but_never_empty(store: Store) -> None:
    await store.append([line("x" * 1000) for _ in range(10)])
    assert len(await store.read(0, 100, max_bytes=3500)) == 4  # stops once 3,500 is reached
    assert len(await store.read(0, 100, max_bytes=1)) == 1
    assert len(await store.read(0, 100)) == 10


async def test_followers_hear_every_commit_in_id_order(store: Store) -> None:
    heard: list[int] = []
    store.follow(lambda entries: heard.extend(e.id for e in entries))
    await asyncio.gather(*(store.append([line(str(i)), line("b")]) for i in range(50)))
    assert heard == list(range(1, 101))


async def test_oldest_entries_are_pruned_beyond_the_limit(tmp_path: Path) -> None:
    for store in (MemoryStore(10), SqliteStore(str(tmp_path / "p.db"), 10)):
        for i in range(60):
            await store.append([line(str(i))])
        await asyncio.sleep(0.2)  # SQLite prunes in its thread, after the commit
        kept = await store.read(0, 1000)
        assert kept[-1].id == 60 and [e.id for e in kept[-10:]] == list(range(51, 61))
        assert len(kept) <= 13
        await store.close()


async def test_ids_continue_across_restarts_and_commits_are_visible_to_others(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "r.db")
    first = SqliteStore(path, 1000)
    await first.append([line("a"), line("b")])
    with sqlite3.connect(path) as other:  # committed before append returned
        assert other.execute("SELECT count(*) FROM entries").fetchone() == (2,)
    await first.close()
    second = SqliteStore(path, 1000)
    assert second.last_id == 2 and second.epoch == first.epoch  # the same transcript
    assert [e.id for e in await second.append([line("c")])] == [3]
    await second.close()


async def test_concurrent_appends_commit_in_order_and_in_groups(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "g.db"), 100_000)
    results = await asyncio.gather(*(store.append([line(str(i))]) for i in range(2000)))
    assert [r[0].id for r in results] == list(range(1, 2001))
    assert [e.id for e in await store.read(0, 5000)] == list(range(1, 2001))
    await store.close()


async def test_a_send_is_committed_ahead_of_a_peers_large_append(tmp_path: Path) -> None:
    """A flood's append is committed a group at a time, and a send goes into the next group,
    so the user's send does not wait behind thousands of a peer's lines."""
    store = SqliteStore(str(tmp_path / "p.db"), 100_000)
    groups: list[list[int]] = []
    store.follow(lambda batch: groups.append([e.id for e in batch]))
    flood = asyncio.ensure_future(store.append([line(str(i)) for i in range(5000)]))
    await asyncio.sleep(0)
    sent = await store.append([Message.sent(None, b"urgent")], send=True)
    assert not flood.done() and sent[0].id <= 2 * GROUP + 1
    kept = await flood
    assert max(len(g) for g in groups) <= GROUP
    assert sorted(e.id for e in kept) == [e.id for e in kept]  # a peer's lines stay in order
    assert [e.id for e in await store.read(0, 10_000)] == list(range(1, 5002))
    await store.close()


def write_file(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def newer_schema(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA + 1}")
    return str(path)


def foreign_database(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (x)")
    return str(path)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (
            lambda p: write_file(p, b"this is not a database at all" * 200),
            "is not an SQLite database",
        ),
        (newer_schema, "newer webchat"),
        (foreign_database, "not a webchat transcript"),
        (lambda p: (p.mkdir(), str(p))[1], "cannot be opened"),
    ],
    ids=["not-sqlite", "newer-schema", "foreign", "directory"],
)
async def test_a_file_that_is_not_ours_gets_one_clear_line(
    tmp_path: Path, make: object, says: str
) -> None:
    path = make(tmp_path / "x.db")  # type: ignore[operator]
    with pytest.raises(StoreError) as failure:
        SqliteStore(path, 10)
    message = str(failure.value)
    assert path in message and says in message and "\n" not in message


async def test_each_transcript_has_its_own_epoch(tmp_path: Path) -> None:
    one, two = SqliteStore(str(tmp_path / "1.db"), 10), SqliteStore(str(tmp_path / "2.db"), 10)
    assert len({one.epoch, two.epoch, MemoryStore(10).epoch, MemoryStore(10).epoch}) == 4
    await one.close()
    await two.close()


async def test_a_first_schema_file_is_migrated_and_keeps_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[1] + "PRAGMA user_version = 1;")
        conn.execute("INSERT INTO entries VALUES (7, 0, 'in', 'p', x'6869')")
    assert [e.id for page in scan(str(path)) for e in page] == [7]  # read as it is
    store = SqliteStore(str(path), 10)
    assert store.epoch and [e.text for e in await store.read()] == ["hi"]  # type: ignore[union-attr]
    await store.close()


async def test_an_events_tls_details_are_kept_and_old_files_read_without_them(
    tmp_path: Path,
) -> None:
    tls: TlsDetails = {
        "version": "TLSv1.3",
        "cipher": "TLS_AES_256_GCM_SHA384",
        "peer_cert_subject": "CN=localhost",
        "peer_cert_sha256": "ab" * 32,
    }
    path = str(tmp_path / "tls.db")
    store = SqliteStore(path, 10)
    await store.append([Event("connected", "p", "1 connected", tls=tls), Event("rejected", "q")])
    await store.close()
    store = SqliteStore(path, 10)
    kept = await store.read()
    assert [e.tls for e in kept] == [tls, None]  # type: ignore[union-attr]
    await store.close()
    old = tmp_path / "v2.db"
    with sqlite3.connect(old) as conn:
        conn.executescript(MIGRATIONS[1] + MIGRATIONS[2] + "PRAGMA user_version = 2;")
        conn.execute("INSERT INTO entries VALUES (3, 0, 'connected', 'p', '1 connected')")
    assert [e.tls for page in scan(str(old)) for e in page] == [None]  # type: ignore[union-attr]


async def test_one_file_has_one_writer(tmp_path: Path) -> None:
    path = str(tmp_path / "w.db")
    owner = SqliteStore(path, 10)
    with pytest.raises(StoreError, match="in use by another webchat"):
        SqliteStore(path, 10)
    await owner.close()
    await SqliteStore(path, 10).close()


async def test_a_full_disk_is_a_state_that_heals_and_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(str(tmp_path / "f.db"), 10**6)
    store._conn.execute("PRAGMA max_page_count = 8")  # SQLITE_FULL once the file would grow
    peer = asyncio.ensure_future(store.append([line("x" * 4000) for _ in range(50)]))  # noqa: RUF006
    send = asyncio.ensure_future(store.append([line("in the same group")], send=True))
    with pytest.raises(StoreError, match="disk is full"):
        await send  # a send is refused, not held
    assert store.health.error is not None and "disk is full" in store.health.error
    assert store.health.status()["ok"] is False and store.health.status()["since"]
    for _ in range(3):  # every later send too, each with its own short exception
        with pytest.raises(StoreError, match="disk is full") as refused:
            await store.append([line("send")], send=True)
        assert refused.value.__traceback__ is not None
        assert len(list(traceback_frames(refused.value))) < 10
    await asyncio.sleep(0.3)
    assert not peer.done()  # a peer's entries wait for the disk, paused, not dropped
    store._conn.execute("PRAGMA max_page_count = 1000000")  # space comes back
    kept = await asyncio.wait_for(peer, 3)
    assert [e.id for e in kept] == list(range(1, 51))
    assert store.health.status() == {"ok": True, "error": None, "since": None}
    assert [e.id for e in await store.read(0, 100)] == list(range(1, 51))
    assert (await store.append([line("after")], send=True))[0].id == 51
    await store.close()
    err = capsys.readouterr().err
    assert err.count("disk is full") == 1 and err.count("writable again") == 1


def traceback_frames(exc: BaseException) -> list[object]:
    frames: list[object] = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


async def test_closing_a_failing_store_refuses_what_waits(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "c.db"), 10**6)
    store._conn.execute("PRAGMA max_page_count = 8")
    peer = asyncio.ensure_future(store.append([line("x" * 4000) for _ in range(50)]))  # noqa: RUF006
    await asyncio.sleep(0.1)
    await asyncio.wait_for(store.close(), 3)
    with pytest.raises(StoreError, match="disk is full"):
        await peer


async def test_scan_reads_a_live_file_in_pages(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path, 10_000)
    await store.append([line(str(i)) for i in range(2500)])
    pages = list(scan(path, after=100, before=2401))
    assert [len(p) for p in pages] == [1000, 1000, 300]
    assert pages[0][0].id == 101 and pages[-1][-1].id == 2400
    await store.close()
    with pytest.raises(StoreError, match="does not exist"):
        list(scan(str(tmp_path / "missing.db")))


async def test_a_migration_may_end_in_an_sql_comment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", {**MIGRATIONS, SCHEMA + 1: "SELECT 1; -- a note"})
    monkeypatch.setattr(schema, "SCHEMA", SCHEMA + 1)
    store = SqliteStore(str(tmp_path / "m.db"), 10)
    await store.append([line("after the migration")])
    assert [e.text for e in await store.read()] == ["after the migration"]  # type: ignore[union-attr]
    await store.close()


async def test_a_migration_that_does_not_commit_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unfinished = "SELECT 1; /* a comment never closed swallows the COMMIT after it"
    monkeypatch.setattr(schema, "MIGRATIONS", {**MIGRATIONS, SCHEMA + 1: unfinished})
    monkeypatch.setattr(schema, "SCHEMA", SCHEMA + 1)
    with pytest.raises(StoreError, match=f"schema step {SCHEMA + 1} did not commit"):
        SqliteStore(str(tmp_path / "u.db"), 10)
