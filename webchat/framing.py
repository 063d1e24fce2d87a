"""Sans-I/O framing: bytes from a TCP stream in, message payloads out.

A framer never touches a socket, a task or a clock. `tcp.py` feeds it what
`recv()` returned and calls `flush()` after `FLUSH_AFTER` seconds of silence,
so a peer that sends `hello` without a newline (the seed client does) is
still heard. Every buffer is bounded by `max_line`: past it a line is cut into
pieces of that size, the way websockets' `StreamReader.read_line` refuses to
buffer past its limit before any newline arrives.
"""

from __future__ import annotations

from typing import Literal, Protocol

FramingName = Literal["line", "raw"]

FLUSH_AFTER = 0.2
"""Seconds of silence after which a partial line is delivered as it is."""

_LF = b"\n"
_CR = 0x0D


class Framer(Protocol):
    """What `tcp.py` needs from a framing mode."""

    @property
    def pending(self) -> bool:
        """True while bytes wait for a terminator, so the caller arms its flush timer."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def flush(self) -> list[bytes]: ...

    def encode(self, payload: bytes) -> bytes: ...


class LineFramer:
    """LF-terminated lines; a CR right before the LF is dropped.

    A line is cut into pieces of `max_line` bytes only once the stream proves
    it is longer than that (its content, CR excluded, exceeds `max_line`), so
    the payloads depend on the byte stream alone and never on how TCP split
    it. Deciding needs at most `max_line + 1` buffered bytes.
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_line: int) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._max = max_line
        self._buf = bytearray()

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        # Only the new bytes are searched for LF, so a slow drip of a long
        # line costs linear time, like h11's ReceiveBuffer.
        if _LF not in data:
            self._buf += data
            return self._cut_overflow()
        if self._buf:
            data = bytes(self._buf) + data
            self._buf.clear()
        lines = data.split(_LF)
        self._buf += lines.pop()
        out: list[bytes] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self._max:
                out.extend(self._pieces(line))
            else:
                out.append(line)
        out.extend(self._cut_overflow())
        return out

    def flush(self) -> list[bytes]:
        if not self._buf:
            return []
        line = bytes(self._buf)
        self._buf.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        return [line]

    def encode(self, payload: bytes) -> bytes:
        return payload + _LF

    def _pieces(self, line: bytes) -> list[bytes]:
        step = self._max
        return [line[i : i + step] for i in range(0, len(line), step)]

    def _cut_overflow(self) -> list[bytes]:
        # The buffer holds no LF here. With max+1 bytes whose last one is CR
        # the line may still end in CRLF at exactly max bytes: wait for one more.
        buf, step = self._buf, self._max
        out: list[bytes] = []
        while len(buf) > step and not (len(buf) == step + 1 and buf[-1] == _CR):
            out.append(bytes(buf[:step]))
            del buf[:step]
        return out


class RawFramer:
    """Each received chunk is one payload (split at `max_line`); sends add nothing."""

    __slots__ = ("_max",)

    def __init__(self, max_line: int) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._max = max_line

    @property
    def pending(self) -> bool:
        return False

    def feed(self, data: bytes) -> list[bytes]:
        if len(data) <= self._max:
            return [data] if data else []
        step = self._max
        return [data[i : i + step] for i in range(0, len(data), step)]

    def flush(self) -> list[bytes]:
        return []

    def encode(self, payload: bytes) -> bytes:
        return payload


FRAMERS: dict[FramingName, type[LineFramer] | type[RawFramer]] = {
    "line": LineFramer,
    "raw": RawFramer,
}


def make_framer(name: FramingName, max_line: int) -> Framer:
    """One framer per TCP connection: framers hold that connection's partial line."""
    return FRAMERS[name](max_line)
