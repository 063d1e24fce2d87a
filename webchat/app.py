"""`create_app(settings)`: lifespan (store, hub, TCP role), REST API, `/ws` and the page.

Everything starts and stops in the lifespan, so FastAPI's TestClient runs the
same wiring as the CLI. Errors are translated here, once: a `SendError`
becomes a 4xx with `detail` on REST and an `error` frame on `/ws`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from fastapi import FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketState

from webchat.export import MEDIA_TYPES, Format, header, render
from webchat.hub import GOING_AWAY, Closed, Hub, Subscriber
from webchat.model import (
    Entry,
    Ping,
    SendRequest,
    console_line,
    dumps,
    entry_dict,
    error_frame,
    parse_client_frame,
    send_payload,
    split_host_port,
    unescape,
)
from webchat.security import Guard, PeerRules, client_tls, server_tls
from webchat.settings import Settings
from webchat.store import PAGE, Match, Store, StoreError, open_store
from webchat.tcp import STOP_TIMEOUT, Role, SendError, TcpClient, TcpServer, bind_listener

try:
    VERSION = version("webchat")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0.0.0"

MAX_PAGE = 10_000
MAX_ID = 2**63 - 1
"""The largest id a store can hold (SQLite's INTEGER); larger query values are 422."""
BATCH_FRAMES = 1000
"""Most frames in one batch message, so a long replay still arrives in steps."""
MAX_IN_FLIGHT = 256
"""Sends from one WebSocket waiting for their commit at once: enough for group commit to
batch them, few enough that a client cannot pile up work."""
POLICY_VIOLATION = 1008


def _resource_dir(name: str) -> Path:
    """`templates/` and `static/` sit in the package inside a wheel, beside it in a checkout."""
    here = Path(__file__).resolve().parent
    inside = here / name
    return inside if inside.is_dir() else here.parent / name


def mirror(entries: Sequence[Entry]) -> None:
    """The console mirror: one line an entry, one flush a batch (not a line) under load."""
    sys.stdout.write("".join(console_line(entry) + "\n" for entry in entries))
    sys.stdout.flush()


@dataclass
class Runtime:
    hub: Hub
    role: Role


class SendBody(BaseModel):
    text: str | None = Field(None, description="text to send as UTF-8; or give hex")
    hex: str | None = Field(
        None, description="bytes to send, as hex digits (spaces optional), e.g. de ad be ef"
    )
    escapes: bool = Field(False, description="turn \\r \\n \\t \\0 \\xNN \\\\ in text into bytes")
    to: str | None = Field(None, description="a peer name such as 127.0.0.1:5555; null for all")


def transcript_path(settings: Settings, tcp_sock: socket.socket | None) -> str:
    """`--db`, else one file per endpoint, so two instances never share one by accident."""
    if settings.db is not None:
        return settings.db
    if tcp_sock is not None:
        name = f"server-{tcp_sock.getsockname()[1]}"
    else:
        host, port = split_host_port(settings.connect or "")
        name = f"client-{host}-{port}"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return str(platformdirs.user_data_path("webchat") / f"{safe}.sqlite3")


def open_transcript(settings: Settings, tcp_sock: socket.socket | None) -> Store:
    """The store for these settings; raises `StoreError` with a line fit for the user."""
    path = transcript_path(settings, tcp_sock)
    return open_store(path, settings.max_history, fsync=settings.fsync)


def make_role(settings: Settings, hub: Hub, tcp_sock: socket.socket | None) -> Role:
    common: dict[str, Any] = {
        "framing": settings.framing,
        "max_line": settings.max_line,
        "write_limit": settings.write_limit,
        "drain_timeout": settings.drain_timeout,
        "idle_timeout": settings.idle_timeout,
    }
    if settings.role == "client":
        if settings.connect is None:
            raise ValueError("the client role needs --connect HOST:PORT")
        host, port = split_host_port(settings.connect)
        greeting = [unescape(text) for text in settings.on_connect]
        tls = client_tls(settings.tls_ca, settings.tls_insecure) if settings.client_tls else None
        return TcpClient(hub, host, port, on_connect=greeting, tls=tls, **common)
    assert tcp_sock is not None
    rules = PeerRules(settings.allow, settings.deny)
    return TcpServer(
        hub,
        tcp_sock,
        max_clients=settings.max_clients,
        relay=settings.relay,
        refusal=rules.refusal,
        tls=server_tls(settings.tcp_tls_cert, settings.tcp_tls_key)
        if settings.tcp_tls_cert
        else None,
        **common,
    )


def create_app(
    settings: Settings, tcp_sock: socket.socket | None = None, store: Store | None = None
) -> FastAPI:
    """The whole product for one role; the CLI passes the listener and store it opened
    already, so their errors are one line before anything starts."""
    holder: list[Runtime] = []
    given_store = store
    sending: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sock = tcp_sock
        if sock is None and settings.role == "server":
            sock = bind_listener(settings.tcp_host, settings.tcp_port)
        store = given_store or open_transcript(settings, sock)
        hub = Hub(store, settings.subscriber_queue, () if settings.quiet else (mirror,))
        role = make_role(settings, hub, sock)
        holder.append(Runtime(hub, role))
        app.state.hub = hub
        await role.start()
        try:
            yield
        finally:
            await close_websockets(app)
            if sending:
                await asyncio.wait(sending, timeout=STOP_TIMEOUT)
            await role.stop()
            await store.close()

    app = FastAPI(
        title="webchat",
        version=VERSION,
        summary="A raw TCP server or client role, bridged to the browser.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        Guard,
        token=settings.token,
        allowed_origins=settings.allow_origin,
        max_body=settings.max_body,
    )
    templates = Jinja2Templates(directory=_resource_dir("templates"))
    app.mount("/static", StaticFiles(directory=_resource_dir("static")), name="static")

    def runtime() -> Runtime:
        return holder[-1]

    def max_text_error(data: bytes) -> str | None:
        if len(data) > settings.max_text:
            return f"the message is {len(data)} bytes; the limit is {settings.max_text}"
        return None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        title = "TCP Server" if settings.role == "server" else "TCP Client"
        context = {"title": title, "role": settings.role, "version": VERSION}
        return templates.TemplateResponse(request, "index.html", context)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own handler fails (500) on a body that is not UTF-8; show it replaced."""
        errors = [
            {**e, "input": e["input"].decode("utf-8", "replace")}
            if isinstance(e.get("input"), bytes)
            else e
            for e in exc.errors()
        ]
        return JSONResponse({"detail": jsonable_encoder(errors)}, 422)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return docs_page(app.title)

    @app.get("/healthz", summary="Liveness probe")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/status", summary="Role, TCP address, connected peers and subscribers")
    async def status() -> dict[str, Any]:
        rt = runtime()
        return {
            "role": settings.role,
            "tcp": rt.role.address,
            "framing": settings.framing,
            "peers": [peer.status() for peer in rt.role.peers.values()],
            "subscribers": len(rt.hub.subscribers),
        }

    @app.post("/api/messages", status_code=202, summary="Send text or bytes to every peer or one")
    async def post_message(body: SendBody) -> dict[str, Any]:
        data = send_payload(body.text, body.hex, body.escapes)
        if isinstance(data, str):
            raise HTTPException(422, data)
        if too_long := max_text_error(data):
            raise HTTPException(422, too_long)
        try:
            entry = await runtime().role.send(data, body.to)
        except SendError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        except StoreError as exc:
            raise HTTPException(503, str(exc)) from None
        return entry_dict(entry)

    @app.get("/api/messages", summary="Transcript entries by id range, optionally searched")
    async def list_messages(
        after: Annotated[int, Query(ge=0, le=MAX_ID, description="only ids above this")] = 0,
        before: Annotated[
            int | None,
            Query(
                ge=1,
                le=MAX_ID,
                description="only ids below this; then the page is the newest below it",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, description=f"clamped to {MAX_PAGE}")] = 100,
        q: Annotated[
            str | None, Query(min_length=1, max_length=1000, description="text to find")
        ] = None,
        peer: Annotated[
            str | None, Query(description="only this peer, e.g. 127.0.0.1:5555")
        ] = None,
        direction: Annotated[
            Literal["in", "out"] | None, Query(description="only messages this way")
        ] = None,
    ) -> dict[str, Any]:
        match = Match(q, peer, direction)  # unset fields match everything
        newest_first = before is not None
        entries = await runtime().hub.store.read(
            after, min(limit, MAX_PAGE), before=before, newest_first=newest_first, match=match
        )
        if newest_first:
            entries.reverse()
        return {"messages": [entry_dict(entry) for entry in entries]}

    @app.get(
        "/api/export",
        summary="Download the transcript as JSON Lines, CSV or text",
        response_class=StreamingResponse,
    )
    async def export(
        format: Format = "jsonl",
        after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    ) -> StreamingResponse:
        store = runtime().hub.store

        async def chunks() -> AsyncIterator[str]:
            yield header(format)
            last = after
            while page := await store.read(last, PAGE, before=before):
                yield render(format, page)
                last = page[-1].id

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"webchat-{settings.role}-{stamp}.{format}"
        return StreamingResponse(
            chunks(),
            media_type=MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def handle_frame(raw: str, sub: Subscriber) -> None:
        request = parse_client_frame(raw)
        if isinstance(request, Ping):
            sub.offer((0, dumps({"type": "pong", "id": request.id})))
            return
        if isinstance(request, SendRequest):
            problem = max_text_error(request.data)
            if problem is None:
                try:
                    await runtime().role.send(request.data, request.to)
                    return
                except (SendError, StoreError) as exc:
                    problem = str(exc)
            request = problem
        sub.offer((0, error_frame(request)))

    async def read_frames(ws: WebSocket, sub: Subscriber) -> None:
        """Each frame is handled in its own task, started in arrival order (so ids follow
        it) and not awaited here, so a fast sender's frames share group commits."""
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

        def finished(task: asyncio.Task[None]) -> None:
            sending.discard(task)
            in_flight.release()

        while True:
            await sub.wait_for_room()
            await in_flight.acquire()
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                sub.close(message.get("code", 1000), "")
                return
            if message.get("text") is not None:
                task = asyncio.create_task(handle_frame(message["text"], sub))
                sending.add(task)
                task.add_done_callback(finished)
            else:
                in_flight.release()
                sub.offer((0, error_frame("send JSON in text frames, not binary ones")))

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        rt = runtime()
        after_text = ws.query_params.get("after")
        batch_text = ws.query_params.get("batch", "0")
        problem = None
        if after_text is not None and not (after_text.isdigit() and int(after_text) <= MAX_ID):
            problem = "after must be a whole number of 0 or more, an entry id"
        elif batch_text not in ("0", "1"):
            problem = "batch must be 0 (one entry a frame) or 1 (batch frames)"
        if problem is not None:
            await ws.send_text(error_frame(problem))
            await ws.close(POLICY_VIOLATION)
            return
        send = send_batched if batch_text == "1" else send_each
        sub = rt.hub.subscribe()
        reader = asyncio.create_task(read_frames(ws, sub))
        try:
            hello = {
                "type": "hello",
                "role": settings.role,
                "tcp": rt.role.address,
                "framing": settings.framing,
                "peers": list(rt.role.peers),
                "version": VERSION,
                "last_id": rt.hub.store.last_id,
            }
            await ws.send_text(dumps(hello))
            start = (
                int(after_text) if after_text else max(0, rt.hub.store.last_id - settings.replay)
            )
            async for batch in rt.hub.frames(sub, start):
                await send(ws, batch)
        except Closed as closed:
            if ws.client_state is WebSocketState.CONNECTED and not reader.done():
                with contextlib.suppress(RuntimeError, OSError):
                    await ws.close(closed.code, closed.reason)
        except (WebSocketDisconnect, OSError):
            pass
        finally:
            rt.hub.unsubscribe(sub)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await reader

    return app


async def send_each(ws: WebSocket, frames: list[str]) -> None:
    for frame in frames:
        await ws.send_text(frame)


async def send_batched(ws: WebSocket, frames: list[str]) -> None:
    """`?batch=1`: what is queued goes out as few messages, each `{"type":"batch","frames":[...]}`
    of up to BATCH_FRAMES frames. The frames are joined as encoded, not encoded again; the
    saving is the per-message cost of the ASGI server, most of the time of a flood."""
    for start in range(0, len(frames), BATCH_FRAMES):
        await ws.send_text(
            '{"type":"batch","frames":[' + ",".join(frames[start : start + BATCH_FRAMES]) + "]}"
        )


def docs_page(title: str) -> HTMLResponse:
    """Swagger UI under a CSP that allows its one inline script by hash, not 'unsafe-inline'."""
    page = get_swagger_ui_html(openapi_url="/openapi.json", title=f"{title} - API")
    body = bytes(page.body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", body, re.S)
    )
    cdn = "https://cdn.jsdelivr.net"
    page.headers["content-security-policy"] = (
        f"default-src 'self'; script-src 'self' {cdn} {hashes}; style-src 'self' {cdn}; "
        "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
        "frame-ancestors 'none'"
    )
    return page


async def close_websockets(app: FastAPI) -> None:
    """Close every `/ws` with 1001 before the server would close them with 1012."""
    hub: Hub | None = getattr(app.state, "hub", None)
    if hub is not None:
        hub.close_all(GOING_AWAY, "webchat shutting down")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await hub.wait_unsubscribed()
