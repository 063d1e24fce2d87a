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
import socket
import struct
from collections.abc import Sequence
from typing import Any

from webchat.hub import GOING_AWAY

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
        from uvicorn.protocols.utils import ClientDisconnected
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # another uvicorn layout: keep its stock protocol
        return "auto"

    class CorkedProtocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            corked: Any = CorkedTransport(transport)  # type: ignore[arg-type]
            super().connection_made(corked)

        def handle_connect(self, event: Any) -> None:
            """Offer the app the protocol's own flow control (`WRITABLE` in the scope), so
            a sender can wait for room before it takes frames: a reader that stopped
            reading then holds no frame in the app, only what its transport could not send."""
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None:
                scope["extensions"][WRITABLE] = self.writable
                scope["extensions"][SEND_FRAMES] = self.send_frames

        def send_frames(self, texts: Sequence[str]) -> None:
            """Many messages, framed here and written at once. With an extension negotiated
            (none is offered: no permessage-deflate) websockets frames them instead. After
            the close went out, `ClientDisconnected`, as `send` raises."""
            if self.disconnected or self.close_sent or not self.handshake_complete:
                raise ClientDisconnected
            if self.conn.extensions:
                for text in texts:
                    self.conn.send_text(text.encode())
                self.transport.write(b"".join(self.conn.data_to_send()))
            else:
                self.transport.write(text_frames(texts))

        def shutdown(self) -> None:
            """Server shutdown: 1001 (going away), not uvicorn's 1012, and written past the
            flow control. uvicorn's close waits for the buffer to drain, so a reader that
            stopped reading kept its handler blocked in a send until the graceful timeout
            cancelled it, with a traceback a socket, and never got a close frame at all.
            The blocked send is released and, with the close sent, writes nothing."""
            if not self.handshake_complete or self.close_sent:
                super().shutdown()
                return
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
            self.conn.send_close(GOING_AWAY, "webchat shutting down")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.writable.set()
            self.transport.close()

        async def send(self, message: Any) -> None:
            """A frame sent after the close went out (at shutdown, or a race under many
            simultaneous closes) is the client's departure, not an application error:
            uvicorn raises RuntimeError for it, logged with a traceback."""
            await self.writable.wait()
            if self.close_sent and message["type"] == "websocket.send":
                raise ClientDisconnected
            await super().send(message)

        def keepalive_timeout(self) -> None:
            """No pong in time: uvicorn writes a close frame and closes, and its close waits
            for the write buffer to drain, which it never does when the client stopped
            reading; the socket and its buffers were then held for ever. Reset it instead
            (a plain close would leave the kernel holding the unsent bytes in FIN-WAIT-1)."""
            super().keepalive_timeout()
            if self.transport.get_write_buffer_size():
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
                self.transport.abort()

        def handle_parser_exception(self) -> None:
            """Send the close frame (1009 for an oversize message) and our FIN, then read
            and discard what the client still sends until its FIN. uvicorn closes the socket
            at once, with the rest of the message unread: the kernel then answers with RST,
            which can destroy the close frame before the client reads it (a test saw it
            fail one run in eight)."""
            if self.close_sent:
                return  # already closing: discard
            assert self.conn.close_sent is not None
            code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            out = self.conn.data_to_send()
            self.transport.write(b"".join(out))
            if b"" in out:  # websockets' sign for "half-close now": our FIN follows the frame
                self.transport.write_eof()
            self.close_sent = True
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)

    return CorkedProtocol
