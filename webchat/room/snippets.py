"""Saved messages: named snippets, text or hex, kept with the transcript.

They live in a `snippets` table of the transcript's SQLite file, through a
connection of their own (the store's connection belongs to its committer), so a
snippet saved is on disk at once; with `--db :memory:` they live in memory. A room
shared through Redis keeps them on its shelf (`store.shelf`), where every instance
finds them.
Placeholders (`{{counter}}`, `{{time}}`, ...) expand when one is sent, as the
auto-responder's do.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from webchat.notation import parse_hex
from webchat.room.responder import expand
from webchat.store.shelf import RoomShelf

TABLE = """CREATE TABLE IF NOT EXISTS snippets (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, text TEXT, hex TEXT, sent INTEGER NOT NULL
)"""


MAX_SNIPPETS = 1000
"""They are all on the page as buttons, and all in memory: their count is bounded."""
MAX_SNIPPET = 64 * 1024
"""Characters in one snippet's text or hex."""


class SnippetError(ValueError):
    """A snippet that cannot be saved; the message says what to change."""


@dataclass(frozen=True)
class Snippet:
    id: int
    name: str
    text: str | None = None
    hex: str | None = None
    sent: int = 0

    def check(self) -> Snippet:
        if not self.name.strip():
            raise SnippetError("a snippet needs a name")
        if (self.text is None) == (self.hex is None):
            raise SnippetError("a snippet has either text or hex, not both")
        if len(self.name) > 100 or len(self.text or self.hex or "") > MAX_SNIPPET:
            raise SnippetError(f"a name is at most 100 characters, a snippet {MAX_SNIPPET}")
        if self.hex is not None:
            try:
                parse_hex(self.hex)
            except ValueError as exc:
                raise SnippetError(str(exc)) from None
        return self

    def payload(self, peer: str) -> bytes:
        """The bytes to send now: hex as it is, text with its placeholders expanded."""
        if self.hex is not None:
            return parse_hex(self.hex)
        return expand(self.text or "", peer, self.sent + 1).encode()  # {{counter}}: 1 first

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "text": self.text, "hex": self.hex,
                "sent": self.sent}  # fmt: skip


class Snippets:
    def __init__(self, path: str | None, shelf: RoomShelf | None = None) -> None:
        self._conn: sqlite3.Connection | None = None
        self._kept: dict[int, Snippet] = {}
        self._shelf = shelf
        if path is not None:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._conn.execute(TABLE)
            rows = self._conn.execute("SELECT id, name, text, hex, sent FROM snippets")
            self._kept = {row[0]: Snippet(*row) for row in rows}

    async def fresh(self) -> None:
        """As the room has them now: another instance may have changed them. Raises
        `StoreError` while the shelf cannot be reached."""
        if self._shelf is not None and (records := await self._shelf.newer()) is not None:
            self._kept = {key: Snippet(**fields) for key, fields in records.items()}

    def all(self) -> list[Snippet]:
        return sorted(self._kept.values(), key=lambda s: s.id)

    def get(self, snippet_id: int) -> Snippet | None:
        return self._kept.get(snippet_id)

    async def put(self, fields: dict[str, Any], snippet_id: int | None = None) -> Snippet:
        if snippet_id is None and len(self._kept) >= MAX_SNIPPETS:
            raise SnippetError(f"there are {MAX_SNIPPETS} snippets already: delete some first")
        known = self._kept.get(snippet_id) if snippet_id is not None else None
        snippet = Snippet(id=snippet_id or 0, sent=known.sent if known else 0, **fields).check()
        if snippet_id is None:
            new_id = max(self._kept, default=0) + 1
            if self._shelf is not None:
                new_id = await self._shelf.new_id()
            snippet = replace(snippet, id=new_id)
        await self._write(snippet)
        return snippet

    async def count(self, snippet: Snippet) -> Snippet:
        """One more send: `{{counter}}` goes up."""
        counted = replace(snippet, sent=snippet.sent + 1)
        await self._write(counted)
        return counted

    async def remove(self, snippet_id: int) -> bool:
        if snippet_id not in self._kept:
            return False
        if self._shelf is not None:
            await self._shelf.remove(snippet_id)
        elif self._conn is not None:
            self._conn.execute("DELETE FROM snippets WHERE id = ?", (snippet_id,))
        del self._kept[snippet_id]
        return True

    async def _write(self, snippet: Snippet) -> None:
        if self._shelf is not None:
            await self._shelf.put(snippet.id, snippet.public())
        elif self._conn is not None:
            self._conn.execute(
                "INSERT OR REPLACE INTO snippets VALUES (?, ?, ?, ?, ?)",
                (snippet.id, snippet.name, snippet.text, snippet.hex, snippet.sent),
            )
        self._kept[snippet.id] = snippet

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
