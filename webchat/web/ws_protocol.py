"""uvicorn's sans-I/O WebSocket protocol, corked, with webchat's frames and closes.

Imported only through `cork.websocket_protocol`, which falls back to uvicorn's
stock protocol when this layout is missing (pyproject pins the uvicorn range
it was written against).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from webchat.hub import GOING_AWAY
from webchat.web.cork import (
    RESET_ON_CLOSE,
    SEND_BUFFER,
    SEND_FRAMES,
    WRITABLE,
    CorkedTransport,
    text_frames,
)


class CorkedProtocol(WebSocketsSansIOProtocol):
    """Writes joined per loop iteration (`CorkedTransport`), a fixed send buffer, the app
    offered flow control and whole takes of frames, and closes that never hang."""

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
