"""Entry helpers: timestamps, peer names and console lines."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from webchat.model import iso_utc, peer_name, split_host_port


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_iso_utc_matches_datetime_to_the_millisecond(ts: float) -> None:
    expected = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    assert iso_utc(ts) == expected


def test_peer_names_round_trip_with_ipv6_brackets() -> None:
    assert peer_name("::1", 80) == "[::1]:80" and split_host_port("[::1]:80") == ("::1", 80)
    assert split_host_port(peer_name("10.0.0.1", 9000)) == ("10.0.0.1", 9000)
