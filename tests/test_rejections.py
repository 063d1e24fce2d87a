"""Coalescing refusals per address, without sockets or clocks."""

from __future__ import annotations

from webchat.roles.rejections import OTHERS, Rejections, Tally


def test_the_first_refusal_in_a_window_is_recorded_and_the_rest_counted() -> None:
    rules = Rejections(window=60, max_sources=10)
    assert rules.refuse("10.0.0.1", "full", 0.0)
    assert not any(rules.refuse("10.0.0.1", f"full {i}", 1.0 + i) for i in range(5))
    assert rules.refuse("10.0.0.2", "denied", 2.0)  # each address has its own window
    assert rules.due(59.9) == [] and rules.next_due() == 60.0
    assert rules.due(60.0) == [Tally("10.0.0.1", 5, "full 4")]
    assert rules.next_due() == 62.0
    assert rules.due(62.0) == []  # nothing more from 10.0.0.2: nothing to report
    assert rules.next_due() is None
    assert rules.refuse("10.0.0.1", "full", 70.0)  # a new window


def test_past_max_sources_the_other_addresses_share_one_count() -> None:
    rules = Rejections(window=60, max_sources=2)
    recorded = [rules.refuse(f"10.0.0.{i}", "denied", 0.0) for i in range(100)]
    assert recorded[:3] == [True, True, True] and not any(recorded[3:])
    assert [t.source for t in rules.due(60)] == [OTHERS]
    assert Tally(OTHERS, 97, "denied").detail == "97 more connections refused in 60 s; last: denied"
