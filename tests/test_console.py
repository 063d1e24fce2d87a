"""The console mirror's lines."""

from __future__ import annotations

import os
import select
import time
from io import BufferedReader

import pytest

from webchat.console import Console, console_line
from webchat.model import Event, Message


def test_console_lines_escape_control_characters() -> None:
    line = console_line(Message.received("a:1", b"\x1b[2Jhi\r\n"))
    assert "\x1b" not in line and line.endswith("a:1 \\x1b[2Jhi\\r\\n")
    assert console_line(Event("listening", None, "ok")).endswith("--- - listening: ok")
    assert console_line(Message.received("a:1", b"ok\xff\x00")).endswith(r"a:1 ok\xff\0")


def test_a_stdout_nobody_reads_never_blocks_and_the_gap_is_counted() -> None:
    read_end, write_end = os.pipe()
    out = os.fdopen(write_end, "w")
    console = Console(out, limit=10_000)
    started = time.monotonic()
    for i in range(20_000):  # 600 KB: far more than the pipe (64 KiB) and the buffer hold
        console([Message.received("a:1", b"line %d" % i)])
    assert time.monotonic() - started < 1.0  # the loop was never blocked
    with os.fdopen(read_end, "rb") as reading:
        text = read_until_quiet(reading)  # stdout is read again: the backlog, then the gap
        console([Message.received("a:1", b"after the gap")])
        text += read_until_quiet(reading)
        out.close()
    lines = text.decode().splitlines()
    skipped = sum(int(x.split()[1]) for x in lines if "not mirrored here" in x)
    assert skipped > 0 and len([x for x in lines if " in  a:1 " in x]) + skipped == 20_001


def read_until_quiet(reading: BufferedReader) -> bytes:
    text = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and select.select([reading], [], [], 0.5)[0]:
        text += reading.read1(65536)
    return text


def test_a_closed_stdout_stops_the_mirror_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    console = Console(os.fdopen(write_end, "w"))
    for _ in range(3):
        console([Event("listening", None, "ok")])
        console.drain(2)
    assert capsys.readouterr().err.count("console mirror stopped") == 1
