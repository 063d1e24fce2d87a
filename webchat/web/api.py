"""The REST API: status, sending, reading and exporting the transcript."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictBool

from webchat.export import MEDIA_TYPES, Format, header, render
from webchat.model import Entry, Event
from webchat.store import Match, StoreError, payload_size
from webchat.store.schema import PAGE
from webchat.types import LineEnding
from webchat.web.errors import EDGE_ERRORS, http_error
from webchat.web.runtime import runtime
from webchat.wire.json import entry_dict, parse_send

MAX_PAGE = 10_000
MAX_ID = 2**63 - 1
"""The largest id a store can hold (SQLite's INTEGER); larger query values are 422."""
PAGE_BYTES = 256 * 1024
"""Payload bytes in one page of `GET /api/messages` and of an export (always at least one
entry): with text and base64, about 1 MiB of JSON at most, whatever `limit` asks."""

router = APIRouter()
Id = Annotated[int, Query(ge=0, le=MAX_ID, description="only ids above this")]


class SendBody(BaseModel):
    text: str | None = Field(None, description="text to send as UTF-8; or give hex")
    hex: str | None = Field(
        None, description="bytes to send, as hex digits (spaces optional), e.g. de ad be ef"
    )
    escapes: StrictBool = Field(
        False, description="turn \\r \\n \\t \\0 \\xNN \\\\ in text into bytes"
    )
    to: str | None = Field(None, description="a peer name such as 127.0.0.1:5555; null for all")
    line_ending: LineEnding = Field(
        "framing",
        description="what ends it on the wire: the framing's own (default), none, lf or crlf",
    )
    name: str | None = Field(
        None, description="--chat: who speaks; TCP peers see <name> text (default: web)"
    )


class Problem(BaseModel):
    detail: str = Field(description="what is wrong and what to do, in one line")


class Invalid(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="one line from webchat's own checks, or FastAPI's list of field errors"
    )


def problem(description: str, model: type[BaseModel] = Problem) -> dict[str, Any]:
    return {"model": model, "description": description}


SEND_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: problem("no peer has the name in `to`; the message lists those connected"),
    409: problem("no TCP peer is connected (server role) or not connected (client role)"),
    413: problem("the request body is over --max-body bytes"),
    422: problem(
        "a bad body: neither or both of text and hex, bad hex or escapes, text over "
        "--max-text, or bytes the framing cannot carry",
        Invalid,
    ),
    503: problem("the transcript cannot be written (a full disk); nothing was sent"),
}


@router.get("/healthz", summary="Liveness probe")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/api/status", summary="Role, TCP address, connected peers and subscribers")
async def status(request: Request) -> dict[str, Any]:
    return runtime(request.app).status()


@router.post(
    "/api/messages",
    status_code=202,
    summary="Send text or bytes to every peer or one",
    responses=SEND_ANSWERS,
)
async def post_message(request: Request, body: SendBody) -> dict[str, Any]:
    rt = runtime(request.app)
    send = parse_send(
        body.text,
        body.hex,
        body.escapes,
        body.to,
        rt.settings.max_text,
        body.line_ending,
        name=body.name,
    )
    if isinstance(send, str):
        raise HTTPException(422, send)
    try:
        entry = await rt.role.send(send.data, send.to, send.ending, name=send.name)
    except EDGE_ERRORS as exc:
        raise http_error(exc) from None
    return entry_dict(entry)


@router.get("/api/messages", summary="Transcript entries by id range, optionally searched")
async def list_messages(
    request: Request,
    after: Id = 0,
    before: Annotated[
        int | None,
        Query(
            ge=1, le=MAX_ID, description="only ids below this; then the page is the newest below it"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, description=f"clamped to {MAX_PAGE}")] = 100,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=1000, description="text to find, ignoring case"),
    ] = None,
    peer: Annotated[str | None, Query(description="only this peer, e.g. 127.0.0.1:5555")] = None,
    direction: Annotated[
        Literal["in", "out"] | None, Query(description="only messages this way")
    ] = None,
) -> dict[str, Any]:
    newest_first = before is not None
    limit = min(limit, MAX_PAGE)
    entries = await runtime(request.app).hub.store.read(
        after,
        limit,
        before=before,
        newest_first=newest_first,
        match=Match(q, peer, direction),
        max_bytes=PAGE_BYTES,
    )
    if newest_first:
        entries.reverse()
    listed = [entry_dict(entry) for entry in entries]
    return {"messages": listed, "next": next_page(request, entries, limit)}


def next_page(request: Request, entries: list[Entry], limit: int) -> str | None:
    """The query for the page that follows (older ones, with `before`), or None when this
    page holds everything: a full or byte-cut page may have more behind it."""
    cut = len(entries) == limit or sum(map(payload_size, entries)) >= PAGE_BYTES
    if not entries or not cut:
        return None
    query = dict(request.query_params)
    if "before" in query:
        query["before"] = str(entries[0].id)
    else:
        query["after"] = str(entries[-1].id)
    return f"{request.url.path}?{urlencode(query)}"


CONNECTION_ANSWERS: dict[int | str, dict[str, Any]] = {
    409: problem("the server role makes no connection; this is for webchat client"),
}


CONNECTION_CHANGES = {"connect": "connect_now", "disconnect": "disconnect"}


@router.post(
    "/api/connection/starttls",
    summary="Client role with --starttls plain: run the TLS handshake on the open connection "
    "now (after you said what the protocol needs, e.g. STARTTLS)",
    responses={
        409: problem(
            "the server role; not started with --starttls plain; not connected; TLS already"
        ),
        502: problem("the handshake failed (the message says why); the connection is closed"),
    },
)
async def start_tls(request: Request) -> dict[str, Any]:
    role = runtime(request.app).role
    try:
        tls = await role.start_tls_now()
    except EDGE_ERRORS as exc:
        raise http_error(exc) from None
    return {"connection": role.connection(), "tls": tls}


@router.post(
    "/api/connection/{action}",
    summary="Client role: connect now (after a disconnect, or cutting a retry's wait short), "
    "or disconnect (close the connection and make no other until connect)",
    responses=CONNECTION_ANSWERS,
)
async def connection_change(
    request: Request, action: Literal["connect", "disconnect"]
) -> dict[str, Any]:
    change = CONNECTION_CHANGES[action]
    role = runtime(request.app).role
    try:
        getattr(role, change)()
    except EDGE_ERRORS as exc:
        raise http_error(exc) from None
    return {"connection": role.connection()}


@router.delete(
    "/api/messages",
    summary="Clear the transcript; the clearing is recorded as a `cleared` event",
    responses={503: problem("the transcript cannot be written (a full disk)")},
)
async def clear_messages(request: Request) -> dict[str, Any]:
    rt = runtime(request.app)
    try:
        removed = await rt.hub.clear()
        plural = "y" if removed == 1 else "ies"
        detail = f"{removed} entr{plural} removed (DELETE /api/messages)"
        (event,) = await rt.hub.record([Event("cleared", None, detail)], send=True)
    except StoreError as exc:
        raise http_error(exc) from None
    return {"removed": removed, "event": entry_dict(event)}


@router.get(
    "/api/export",
    summary="Download the transcript as JSON Lines, CSV or text",
    response_class=StreamingResponse,
)
async def export(
    request: Request,
    format: Format = "jsonl",
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> StreamingResponse:
    rt = runtime(request.app)
    store = rt.hub.store

    async def chunks() -> AsyncIterator[str]:
        yield header(format)
        last = after
        while page := await store.read(last, PAGE, before=before, max_bytes=PAGE_BYTES):
            yield render(format, page)
            last = page[-1].id

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"webchat-{rt.settings.role}-{stamp}.{format}"
    return StreamingResponse(
        chunks(),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
