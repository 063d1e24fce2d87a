"""The auto-responder at work: a hub listener that runs the rules on every received line,
keeps each connection's timers, and stores the rules beside the transcript (in a file,
or on a shared room's shelf, where every instance finds them).

It sees entries once they are committed, as every reader does, so a reply always
follows what it answers in the transcript; replies go out through the role, marked
with their rule. Timers start when a peer's `connected` entry is kept (after the
client role's `--on-connect` lines were sent) and stop when it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from webchat.model import Entry, Event, Message
from webchat.roles.base import RoleBase, SendError
from webchat.room.responder import Responder, Rule, RuleError
from webchat.store import StoreError
from webchat.store.shelf import RoomShelf

ECHO = Rule(0, "\\g<0>", match="(?s)^.*$")
"""`--echo`: every line back, as it came (rule 0, listed and switchable like any other)."""


def load_rules(path: str | None) -> list[Rule]:
    """The saved rules; raises `StoreError` with one line for a file that cannot be used."""
    if path is None or not os.path.exists(path):
        return []
    try:
        saved = json.loads(Path(path).read_text())
        return [Rule(**fields).check() for fields in saved]
    except (OSError, ValueError, TypeError) as exc:
        raise StoreError(
            f"the rules file {path} cannot be read ({exc}): fix it or move it away"
        ) from None


def saved(rule: Rule) -> dict[str, Any]:
    """What is kept of a rule: all but its hits, which each instance counts."""
    return {key: value for key, value in rule.public().items() if key != "hits"}


class AutoReply:
    def __init__(
        self, role: RoleBase, path: str | None, echo: bool = False, shelf: RoomShelf | None = None
    ) -> None:
        self._role = role
        self._path = Path(path) if path else None
        self._shelf = shelf
        self.responder = Responder(load_rules(path))
        if echo:
            self.responder.put(ECHO)
        self._timers: dict[tuple[str, int], asyncio.Task[None]] = {}

    def _save(self) -> None:
        """Written whole to a new file, then renamed over the old: never half a file."""
        if self._path is None:
            return
        kept = [r.public() for r in self.responder.rules.values() if r.id != ECHO.id]
        fresh = self._path.with_name(self._path.name + ".new")
        fresh.write_text(json.dumps(kept, indent=1))
        os.replace(fresh, self._path)

    async def fresh(self) -> None:
        """A shared room's rules as the room has them now (each instance counts its own
        hits). Raises `StoreError` while the shelf cannot be reached."""
        records = None if self._shelf is None else await self._shelf.newer()
        if records is None:
            return
        rules = self.responder.rules
        for gone in [key for key in rules if key != ECHO.id and key not in records]:
            self._drop(gone)
        for key, fields in records.items():
            known = rules.get(key)
            if known is None or saved(known) != fields:
                with contextlib.suppress(RuleError, TypeError):  # checked before it was kept
                    self._use(Rule(**fields, hits=known.hits if known else 0))

    def __call__(self, entries: Sequence[Entry]) -> None:
        if not self.responder.rules:  # the common case: a flood costs one check per commit
            return
        now = time.monotonic()
        for entry in entries:
            if isinstance(entry, Message):
                if entry.direction == "in" and entry.peer is not None:
                    replies, notices = self.responder.answer(entry.peer, entry.text, now)
                    for reply in replies:
                        self._role.spawn(self._send(reply.data, reply.peer, reply.rule))
                    for notice in notices:
                        self._role.spawn(self._note(entry.peer, notice))
            elif entry.kind == "connected" and entry.peer is not None:
                self.start_timers(entry.peer)
            elif entry.kind == "disconnected" and entry.peer is not None:
                self._stop_timers(entry.peer)
                self.responder.forget(entry.peer)

    async def _send(self, data: bytes, peer: str, rule: int) -> None:
        with contextlib.suppress(SendError, StoreError):  # gone already; its departure says why
            await self._role.send(data, peer, rule=rule)

    async def _note(self, peer: str, notice: str) -> None:
        with contextlib.suppress(StoreError):
            await self._role.record([Event("rate_limited", peer, notice)])

    def start_timers(self, peer: str, only: Rule | None = None) -> None:
        rules = [only] if only else list(self.responder.rules.values())
        for rule in rules:
            if rule.every is not None and rule.peer in (None, peer):
                key = (peer, rule.id)
                if key not in self._timers:
                    self._timers[key] = self._role.spawn(self._tick(peer, rule.id, rule.every))

    def _stop_timers(self, peer: str | None = None, rule_id: int | None = None) -> None:
        for key in [k for k in self._timers if peer in (None, k[0]) and rule_id in (None, k[1])]:
            self._timers.pop(key).cancel()

    async def _tick(self, peer: str, rule_id: int, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            rule = self.responder.rules.get(rule_id)
            if rule is None or peer not in self._role.peers:
                return
            if not rule.enabled:
                continue
            fired = self.responder.fire(rule, peer, time.monotonic())
            if isinstance(fired, str):
                await self._note(peer, fired)
            elif fired is not None:
                await self._send(fired.data, peer, rule_id)

    async def put(self, fields: dict[str, Any], rule_id: int | None = None) -> Rule:
        """Create (no id) or replace a rule; raises `RuleError` for one that cannot work."""
        known = self.responder.rules.get(rule_id) if rule_id is not None else None
        rule = Rule(id=rule_id or 0, hits=known.hits if known else 0, **fields).check()
        self.responder.has_room(rule_id)
        if rule_id is None:
            fresh_id = self.responder.next_id()
            if self._shelf is not None:
                fresh_id = await self._shelf.new_id()
            rule = replace(rule, id=fresh_id)
        if self._shelf is not None and rule.id != ECHO.id:  # --echo is each instance's own
            await self._shelf.put(rule.id, saved(rule))
        rule = self._use(rule)
        self._save()
        return rule

    def _use(self, rule: Rule) -> Rule:
        rule = self.responder.put(rule)
        self._stop_timers(rule_id=rule.id)  # a changed timer starts over
        for peer in self._role.peers:
            self.start_timers(peer, rule)
        return rule

    async def remove(self, rule_id: int) -> bool:
        if rule_id not in self.responder.rules:
            return False
        if self._shelf is not None:
            await self._shelf.remove(rule_id)
        self._drop(rule_id)
        self._save()
        return True

    def _drop(self, rule_id: int) -> None:
        self._stop_timers(rule_id=rule_id)
        self.responder.remove(rule_id)

    def stop(self) -> None:
        self._stop_timers()


__all__ = ["AutoReply", "RuleError", "load_rules"]
