"""`POST /api/messages/file`: a file, streamed to the peers at their pace."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from webchat.roles.base import EmptyFile
from webchat.web.api import SEND_ANSWERS, problem
from webchat.web.errors import EDGE_ERRORS, http_error
from webchat.web.runtime import runtime

router = APIRouter()

FILE_PATH = "/api/messages/file"
MULTIPART_SLACK = 64 * 1024
"""Bytes a multipart body may carry beyond the file itself: its boundaries and headers."""
FILE_CHUNK = 64 * 1024


@router.post(
    FILE_PATH,
    status_code=202,
    summary="Send a file, byte for byte, to every peer or one (raw body or multipart)",
    responses={
        **SEND_ANSWERS,
        413: problem("the file is over --max-send bytes; what went out before is recorded"),
        422: problem("the file is empty, or a multipart body without a `file` field"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def post_file(
    request: Request,
    to: Annotated[
        str | None, Query(description="a peer name such as 127.0.0.1:5555; absent for all")
    ] = None,
) -> dict[str, Any]:
    rt = runtime(request.app)
    try:
        rt.role.targets(to)  # 409 / 404 before a byte of the upload is read
        async with file_chunks(request) as chunks:
            sent = await rt.role.send_file(chunks, to, rt.settings.max_send)
    except EDGE_ERRORS as exc:
        raise http_error(exc) from None
    except ClientDisconnect:  # gone, or cut off by the body limit: nobody reads the answer
        raise HTTPException(400, "the upload ended early; what arrived was sent") from None
    return {"bytes": sent.bytes, "messages": sent.messages, "first_id": sent.first_id,
            "last_id": sent.last_id, "to": to}  # fmt: skip


@contextlib.asynccontextmanager
async def file_chunks(request: Request) -> AsyncIterator[AsyncIterator[bytes]]:
    """The file's bytes: the body itself, or the `file` field of a multipart form (which
    Starlette spools to disk past 1 MiB, so memory stays bounded either way)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        yield (chunk async for chunk in request.stream() if chunk)
        return
    async with request.form(max_files=1, max_fields=16) as form:  # closed: its spool goes
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise EmptyFile("a multipart body needs the file in a field named `file`")

        async def read() -> AsyncIterator[bytes]:
            while chunk := await upload.read(FILE_CHUNK):
                yield chunk

        yield read()
