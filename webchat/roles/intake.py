"""Commits a peer's entries one batch at a time, pausing its reading meanwhile.

Pause and resume are callables, as websockets' `Assembler` takes them, so the
pacing is tested without a socket; a flood is then paced at the socket by
what the store takes, and no unkept entry is ever shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from webchat.model import Entry
from webchat.store import StoreError


class Intake:
    """Commits a peer's entries one batch at a time, pausing its reading meanwhile."""

    __slots__ = ("_backlog", "_busy", "_idle", "_pause", "_record", "_resume", "_spawn")

    def __init__(
        self,
        record: Callable[[Sequence[Entry]], Awaitable[object]],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        pause: Callable[[], None],
        resume: Callable[[], None],
    ) -> None:
        self._record, self._spawn = record, spawn
        self._pause, self._resume = pause, resume
        self._busy = False
        self._backlog: list[Entry] = []
        self._idle: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        return self._busy

    async def settled(self) -> None:
        """Until everything taken so far is kept: a reply recorded after this follows it."""
        while self._busy:
            if self._idle is None:
                self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    def take(self, entries: list[Entry], then: Callable[[StoreError | None], None]) -> None:
        """Commit `entries` after whatever is in flight; `then` runs once all are kept."""
        if self._busy:  # bytes that were in flight when reading paused
            self._backlog += entries
            return
        self._busy = True
        self._pause()
        self._spawn(self._keep(entries, then))

    async def _keep(self, entries: list[Entry], then: Callable[[StoreError | None], None]) -> None:
        failure: StoreError | None = None
        try:
            while entries:
                await self._record(entries)
                entries, self._backlog = self._backlog, []
        except StoreError as exc:
            failure = exc
        self._busy = False
        if self._idle is not None:
            self._idle.set_result(None)
            self._idle = None
        self._resume()
        then(failure)
