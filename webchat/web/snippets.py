"""REST for saved messages: list, create, replace, change, delete, and send one."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from webchat.room.snippets import Snippet, SnippetError, Snippets
from webchat.store import StoreError
from webchat.web.api import SEND_ANSWERS
from webchat.web.errors import EDGE_ERRORS, http_error
from webchat.web.runtime import runtime
from webchat.wire.json import entry_dict

router = APIRouter(prefix="/api/snippets", tags=["snippets"])

Answers = dict[int | str, dict[str, Any]]
NOT_FOUND: Answers = {404: {"description": "no snippet has this id"}}
INVALID: Answers = {422: {"description": "no name, both or neither of text and hex, bad hex"}}
BOTH = NOT_FOUND | INVALID


class SnippetBody(BaseModel):
    name: str = Field(description="what its button says")
    text: str | None = Field(
        None, description="text; {{counter}} {{time}} {{unixtime}} {{random}} {{peer}} expand"
    )
    hex: str | None = Field(None, description="or bytes as hex digits, e.g. de ad be ef")


class SnippetPatch(BaseModel):
    name: str | None = None
    text: str | None = None
    hex: str | None = None


class SendTo(BaseModel):
    to: str | None = Field(None, description="a peer name; null or absent for every peer")


def book(request: Request) -> Snippets:
    snippets = runtime(request.app).snippets
    assert snippets is not None
    return snippets


async def known(request: Request, snippet_id: int) -> Snippet:
    snippets = book(request)
    await snippets.fresh()
    snippet = snippets.get(snippet_id)
    if snippet is None:
        raise HTTPException(404, f"no snippet {snippet_id}; GET /api/snippets lists them")
    return snippet


async def put(request: Request, fields: dict[str, Any], snippet_id: int | None) -> dict[str, Any]:
    try:
        return (await book(request).put(fields, snippet_id)).public()
    except SnippetError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("", summary="The saved messages")
async def list_snippets(request: Request) -> dict[str, Any]:
    snippets = book(request)
    await snippets.fresh()
    return {"snippets": [s.public() for s in snippets.all()]}


@router.post("", status_code=201, summary="Save a message", responses=INVALID)
async def create_snippet(request: Request, body: SnippetBody) -> dict[str, Any]:
    await book(request).fresh()
    return await put(request, body.model_dump(), None)


@router.put("/{snippet_id}", summary="Replace a saved message", responses=BOTH)
async def replace_snippet(request: Request, snippet_id: int, body: SnippetBody) -> dict[str, Any]:
    await known(request, snippet_id)
    return await put(request, body.model_dump(), snippet_id)


@router.patch("/{snippet_id}", summary="Change some fields of a saved message", responses=BOTH)
async def change_snippet(request: Request, snippet_id: int, body: SnippetPatch) -> dict[str, Any]:
    fields = (await known(request, snippet_id)).public()
    change = body.model_dump(exclude_unset=True)
    if "text" in change:
        fields["hex"] = None  # giving one kind replaces the other
    if "hex" in change:
        fields["text"] = None
    fields.update(change)
    for computed in ("id", "sent"):
        fields.pop(computed)
    return await put(request, fields, snippet_id)


@router.delete("/{snippet_id}", status_code=204, summary="Delete a saved message",
               responses=NOT_FOUND)  # fmt: skip
async def delete_snippet(request: Request, snippet_id: int) -> Response:
    await known(request, snippet_id)
    await book(request).remove(snippet_id)
    return Response(status_code=204)


@router.post(
    "/{snippet_id}/send",
    status_code=202,
    summary="Send a saved message, its placeholders expanded, to every peer or one",
    responses={**SEND_ANSWERS, **NOT_FOUND},
)
async def send_snippet(
    request: Request, snippet_id: int, body: SendTo | None = None
) -> dict[str, Any]:
    rt = runtime(request.app)
    snippet = await known(request, snippet_id)
    to = body.to if body else None
    data = snippet.payload(to or "all")
    try:
        entry = await rt.role.send(data, to)
    except EDGE_ERRORS as exc:
        raise http_error(exc) from None
    with contextlib.suppress(StoreError):  # it went out: a counter left behind is no error
        await book(request).count(snippet)
    return entry_dict(entry)
