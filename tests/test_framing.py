"""The framers, fed bytes without sockets: whole, byte by byte, and split anywhere."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webchat.framing import LineFramer, RawFramer, make_framer


def run(framer: LineFramer | RawFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    out.extend(framer.flush())
    return out


def test_lines_split_on_lf_and_drop_one_cr() -> None:
    assert run(LineFramer(100), [b"a\nb\r\nc\r\r\n\n"]) == [b"a", b"b", b"c\r", b""]


def test_partial_line_waits_for_flush() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"hello") == []
    assert framer.pending
    assert framer.flush() == [b"hello"]
    assert not framer.pending
    assert framer.flush() == []


def test_line_completed_across_feeds() -> None:
    framer = LineFramer(100)
    assert framer.feed(b"hel") == []
    assert framer.feed(b"lo\nwor") == [b"hello"]
    assert framer.feed(b"ld\n") == [b"world"]


def test_long_line_is_cut_into_max_line_pieces_before_any_newline() -> None:
    framer = LineFramer(4)
    assert framer.feed(b"abcdefghij") == [b"abcd", b"efgh"]
    assert framer.feed(b"\n") == [b"ij"]


def test_buffer_never_exceeds_max_line_plus_one() -> None:
    framer = LineFramer(8)
    for _ in range(1000):
        framer.feed(b"xyz")
        assert len(framer._buf) <= 9


def test_line_of_exactly_max_with_crlf_is_one_message() -> None:
    assert run(LineFramer(4), [b"abcd\r", b"\n"]) == [b"abcd"]
    assert run(LineFramer(4), [b"abcd\n"]) == [b"abcd"]


def test_encode_appends_lf_in_line_mode_and_nothing_in_raw() -> None:
    assert LineFramer(10).encode(b"hi") == b"hi\n"
    assert RawFramer(10).encode(b"hi") == b"hi"


def test_raw_chunks_are_messages_split_at_max_line() -> None:
    framer = RawFramer(3)
    assert framer.feed(b"ab") == [b"ab"]
    assert framer.feed(b"abcdefg") == [b"abc", b"def", b"g"]
    assert framer.feed(b"") == []
    assert not framer.pending


def test_make_framer_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        make_framer("line", 0)
    assert isinstance(make_framer("raw", 5), RawFramer)


@st.composite
def split_stream(draw: st.DrawFn) -> tuple[bytes, list[bytes], int]:
    data = draw(st.binary(max_size=300).map(lambda b: b.replace(b"z", b"\n").replace(b"y", b"\r")))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=20)))
    edges = [0, *cuts, len(data)]
    return (
        data,
        [data[a:b] for a, b in itertools.pairwise(edges)],
        draw(st.integers(1, 12)),
    )


@given(split_stream())
def test_any_split_gives_the_same_lines(case: tuple[bytes, list[bytes], int]) -> None:
    data, chunks, max_line = case
    whole = run(LineFramer(max_line), [data])
    assert run(LineFramer(max_line), chunks) == whole
    assert run(LineFramer(max_line), [bytes([b]) for b in data]) == whole
    assert all(len(m) <= max_line for m in whole)
    assert b"\n" not in b"".join(whole)


@given(st.binary(max_size=300).map(lambda b: b.replace(b"z", b"\n").replace(b"\r", b"")))
def test_encoded_lines_decode_back(data: bytes) -> None:
    framer = LineFramer(10_000)
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert run(framer, [data]) == expected
    assert run(LineFramer(10_000), [b"".join(framer.encode(m) for m in expected)]) == expected
