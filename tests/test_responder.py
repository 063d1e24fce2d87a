"""The auto-responder without sockets: matches, captures, placeholders, scope, rate limit."""

from __future__ import annotations

import re

import pytest

from webchat.room.responder import (
    MAX_RULES,
    RATE_MOST,
    RATE_WINDOW,
    Reply,
    Responder,
    Rule,
    RuleError,
    expand,
)


def test_a_match_answers_with_its_captures() -> None:
    responder = Responder([Rule(1, r"PONG \1", match=r"^PING (.*)$")])
    replies, notices = responder.answer("irc:6667", "PING :irc.example.org", 0.0)
    assert replies == [Reply("irc:6667", b"PONG :irc.example.org", 1)] and notices == []
    assert responder.answer("irc:6667", "NOTICE hi", 1.0) == ([], [])
    assert responder.rules[1].hits == 1


def test_named_groups_and_placeholders_expand() -> None:
    found = re.search(r"(?P<who>\w+) says", "bob says hi")
    text = expand(r"hi \g<who> #{{counter}} {{peer}} {{unixtime}}", "p:1", 7, found)
    assert re.fullmatch(r"hi bob #7 p:1 \d{10}", text)
    assert re.fullmatch(r"\d\d:\d\d:\d\d \d+", expand("{{time}} {{random}}", "p", 0))


def test_scope_and_enabled_decide_who_gets_answers() -> None:
    responder = Responder(
        [
            Rule(1, "only a", match="x", peer="a:1"),
            Rule(2, "off", match="x", enabled=False),
        ]
    )
    assert [r.data for r in responder.answer("a:1", "x", 0)[0]] == [b"only a"]
    assert responder.answer("b:2", "x", 0) == ([], [])


def test_two_responders_looping_trip_the_rate_limit_once_per_window() -> None:
    responder = Responder([Rule(1, "ping", match="ping")])
    sent = [responder.answer("loop:1", "ping", i * 0.001) for i in range(RATE_MOST + 50)]
    assert sum(len(replies) for replies, _ in sent) == RATE_MOST
    notices = [n for _, found in sent for n in found]
    assert len(notices) == 1 and "held back" in notices[0]
    later = responder.answer("loop:1", "ping", RATE_WINDOW + 1)
    assert len(later[0]) == 1  # a new window answers again
    assert responder.answer("other:2", "ping", 0.2)[0]  # the limit is per peer


def test_a_broken_template_is_a_notice_not_a_crash() -> None:
    responder = Responder([Rule(1, r"\2", match="(a)")])
    assert responder.answer("p", "a", 0) == (
        [],
        ["rule 1 cannot reply: its reply template fails (invalid group reference 2 at position 1)"],
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"reply": "x"}, "either match"),
        ({"reply": "x", "match": "a", "every": 5}, "either match"),
        ({"reply": "x", "every": 0.1}, "at least 0.5"),
        ({"reply": "x", "match": "("}, "not a regular expression"),
    ],
)
def test_rules_that_cannot_work_are_refused(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(RuleError, match=problem):
        Responder().put(Rule(1, **fields))  # type: ignore[arg-type]


def test_the_number_of_rules_is_bounded() -> None:
    responder = Responder([Rule(i, "x", match="y") for i in range(1, MAX_RULES + 1)])
    with pytest.raises(RuleError, match="delete some first"):
        responder.put(Rule(MAX_RULES + 1, "x", match="y"))
    assert responder.put(Rule(1, "changed", match="y")).reply == "changed"  # replacing is fine
