"""Entry helpers: timestamps, peer names and console lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webchat.model import (
    Event,
    Message,
    console_line,
    escape,
    iso_utc,
    parse_hex,
    peer_name,
    split_host_port,
    unescape,
)


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_iso_utc_matches_datetime_to_the_millisecond(ts: float) -> None:
    expected = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    assert iso_utc(ts) == expected


def test_peer_names_round_trip_with_ipv6_brackets() -> None:
    assert peer_name("::1", 80) == "[::1]:80" and split_host_port("[::1]:80") == ("::1", 80)
    assert split_host_port(peer_name("10.0.0.1", 9000)) == ("10.0.0.1", 9000)


def test_console_lines_escape_control_characters() -> None:
    line = console_line(Message.received("a:1", b"\x1b[2Jhi\r\n"))
    assert "\x1b" not in line and line.endswith("a:1 \\x1b[2Jhi\\r\\n")
    assert console_line(Event("listening", None, "ok")).endswith("--- - listening: ok")
    assert console_line(Message.received("a:1", b"ok\xff\x00")).endswith(r"a:1 ok\xff\0")


@given(st.binary(max_size=100))
def test_escapes_name_any_bytes(data: bytes) -> None:
    assert unescape(escape(data)) == data


def test_escapes_and_their_errors() -> None:
    assert unescape(r"USER bob\r\nA\tB\0\x41\\ é") == "USER bob\r\nA\tB\x00A\\ é".encode()
    for bad in (r"a\q", "end\\", r"\x4"):
        with pytest.raises(ValueError, match="unknown escape"):
            unescape(bad)


def test_hex_input_with_or_without_separators() -> None:
    assert parse_hex("de ad be ef") == parse_hex("DEADBEEF") == parse_hex("de:ad:be:ef")
    assert parse_hex("") == b""
    with pytest.raises(ValueError, match="odd count"):
        parse_hex("abc")
    with pytest.raises(ValueError, match="not a hex digit"):
        parse_hex("0x12 zz")
