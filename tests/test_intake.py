"""A peer's intake without sockets: reading runs a bounded amount ahead of the store."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

import pytest

from webchat.model import Entry, Message
from webchat.roles.intake import AHEAD, ENTRY_WEIGHT, Budget, Intake
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

    def intake(self, budget: Budget | None = None) -> Intake:
        return Intake(self.record, self.spawn, self.pause, self.resume, budget or Budget())


def lines(*texts: str) -> list[Entry]:
    return [Message.received("p:1", t.encode()) for t in texts]


async def test_reading_goes_on_while_a_batch_commits_and_what_came_is_kept_next() -> None:
    flow = Flow()
    intake = flow.intake()
    outcomes: list[StoreError | None] = []
    intake.take(lines("1"), outcomes.append)
    intake.take(lines("2", "3"), outcomes.append)  # read while "1" commits
    assert flow.calls == [] and intake.busy
    flow.gate.set()
    await asyncio.gather(*flow.tasks)
    assert flow.kept == [["1"], ["2", "3"]] and flow.calls == []
    assert outcomes == [None] and not intake.busy


async def test_reading_pauses_past_ahead_and_resumes_once_the_store_caught_up() -> None:
    flow = Flow()
    intake = flow.intake()
    big: list[Entry] = [Message.received("p:1", b"x" * (AHEAD // 4))]
    intake.take(lines("first"), lambda _: None)
    for _ in range(3):
        intake.take(big, lambda _: None)
    assert flow.calls == []  # just under AHEAD
    intake.take(big, lambda _: None)
    assert flow.calls == ["pause"]
    await asyncio.sleep(0.01)
    assert flow.calls == ["pause"] and not flow.kept  # still committing: still paused
    flow.gate.set()
    await asyncio.gather(*flow.tasks)
    assert flow.calls == ["pause", "resume"] and len(flow.kept) == 2


async def test_one_budget_bounds_every_peer_together() -> None:
    budget = Budget(limit=10 * ENTRY_WEIGHT)
    flows = [Flow() for _ in range(3)]
    intakes = [flow.intake(budget) for flow in flows]
    for intake in intakes:  # each peer's first batch is always taken: every peer progresses
        intake.take(lines(*"abc"), lambda _: None)
    assert budget.held == 9 * (ENTRY_WEIGHT + 1) and all(f.calls == [] for f in flows)
    intakes[0].take(lines("d"), lambda _: None)  # the tenth entry fills the budget
    assert flows[0].calls == ["pause"]
    intakes[1].take(lines("e"), lambda _: None)
    assert flows[1].calls == ["pause"] and flows[2].calls == []
    for flow in flows:
        flow.gate.set()
        await asyncio.gather(*flow.tasks)
    assert budget.held == 0
    assert [f.calls for f in flows] == [["pause", "resume"], ["pause", "resume"], []]


async def test_a_store_failure_is_handed_back_and_what_was_held_is_released() -> None:
    flow = Flow(fail=True)
    budget = Budget(limit=ENTRY_WEIGHT)
    intake = flow.intake(budget)
    outcomes: list[StoreError | None] = []
    intake.take(lines("x"), outcomes.append)
    intake.take(lines("y"), outcomes.append)  # over the budget: paused
    assert flow.calls == ["pause"]
    flow.gate.set()
    await asyncio.gather(*flow.tasks)
    assert isinstance(outcomes[0], StoreError) and flow.calls == ["pause", "resume"]
    assert budget.held == 0 and not intake.busy
