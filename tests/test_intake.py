"""A peer's intake without sockets: reading pauses while its entries are committed."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest

from webchat.model import Entry, Message
from webchat.roles.intake import Intake
from webchat.store import StoreError

pytestmark = pytest.mark.anyio


class Flow:
    """Mock pause/resume callables, and a record that waits until the test lets it commit."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.kept: list[list[str]] = []
        self.gate = asyncio.Event()
        self.fail = fail
        self.tasks: list[asyncio.Task[None]] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    async def record(self, entries: Sequence[Entry]) -> None:
        await self.gate.wait()
        if self.fail:
            raise StoreError("transcript t.db cannot grow, the disk is full")
        self.kept.append([e.text for e in entries if isinstance(e, Message)])

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coro))

    def intake(self) -> Intake:
        return Intake(self.record, self.spawn, self.pause, self.resume)


def lines(*texts: str) -> list[Entry]:
    return [Message.received("p:1", t.encode()) for t in texts]


async def test_reading_pauses_until_the_batch_is_kept_then_resumes() -> None:
    flow = Flow()
    intake = flow.intake()
    outcomes: list[StoreError | None] = []
    intake.take(lines("a", "b"), outcomes.append)
    assert flow.calls == ["pause"] and intake.busy
    await asyncio.sleep(0.01)
    assert flow.calls == ["pause"] and not flow.kept  # still committing: still paused
    flow.gate.set()
    await asyncio.gather(*flow.tasks)
    assert flow.kept == [["a", "b"]] and flow.calls == ["pause", "resume"]
    assert outcomes == [None] and not intake.busy


async def test_bytes_in_flight_while_paused_are_kept_next_in_order() -> None:
    flow = Flow()
    intake = flow.intake()
    outcomes: list[StoreError | None] = []
    intake.take(lines("1"), outcomes.append)
    intake.take(lines("2", "3"), outcomes.append)  # arrived before the pause took effect
    flow.gate.set()
    await asyncio.gather(*flow.tasks)
    assert flow.kept == [["1"], ["2", "3"]] and flow.calls == ["pause", "resume"]
    assert outcomes == [None]


async def test_a_store_failure_is_handed_back_and_reading_resumes() -> None:
    flow = Flow(fail=True)
    intake = flow.intake()
    outcomes: list[StoreError | None] = []
    intake.take(lines("x"), outcomes.append)
    flow.gate.set()
    await asyncio.gather(*flow.tasks)
    assert isinstance(outcomes[0], StoreError) and flow.calls == ["pause", "resume"]
