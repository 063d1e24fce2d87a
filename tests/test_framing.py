"""The framers, fed bytes without sockets: whole, byte by byte, and split anywhere."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webchat.framing import (
    FRAMERS,
    Framer,
    FramingError,
    LineFramer,
    RawFramer,
    frame_send,
    make_framer,
)
from webchat.types import LineEnding


def run(framer: Framer, chunks: list[bytes]) -> list[bytes]:
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


def test_crlf_reads_like_line_and_sends_crlf() -> None:
    framer = make_framer("crlf", 100)
    assert run(framer, [b"a\r\nb\nc"]) == [b"a", b"b", b"c"]
    assert framer.encode(b"hi") == b"hi\r\n"


def test_crlf_sends_turn_bare_lf_into_crlf_and_never_end_twice() -> None:
    framer = make_framer("crlf", 100)
    assert framer.encode(b"first\nsecond") == b"first\r\nsecond\r\n"
    assert framer.encode(b"third\r\n") == b"third\r\n"
    assert framer.encode(b"a\r\nb\n") == b"a\r\nb\r\n"
    assert framer.encode(b"") == b"\r\n"


def test_line_sends_end_in_one_lf() -> None:
    framer = make_framer("line", 100)
    assert framer.encode(b"one\n") == b"one\n"
    assert framer.encode(b"one\ntwo") == b"one\ntwo\n"
    assert framer.encode(b"crlf\r\n") == b"crlf\r\n"


@pytest.mark.parametrize(
    ("ending", "wire"),
    [
        ("framing", b"a\r\nb\r\n"),
        ("crlf", b"a\r\nb\r\n"),
        ("lf", b"a\nb\n"),
        ("none", b"a\nb"),
    ],
)
def test_the_sender_chooses_the_ending(ending: LineEnding, wire: bytes) -> None:
    assert frame_send(make_framer("crlf", 100), b"a\nb", ending) == wire


def test_an_explicit_ending_follows_its_own_convention_in_any_framing() -> None:
    assert frame_send(make_framer("nul", 100), b"a\nb", "crlf") == b"a\r\nb\r\n"
    assert frame_send(make_framer("len16", 100), b"a\n", "lf") == b"a\n"
    assert frame_send(make_framer("nul", 100), b"a", "framing") == b"a\x00"


@given(st.text(alphabet=st.sampled_from("ab\r\n\x00é"), max_size=60) | st.text(max_size=60))
def test_crlf_bytes_have_no_bare_lf_and_end_in_exactly_one_crlf(text: str) -> None:
    wire = make_framer("crlf", 1000).encode(text.encode())
    assert re.search(rb"(?<!\r)\n", wire) is None
    assert wire.endswith(b"\r\n")
    lines = text.encode().replace(b"\r\n", b"\n")  # the text's own line ends kept, one added
    assert wire[:-2].replace(b"\r\n", b"\n") == lines.removesuffix(b"\n")


def test_nul_terminated_keeps_cr_and_lf() -> None:
    framer = make_framer("nul", 100)
    assert framer.feed(b"a\r\nb\x00c") == [b"a\r\nb"]
    assert framer.flush() == [b"c"]
    assert framer.encode(b"x") == b"x\x00"


@pytest.mark.parametrize(("name", "size"), [("len16", 2), ("len32", 4)])
def test_length_prefixed_frames(name: str, size: int) -> None:
    framer = make_framer(name, 10)  # type: ignore[arg-type]
    frame = (3).to_bytes(size, "big") + b"abc" + (0).to_bytes(size, "big")
    assert framer.feed(frame[:2]) == [] and not framer.pending
    assert framer.feed(frame[2:]) == [b"abc", b""]
    assert framer.encode(b"hey") == (3).to_bytes(size, "big") + b"hey"
    assert framer.feed((4).to_bytes(size, "big") + b"ab") == []
    assert framer.flush() == [(4).to_bytes(size, "big") + b"ab"]  # nothing is lost at the end


def test_a_length_over_max_line_is_a_protocol_error_after_the_good_frames() -> None:
    framer = make_framer("len16", 10)
    assert framer.feed(b"\x00\x01A\x00\x0b" + b"x" * 11) == [b"A"]
    assert framer.error is not None and "11 bytes" in framer.error and "--max-line" in framer.error
    assert framer.feed(b"\x00\x01B") == []
    assert make_framer("line", 10).error is None


def test_len16_cannot_encode_more_than_65535_bytes() -> None:
    with pytest.raises(FramingError, match="16-bit"):
        make_framer("len16", 100).encode(b"x" * 65536)


@given(st.sampled_from(sorted(FRAMERS)), st.lists(st.binary(max_size=40), max_size=8), st.data())
def test_every_mode_round_trips_and_any_split_gives_the_same_messages(
    name: str, messages: list[bytes], data: st.DataObject
) -> None:
    def framer() -> Framer:
        return make_framer(name, 64)  # type: ignore[arg-type]

    if name == "raw":  # one chunk, cut at max_line
        joined = b"".join(messages)
        messages = [joined[i : i + 64] for i in range(0, len(joined), 64)]
    elif name in ("line", "crlf"):
        messages = [m.replace(b"\n", b"").rstrip(b"\r") for m in messages]
    elif name == "nul":
        messages = [m.replace(b"\x00", b"") for m in messages]
    stream = b"".join(framer().encode(m) for m in messages)
    assert run(framer(), [stream]) == messages
    if name != "raw":  # raw keeps each chunk as it came, by definition
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
        chunks = [stream[a:b] for a, b in itertools.pairwise([0, *cuts, len(stream)])]
        assert run(framer(), chunks) == messages
