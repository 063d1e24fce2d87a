"""Records a shared room keeps beside its transcript: saved messages and rules.

On SQLite they live beside the transcript file; a room shared through Redis has no
file, so each kind is a hash, `webchat:<room>:<kind>` (id -> JSON), with a counter
that gives new ids (`<kind>:id`) and a version that every change increments
(`<kind>:v`): an instance reloads a kind only when another one changed it. Every
call fails at once (`StoreError`) while Redis is away: a user's change is refused,
not left waiting.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import Pipeline

from webchat.store.redis import RedisStore

Record = dict[str, Any]


class RoomShelf:
    def __init__(self, store: RedisStore, kind: str) -> None:
        self._store = store
        self._client = store.client
        self._records = store.prefix + kind
        self._ids = self._records + ":id"
        self._version = self._records + ":v"
        self._seen = -1
        """The version the caller holds, as of the last `newer`."""

    async def newer(self) -> dict[int, Record] | None:
        """Every record, if another change came since the last call; else None (one
        `GET` of the version)."""
        found = await self._store.link.kept(lambda: self._client.get(self._version), refuse=True)
        if int(found or 0) == self._seen:
            return None

        async def both() -> list[Any]:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(self._version)
                pipe.hgetall(self._records)
                read: list[Any] = await pipe.execute()
                return read

        version, records = await self._store.link.kept(both, refuse=True)
        self._seen = int(version or 0)
        return {int(key): json.loads(value) for key, value in records.items()}

    async def new_id(self) -> int:
        return int(await self._store.link.kept(lambda: self._client.incr(self._ids), refuse=True))

    async def put(self, record_id: int, record: Record) -> None:
        await self._change(
            lambda pipe: pipe.hset(self._records, str(record_id), json.dumps(record))
        )

    async def remove(self, record_id: int) -> None:
        await self._change(lambda pipe: pipe.hdel(self._records, str(record_id)))

    async def _change(self, step: Callable[[Pipeline], object]) -> None:
        async def run() -> None:
            async with self._client.pipeline(transaction=True) as pipe:
                step(pipe)
                pipe.incr(self._version)
                await pipe.execute()

        await self._store.link.kept(run, refuse=True)
