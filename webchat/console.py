"""The console mirror: every committed entry as one line on stdout, control bytes escaped."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from webchat.model import Entry, Message
from webchat.notation import lossless, printable


def console_line(entry: Entry) -> str:
    """Local time, direction or event, peer, text."""
    clock = (
        time.strftime("%H:%M:%S", time.localtime(entry.ts)) + f".{int(entry.ts * 1000) % 1000:03d}"
    )
    if isinstance(entry, Message):
        return (
            f"{clock} {entry.direction:<3} {entry.peer or '*'} {lossless(entry.text, entry.data)}"
        )
    detail = printable(entry.detail)
    return f"{clock} --- {entry.peer or '-'} {entry.kind}{': ' + detail if detail else ''}"


def mirror(entries: Sequence[Entry]) -> None:
    """One write and one flush a batch, not a line, under load."""
    sys.stdout.write("".join(console_line(entry) + "\n" for entry in entries))
    sys.stdout.flush()
