"""The telnet filter without sockets: negotiation refused, IAC out of the text, CR NUL."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from webchat.telnet import DO, DONT, IAC, SB, SE, WILL, WONT, TelnetFilter, escape


def test_offers_are_refused_and_kept_out_of_the_text() -> None:
    filtered = TelnetFilter().feed(
        bytes([IAC, DO, 1, IAC, WILL, 3]) + b"login: " + bytes([IAC, WONT, 1, IAC, DONT, 31])
    )
    assert filtered.data == b"login: "
    assert filtered.reply == bytes([IAC, WONT, 1, IAC, DONT, 3])  # WONT/DONT get no answer
    assert filtered.notes == ["DO ECHO", "WILL SUPPRESS-GO-AHEAD", "WONT ECHO", "DONT NAWS"]
    assert filtered.describe() == (
        "DO ECHO, WILL SUPPRESS-GO-AHEAD, WONT ECHO, DONT NAWS; "
        "answered WONT ECHO, DONT SUPPRESS-GO-AHEAD"
    )


def test_iac_iac_is_one_0xff_byte_and_escape_doubles_it() -> None:
    assert TelnetFilter().feed(b"a\xff\xffb").data == b"a\xffb"
    assert escape(b"a\xffb") == b"a\xff\xffb"
    assert escape(b"plain") == b"plain"


def test_cr_nul_ends_a_line_like_cr_lf_even_across_chunks() -> None:
    telnet = TelnetFilter()
    assert telnet.feed(b"one\r\x00two\r").data == b"one\r\ntwo\r"
    assert telnet.feed(b"\x00three\r\n").data == b"\nthree\r\n"
    assert telnet.feed(b"a\rb").data == b"a\rb"  # a CR followed by anything else stays


def test_subnegotiation_is_skipped_and_named() -> None:
    chunk = bytes([IAC, SB, 24, 1, IAC, IAC, 7, IAC, SE]) + b"text"
    filtered = TelnetFilter().feed(chunk)
    assert filtered.data == b"text"
    assert filtered.notes == ["SB TERMINAL-TYPE"]
    assert filtered.reply == b""


def test_a_long_run_of_commands_is_summed_up() -> None:
    filtered = TelnetFilter().feed(bytes([IAC, DO, 200]) * 40)
    assert len(filtered.reply) == 120
    assert filtered.describe().count("DO 200") == 16
    assert "and 24 more" in filtered.describe()


stream_bytes = st.lists(
    st.sampled_from([b"a", b"\r", b"\x00", b"\n", b"\xff", bytes([DO]), bytes([SB]), bytes([SE])]),
    max_size=60,
).map(b"".join)


@given(stream_bytes, st.data())
def test_any_split_filters_the_same(stream: bytes, data: st.DataObject) -> None:
    whole = TelnetFilter().feed(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    telnet = TelnetFilter()
    parts = [telnet.feed(stream[a:b]) for a, b in itertools.pairwise([0, *cuts, len(stream)])]
    assert b"".join(p.data for p in parts) == whole.data
    assert b"".join(p.reply for p in parts) == whole.reply
    assert [n for p in parts for n in p.notes] == whole.notes


@given(st.binary(max_size=100))
def test_escaped_data_comes_back_as_it_was(payload: bytes) -> None:
    assert TelnetFilter().feed(escape(payload.replace(b"\r", b""))).data == payload.replace(
        b"\r", b""
    )
