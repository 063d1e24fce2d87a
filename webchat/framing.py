"""Sans-I/O framing: bytes from a TCP stream in, message payloads out.

A framer never touches a socket, a task or a clock. `roles/peer.py` feeds it what
`recv()` returned and, in `line` framing, calls `flush()` after `FLUSH_AFTER`
seconds of silence, so a peer that sends `hello` without a newline (the seed
client does) is still heard. Strict protocols (`crlf`, `nul`, the length
prefixes) wait for their terminator: a line that TCP delivers in two packets
stays one line, however late the second comes (`--flush-after`).

Every buffer is bounded by `max_line`: past it a line is cut into pieces of
that size, the way websockets' `StreamReader.read_line` refuses to buffer
past its limit before any newline arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from webchat.types import FramingName, LineEnding

FLUSH_AFTER: dict[FramingName, float | None] = {"line": 0.2}
"""Seconds of silence after which a partial line is delivered as it is, by framing;
None (every other framing) waits for the terminator or the peer's close."""

_LF = b"\n"
_CRLF = b"\r\n"
_CR = 0x0D
_BARE_LF = re.compile(rb"(?<!\r)\n")


class FramingError(ValueError):
    """A payload this framing cannot encode; the message says why, for the user."""


class Framer(Protocol):
    """What a TCP peer needs from a framing mode."""

    @property
    def pending(self) -> bool:
        """True while bytes wait for a terminator, so the caller arms its flush timer."""

    @property
    def error(self) -> str | None:
        """Set once the stream broke the protocol; the caller closes the connection.
        An error is a value, as websockets keeps `parser_exc`, so the payloads that
        came before it in the same chunk are still returned."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def flush(self) -> list[bytes]:
        """What is buffered, as it is: after silence, or when the connection ends."""

    def encode(self, payload: bytes) -> bytes:
        """The bytes to write for `payload`; raises `FramingError` if it cannot be framed."""


class DelimitedFramer:
    """Payloads ended by one terminator byte; in LF modes a CR right before the LF is dropped.

    A payload is cut into pieces of `max_line` bytes only once the stream proves
    it is longer than that (its content, CR excluded, exceeds `max_line`), so
    the payloads depend on the byte stream alone and never on how TCP split
    it. Deciding needs at most `max_line + 1` buffered bytes.
    """

    __slots__ = ("_buf", "_end", "_max", "_strip_cr", "_suffix")
    error = None

    def __init__(self, max_line: int, end: bytes, suffix: bytes, strip_cr: bool) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._max = max_line
        self._buf = bytearray()
        self._end = end
        self._suffix = suffix
        self._strip_cr = strip_cr

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        # Only the new bytes are searched for the terminator, so a slow drip of a
        # long line costs linear time, like h11's ReceiveBuffer.
        if self._end not in data:
            self._buf += data
            return self._cut_overflow()
        if self._buf:
            data = bytes(self._buf) + data
            self._buf.clear()
        lines = data.split(self._end)
        self._buf += lines.pop()
        out: list[bytes] = []
        for line in lines:
            if self._strip_cr and line.endswith(b"\r"):
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
        if self._strip_cr and line.endswith(b"\r"):
            line = line[:-1]
        return [line]

    def encode(self, payload: bytes) -> bytes:
        if self._strip_cr:  # the LF conventions: no bare LF in CRLF, never two endings
            return end_lines(payload, self._suffix)
        return payload + self._suffix

    def _pieces(self, line: bytes) -> list[bytes]:
        step = self._max
        return [line[i : i + step] for i in range(0, len(line), step)]

    def _cut_overflow(self) -> list[bytes]:
        # The buffer holds no terminator here. With max+1 bytes whose last one is
        # CR the line may still end in CRLF at exactly max bytes: wait for one more.
        buf, step = self._buf, self._max
        out: list[bytes] = []
        while len(buf) > step and not (self._strip_cr and len(buf) == step + 1 and buf[-1] == _CR):
            out.append(bytes(buf[:step]))
            del buf[:step]
        return out


class LineFramer(DelimitedFramer):
    """`line`: LF-terminated, CR before LF dropped; sends end in LF."""

    __slots__ = ()

    def __init__(self, max_line: int) -> None:
        super().__init__(max_line, _LF, _LF, strip_cr=True)


class LengthFramer:
    """`len16` / `len32`: each payload follows its big-endian length, as many binary
    protocols frame messages. A length over `max_line` is refused from the header
    alone, before its bytes are buffered (as websockets' `Frame.parse` refuses an
    oversize frame), and the connection ends with that error."""

    __slots__ = ("_buf", "_max", "_size", "error")

    def __init__(self, max_line: int, size: int) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self._max = max_line
        self._size = size
        self._buf = bytearray()
        self.error: str | None = None

    @property
    def pending(self) -> bool:
        return False  # a partial frame waits for its bytes, not for a timer

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            return []
        self._buf += data
        out: list[bytes] = []
        size = self._size
        while len(self._buf) >= size:
            length = int.from_bytes(self._buf[:size], "big")
            if length > self._max:
                self.error = (
                    f"length prefix says {length} bytes, over the {self._max}-byte limit "
                    "(--max-line)"
                )
                self._buf.clear()
                break
            if len(self._buf) < size + length:
                break
            out.append(bytes(self._buf[size : size + length]))
            del self._buf[: size + length]
        return out

    def flush(self) -> list[bytes]:
        """An unfinished frame at the end of the connection, header included, as it came."""
        rest = bytes(self._buf)
        self._buf.clear()
        return [rest] if rest else []

    def encode(self, payload: bytes) -> bytes:
        limit = (1 << (8 * self._size)) - 1
        if len(payload) > limit:
            raise FramingError(
                f"{len(payload)} bytes do not fit a {8 * self._size}-bit length prefix "
                f"(at most {limit})"
            )
        return len(payload).to_bytes(self._size, "big") + payload


class RawFramer:
    """Each received chunk is one payload (split at `max_line`); sends add nothing."""

    __slots__ = ("_max",)
    error = None

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


FRAMERS: dict[FramingName, Callable[[int], Framer]] = {
    "line": LineFramer,
    "crlf": lambda n: DelimitedFramer(n, _LF, _CRLF, strip_cr=True),
    "raw": RawFramer,
    "nul": lambda n: DelimitedFramer(n, b"\x00", b"\x00", strip_cr=False),
    "len16": lambda n: LengthFramer(n, 2),
    "len32": lambda n: LengthFramer(n, 4),
}
"""Every mode by its `--framing` name; a dict, so adding one is one line (h11's READERS)."""


def end_lines(payload: bytes, ending: bytes) -> bytes:
    """A payload in an LF-ended convention: with CRLF every bare LF becomes CRLF (SMTP
    refuses a bare LF), and a payload that already ends in `ending` gets no second one."""
    if ending == _CRLF and _LF in payload:
        payload = _BARE_LF.sub(_CRLF, payload)
    return payload if payload.endswith(ending) else payload + ending


def frame_send(framer: Framer, payload: bytes, ending: LineEnding) -> bytes:
    """The bytes a send writes: the framing's own encoding, the LF or CRLF convention
    whatever the framing, or (`none`) the payload exactly as given."""
    if ending == "framing":
        return framer.encode(payload)
    if ending == "none":
        return payload
    return end_lines(payload, _LF if ending == "lf" else _CRLF)


def make_framer(name: FramingName, max_line: int) -> Framer:
    """One framer per TCP connection: framers hold that connection's partial payload."""
    return FRAMERS[name](max_line)
