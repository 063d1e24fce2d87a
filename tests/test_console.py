"""The console mirror's lines."""

from __future__ import annotations

from webchat.console import console_line
from webchat.model import Event, Message


def test_console_lines_escape_control_characters() -> None:
    line = console_line(Message.received("a:1", b"\x1b[2Jhi\r\n"))
    assert "\x1b" not in line and line.endswith("a:1 \\x1b[2Jhi\\r\\n")
    assert console_line(Event("listening", None, "ok")).endswith("--- - listening: ok")
    assert console_line(Message.received("a:1", b"ok\xff\x00")).endswith(r"a:1 ok\xff\0")
