"""WebSocket writes joined per loop iteration: one write(2) for a burst of frames.

uvloop makes one system call per `transport.write`, even for writes made back
to back in one iteration: strace counted 50,179 writes for 50,000 frames, at
~5 µs of CPU each, most of a frame's cost. The uvicorn WebSocket protocol
writes each frame as it is sent, so `CorkedProtocol` hands it a transport
that queues writes and sends them once, at the end of the iteration (as
`TCP_CORK` does in the kernel). It relies only on `connection_made(transport)`;
where the protocol class is missing, uvicorn's stock one is used.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Any

SEND_BUFFER = 256 * 1024
"""The kernel's send buffer of a WebSocket (autotuned up to 4 MiB on Linux otherwise). A
reader that stopped reading is sent frames until this and the transport's buffer are full;
20 such readers cost 2.6 readers' worth of sending with 4 MiB each, against one here."""
WRITABLE = "webchat.writable"
"""A scope extension: the connection's `asyncio.Event`, set while its transport takes writes."""
SEND_FRAMES = "webchat.send_frames"
"""A scope extension: write a list of text messages at once (`CorkedProtocol.send_frames`)."""
RESET_ON_CLOSE = struct.pack("ii", 1, 0)
"""SO_LINGER on, zero seconds: close sends RST and drops what is unsent."""
CORK_WRITES = 256
CORK_BYTES = 64 * 1024
"""What may wait for the end of the iteration. Past it the writes go out at once: the
sender awaits the transport's flow control only before each write, so an unbounded
cork would let a reader that stopped reading push a whole batch past the high-water mark."""


def text_frames(texts: Sequence[str]) -> bytes:
    """Text messages as unfragmented, unmasked server frames (RFC 6455 5.2), joined: the
    header is two, four or ten bytes, so framing here costs a fraction of a message's
    walk through Starlette, uvicorn and websockets (a third of tcp→ws and of the relay)."""
    out: list[bytes] = []
    for text in texts:
        data = text.encode()
        size = len(data)
        if size < 126:
            out.append(bytes((0x81, size)))
        elif size < 65536:
            out.append(struct.pack("!BBH", 0x81, 126, size))
        else:
            out.append(struct.pack("!BBQ", 0x81, 127, size))
        out.append(data)
    return b"".join(out)


class CorkedTransport:
    """A transport whose writes in one loop iteration leave as one."""

    __slots__ = ("_out", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._out: list[bytes] | None = None
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._out is None:
            self._out = []
            asyncio.get_running_loop().call_soon(self.flush)
        self._out.append(bytes(data))
        self._size += len(data)
        if len(self._out) >= CORK_WRITES or self._size >= CORK_BYTES:
            self.flush()  # the transport sees it now, so its flow control can pause the sender

    def flush(self) -> None:
        out, self._out, self._size = self._out, None, 0
        if out and not self._transport.is_closing():
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])

    def get_write_buffer_size(self) -> int:
        """What the kernel has not taken yet, counting what waits here."""
        return self._transport.get_write_buffer_size() + self._size

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()  # a close frame written just before must not be lost
        self._transport.close()

    def abort(self) -> None:
        self._out, self._size = None, 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def websocket_protocol() -> type[asyncio.Protocol] | str:
    """The protocol class for `uvicorn.Config(ws=...)`, or uvicorn's own choice."""
    try:
        from webchat.web.ws_protocol import CorkedProtocol
    except ImportError:  # another uvicorn layout: keep its stock protocol
        return "auto"
    return CorkedProtocol
