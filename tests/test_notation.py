"""Escapes and hex: bytes as text and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webchat.notation import escape, parse_hex, printable, unescape


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


def test_printable_escapes_what_drives_a_terminal_or_reorders_text() -> None:
    assert printable("ok café ✓") == "ok café ✓"
    assert printable("a\x1b[2Jb\x9b31mc") == "a\\x1b[2Jb\\x9b31mc"  # ESC and the C1 CSI
    assert printable("x\u2028y\u202ez\u2066") == "x\\u2028y\\u202ez\\u2066"
