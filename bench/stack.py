"""The stack's own ceiling: a bare uvicorn + Starlette bridge with webchat's frames, no storage.

Run by bench.py as a separate process (`python bench/stack.py`); it prints a start line shaped
like webchat's, then bridges its TCP listener and `/ws` as webchat does: each TCP line becomes a
`message` frame to every WebSocket, each `send` is written to every TCP peer and echoed as an
`out` frame; with `--relay`, each read also goes to every other TCP peer. No transcript, no hub,
no guard: what the rows measured on it are the most that uvicorn, Starlette, uvloop and the same
client allow, beside webchat's own rows.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

sockets: set[WebSocket] = set()
peers: set[asyncio.Transport] = set()
tasks: set[asyncio.Task[None]] = set()
counter = 0
RELAY = "--relay" in sys.argv
"""As `webchat server --relay`: each read goes as it came to every other peer."""


def spawn(frames: list[str]) -> None:
    task = asyncio.ensure_future(broadcast(frames))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def frame(direction: str, data: bytes) -> str:
    global counter
    counter += 1
    text = data.decode("utf-8", "replace")
    shown = {
        "type": "message",
        "id": counter,
        "ts": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds"),
        "direction": direction,
        "peer": "127.0.0.1:1",
        "text": text,
    }
    if text.encode() != data:  # the same frames as webchat's: b64 only when text is not exact
        shown["b64"] = base64.b64encode(data).decode()
    return orjson.dumps(shown).decode()


async def broadcast(frames: list[str]) -> None:
    for ws in list(sockets):
        for text in frames:
            await ws.send_text(text)


class Peer(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peers.add(transport)
        event = orjson.dumps({"type": "event", "kind": "connected", "peer": "127.0.0.1:1"})
        spawn([event.decode()])

    def data_received(self, data: bytes) -> None:
        if RELAY:
            for transport in peers:
                if transport is not self.transport:
                    transport.write(data)
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        if lines:
            spawn([frame("in", line) for line in lines])

    def connection_lost(self, exc: Exception | None) -> None:
        peers.discard(self.transport)


async def endpoint(ws: WebSocket) -> None:
    await ws.accept()
    sockets.add(ws)
    await ws.send_text('{"type":"hello","last_id":0}')
    try:
        while True:
            request = orjson.loads(await ws.receive_text())
            data = request["text"].encode()
            for transport in peers:
                transport.write(data + b"\n")
            await broadcast([frame("out", data)])
    except WebSocketDisconnect:
        pass
    finally:
        sockets.discard(ws)


async def main() -> None:
    loop = asyncio.get_running_loop()
    tcp = await loop.create_server(Peer, "127.0.0.1", 0)
    http = socket.socket()
    http.bind(("127.0.0.1", 0))
    http.listen(128)
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    config = uvicorn.Config(
        app, log_level="warning", ws_per_message_deflate=False, ws_max_size=1 << 20
    )
    tcp_port = tcp.sockets[0].getsockname()[1]
    print(
        f"stack: page at http://127.0.0.1:{http.getsockname()[1]}/ - TCP server on "
        f"127.0.0.1:{tcp_port}",
        flush=True,
    )
    await uvicorn.Server(config).serve(sockets=[http])


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
