"""Sans-I/O auto-responder: rules that answer a line (`^PING (.*)` -> `PONG \\1`) or fire
on a timer, with the placeholders they expand and the per-peer rate limit that stops
two responders from answering each other forever.

`Responder.answer` takes a received message and returns the replies; it never sends,
sleeps or reads a clock of its own (`now` is given), so every rule is tested without
a socket, as h11 tests its state machine.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

PLACEHOLDER = re.compile(r"\{\{(counter|time|unixtime|random|peer)\}\}")
RATE_MOST = 100
RATE_WINDOW = 10.0
"""At most `RATE_MOST` automatic replies to one peer in `RATE_WINDOW` seconds."""
MIN_EVERY = 0.5
"""The shortest timer, in seconds."""
MAX_RULES = 1000
"""Every received line is tried against each rule: their count is bounded."""


class RuleError(ValueError):
    """A rule that cannot work; the message says what to change."""


@dataclass(frozen=True)
class Rule:
    """`match` (a regex searched in each received line) or `every` (seconds, per
    connection); `reply` is the template; `peer` scopes it to one peer."""

    id: int
    reply: str
    match: str | None = None
    every: float | None = None
    peer: str | None = None
    enabled: bool = True
    hits: int = 0

    def check(self) -> Rule:
        if (self.match is None) == (self.every is None):
            raise RuleError("a rule has either match (a regex) or every (seconds), not both")
        if self.every is not None and self.every < MIN_EVERY:
            raise RuleError(f"every must be at least {MIN_EVERY} seconds")
        if self.match is not None:
            try:
                re.compile(self.match)
            except re.error as exc:
                raise RuleError(f"match is not a regular expression: {exc}") from None
        return self

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "match": self.match,
            "every": self.every,
            "reply": self.reply,
            "peer": self.peer,
            "enabled": self.enabled,
            "hits": self.hits,
        }


@dataclass(frozen=True)
class Reply:
    peer: str
    data: bytes
    rule: int


@dataclass
class _Window:
    sent: deque[float] = field(default_factory=deque)
    tripped: bool = False


def expand(template: str, peer: str, counter: int, found: re.Match[str] | None = None) -> str:
    """`\\1` and `\\g<name>` from the match, then the placeholders."""
    text = found.expand(template) if found is not None else template
    values = {
        "counter": lambda: str(counter),
        "time": lambda: time.strftime("%H:%M:%S", time.gmtime()),
        "unixtime": lambda: str(int(time.time())),
        "random": lambda: str(secrets.randbelow(2**31)),
        "peer": lambda: peer,
    }
    return PLACEHOLDER.sub(lambda m: values[m.group(1)](), text)


class Responder:
    """The rules, their hit counts, and each peer's recent automatic replies."""

    def __init__(self, rules: list[Rule] | None = None) -> None:
        self.rules: dict[int, Rule] = {rule.id: rule for rule in rules or ()}
        self._compiled: dict[int, re.Pattern[str]] = {}
        self._windows: dict[str, _Window] = {}

    def put(self, rule: Rule) -> Rule:
        rule = rule.check()
        self.has_room(rule.id)
        self.rules[rule.id] = rule
        self._compiled.pop(rule.id, None)
        return rule

    def has_room(self, rule_id: int | None) -> None:
        """Raises `RuleError` when a rule with this id (None: a new one) would be one too many."""
        if rule_id not in self.rules and len(self.rules) >= MAX_RULES:
            raise RuleError(f"there are {MAX_RULES} rules already: delete some first")

    def remove(self, rule_id: int) -> bool:
        self._compiled.pop(rule_id, None)
        return self.rules.pop(rule_id, None) is not None

    def next_id(self) -> int:
        return max(self.rules, default=0) + 1

    def answer(self, peer: str, text: str, now: float) -> tuple[list[Reply], list[str]]:
        """The replies a received line calls for, and a notice for each peer whose rate
        limit trips now (once per window, however many replies it holds back)."""
        replies: list[Reply] = []
        notices: list[str] = []
        for rule in list(self.rules.values()):
            if rule.match is None or not rule.enabled or rule.peer not in (None, peer):
                continue
            pattern = self._compiled.get(rule.id)
            if pattern is None:
                pattern = self._compiled[rule.id] = re.compile(rule.match)
            found = pattern.search(text)
            if found is None:
                continue
            reply = self.fire(rule, peer, now, found)
            if isinstance(reply, Reply):
                replies.append(reply)
            elif reply:
                notices.append(reply)
        return replies, notices

    def fire(
        self, rule: Rule, peer: str, now: float, found: re.Match[str] | None = None
    ) -> Reply | str | None:
        """One firing of `rule` for `peer`: its reply, a rate-limit notice, or None."""
        window = self._windows.setdefault(peer, _Window())
        while window.sent and now - window.sent[0] >= RATE_WINDOW:
            window.sent.popleft()
        if len(window.sent) >= RATE_MOST:
            if window.tripped:
                return None
            window.tripped = True
            return (
                f"automatic replies to {peer} held back: more than {RATE_MOST} in "
                f"{RATE_WINDOW:g} s (two responders answering each other?)"
            )
        window.tripped = False
        window.sent.append(now)
        rule = self.rules[rule.id] = replace(rule, hits=rule.hits + 1)
        try:
            text = expand(rule.reply, peer, rule.hits, found)
        except (re.error, IndexError) as exc:  # \3 with two groups, a stray backslash
            return f"rule {rule.id} cannot reply: its reply template fails ({exc})"
        return Reply(peer, text.encode(), rule.id)

    def forget(self, peer: str) -> None:
        """The peer left: its rate window goes with it."""
        self._windows.pop(peer, None)
