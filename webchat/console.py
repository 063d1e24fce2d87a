"""The console mirror: every committed entry as one line on stdout, control bytes escaped.

The lines are written by a thread of their own, through a bounded buffer. Writing
on the event loop blocked the whole server whenever stdout stopped taking data: a
terminal paused with Ctrl-S, `webchat server | less` scrolled back, a pipe nobody
reads. Now past `BUFFER` bytes the lines are counted instead of kept, and the count
is printed where the gap is once stdout takes writes again.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TextIO

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


BUFFER = 1024 * 1024
"""Characters of lines waiting for stdout; past it, entries are counted, not kept."""


class Console:
    """A hub listener that mirrors every committed batch to `out`, never blocking the loop."""

    def __init__(self, out: TextIO | None = None, limit: int = BUFFER) -> None:
        self._out = out or sys.stdout
        self._limit = limit
        self._lines: deque[str] = deque()
        self._size = 0
        self._skipped = 0
        self._stopped = False
        self._ready = threading.Condition()
        self._idle = threading.Event()
        self._idle.set()
        threading.Thread(target=self._write, name="webchat-console", daemon=True).start()

    def __call__(self, entries: Sequence[Entry]) -> None:
        if self._stopped:
            return
        text = "".join(console_line(entry) + "\n" for entry in entries)
        with self._ready:
            if self._size + len(text) > self._limit:
                self._skipped += len(entries)
                return
            self._lines.append(text)
            self._size += len(text)
            self._idle.clear()
            self._ready.notify()

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._lines and not self._skipped:
                    self._idle.set()
                    self._ready.wait()
                text = "".join(self._lines)
                self._lines.clear()
                self._size = 0
                skipped, self._skipped = self._skipped, 0
            if skipped:
                text += f"webchat: {skipped} entries not mirrored here: stdout was not being read\n"
            try:
                self._out.write(text)
                self._out.flush()
            except (OSError, ValueError):  # stdout closed: the transcript still has it all
                self._stopped = True
                with contextlib.suppress(OSError, ValueError):
                    self._out.close()  # else the exit's own flush fails again
                self._idle.set()
                sys.stderr.write("webchat: the console mirror stopped: stdout is closed\n")
                return

    def drain(self, timeout: float) -> None:
        """Wait, up to `timeout` seconds, for the lines still waiting to be written."""
        self._idle.wait(timeout)
