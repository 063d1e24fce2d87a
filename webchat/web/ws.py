"""`/ws`: hello, then the transcript from the reader's position, live, at its own pace.

Two halves per connection. The sender loops on `Hub.next_frames` and awaits
each ASGI send, which waits on the transport's flow control: a client that
stops reading holds one batch and its socket buffers, nothing more. The
receiver parses the client's frames in order and hands sends to the
connection's `Outbox`, which commits whatever has arrived as one group; up to
`MAX_IN_FLIGHT` may be on their way, so a client's sends are paced by
commits, not by how much it reads. Replies (`pong`, `error`) overtake entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import QueryParams
from starlette.websockets import WebSocketState

from webchat.hub import Closed, Reader
from webchat.model import CHAT_NAME, peer_name
from webchat.roles.base import SendError
from webchat.store import Store, StoreError
from webchat.web.api import MAX_ID
from webchat.web.cork import SEND_FRAMES, WRITABLE
from webchat.web.guard import VIEW_ONLY, viewer
from webchat.web.runtime import ROSTER_PEERS, Runtime, Visitor, runtime
from webchat.wire.json import (
    Ping,
    SendRequest,
    batch_frames,
    dumps,
    error_frame,
    parse_client_frame,
    pong_frame,
    sent_frame,
)

MAX_IN_FLIGHT = 256
"""Sends from one WebSocket waiting for their commit at once: enough for group commit to
batch them, few enough that a client cannot pile up work."""
POLICY_VIOLATION = 1008

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Start:
    """What a new reader asked for in its query string."""

    position: int
    batched: bool
    status: bool


SWITCHES = {
    "batch": "batch must be 0 (one entry a frame) or 1 (batch frames)",
    "status": "status must be 0 (no status frames) or 1 (the status pushed as it changes)",
}


def start_of(query: QueryParams, store: Store, replay: int) -> Start | str:
    """Where a new reader starts and what it wants, or what is wrong. A reader that
    names another transcript's `epoch` starts from the beginning: its ids are void."""
    after = query.get("after")
    if after is not None and not (after.isascii() and after.isdigit() and int(after) <= MAX_ID):
        return "after must be a whole number of 0 or more, an entry id"
    for switch, problem in SWITCHES.items():
        if query.get(switch, "0") not in ("0", "1"):
            return problem
    if query.get("epoch", store.epoch) != store.epoch:
        position = 0
    else:
        position = int(after) if after else max(0, store.last_id - replay)
    return Start(position, query.get("batch") == "1", query.get("status") == "1")


@router.websocket("/ws")
async def websocket(ws: WebSocket) -> None:
    await ws.accept()
    rt = runtime(ws.app)
    hello = rt.hello()
    start = start_of(ws.query_params, rt.hub.store, rt.settings.replay)
    if isinstance(start, str):
        await ws.send_text(error_frame(start))
        await ws.close(POLICY_VIOLATION)
        return
    reader = rt.hub.attach(start.position, status=start.status)
    client = ws.client
    address = peer_name(client.host, client.port) if client else "unknown"
    name = ws.query_params.get("name")
    rt.visitors[reader] = Visitor(
        address, name if name and CHAT_NAME.fullmatch(name) else None, viewer(ws.scope)
    )
    rt.role.changed.set()  # the roster shows the new page at once
    receiving = asyncio.create_task(receive(ws, reader, rt))
    if start.status:
        reader.tell(dumps({"type": "status", **rt.status(ROSTER_PEERS)}))  # at once
    extensions = ws.scope.get("extensions") or {}
    writable: asyncio.Event | None = extensions.get(WRITABLE)
    send_frames: Callable[[Sequence[str]], None] | None = extensions.get(SEND_FRAMES)
    try:
        await ws.send_text(dumps(hello))
        while True:
            if writable is not None:
                await writable.wait()  # take frames only when they can go out
            frames = await rt.hub.next_frames(reader)
            texts = batch_frames(frames) if start.batched else frames
            if send_frames is not None:
                send_frames(texts)
                await asyncio.sleep(0)  # a reader that is never behind must not hold the loop
            else:
                for text in texts:
                    await ws.send_text(text)
    except Closed as closed:
        if ws.client_state is WebSocketState.CONNECTED and not receiving.done():
            with contextlib.suppress(RuntimeError, OSError):
                await ws.close(closed.code, closed.reason)
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        rt.hub.detach(reader)
        rt.visitors.pop(reader, None)
        rt.role.changed.set()
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await receiving


class Outbox:
    """One connection's sends on their way to a commit. One task per connection commits
    whatever has arrived as one group (no task or future per send), in arrival order; the
    receiver waits while `MAX_IN_FLIGHT` are on their way."""

    def __init__(self, rt: Runtime, reader: Reader) -> None:
        self._rt = rt
        self._reader = reader
        self._waiting: list[SendRequest] = []
        self._committing = 0
        self._closed = False
        self._wake = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        task = asyncio.create_task(self._run())
        rt.sending.add(task)
        task.add_done_callback(rt.sending.discard)

    def put(self, request: SendRequest) -> None:
        self._waiting.append(request)
        self._wake.set()
        if len(self._waiting) + self._committing >= MAX_IN_FLIGHT:
            self.room.clear()

    def close(self) -> None:
        """The client has gone: what it sent is still committed and written, then the task ends."""
        self._closed = True
        self._wake.set()

    async def _run(self) -> None:
        while not (self._closed and not self._waiting):
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting, []
                self._committing = len(batch)
                await self._commit(batch)
                self._committing = 0
                if len(self._waiting) < MAX_IN_FLIGHT:
                    self.room.set()

    async def _commit(self, batch: list[SendRequest]) -> None:
        """The `out` entries reach this reader through the tail like any other; here a
        failure gets its `error` frame, and a send that carried an `id` its `sent` frame."""
        try:
            sends = [(r.data, r.to, r.ending, r.name) for r in batch]
            outcomes = await self._rt.role.send_many(sends)
        except StoreError as exc:
            outcomes = [SendError(str(exc))] * len(batch)  # the commit failed: nothing was sent
        for request, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, SendError):
                self._reader.reply(error_frame(str(outcome), request.ref))
            elif request.ref is not None:
                self._reader.reply(sent_frame(request.ref, outcome.id))


async def receive(ws: WebSocket, reader: Reader, rt: Runtime) -> None:
    outbox: Outbox | None = None  # made on the first send: most tabs only read
    try:
        while True:
            await reader.room.wait()
            if outbox is not None:
                await outbox.room.wait()
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                reader.close(message.get("code", 1000), "")
                return
            text = message.get("text")
            request = (
                parse_client_frame(text, rt.settings.max_text)
                if text is not None
                else "send JSON in text frames, not binary ones"
            )
            if isinstance(request, SendRequest) and viewer(ws.scope):
                reader.reply(error_frame(VIEW_ONLY, request.ref))
            elif isinstance(request, SendRequest):
                if (visitor := rt.visitors.get(reader)) is not None:
                    visitor.sends += 1
                    visitor.active_at = time.time()
                    visitor.name = request.name or visitor.name
                outbox = outbox or Outbox(rt, reader)
                outbox.put(request)
            elif isinstance(request, Ping):
                reader.reply(pong_frame(request.id))
            else:
                reader.reply(error_frame(request))
    finally:
        if outbox is not None:
            outbox.close()
