"""The one table from inside errors to what each edge says: an HTTP status, or an
`error` frame on `/ws` (whose text is the same message)."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from webchat.roles.base import (
    AlreadyTls,
    EmptyFile,
    HandshakeFailed,
    NoConnection,
    NotConnected,
    SendError,
    TooLarge,
    Unframeable,
    UnknownPeer,
)
from webchat.store import StoreError
from webchat.web.guard import HEADERS

STATUS: dict[type[Exception], int] = {
    NotConnected: 409,
    NoConnection: 409,
    AlreadyTls: 409,
    HandshakeFailed: 502,
    UnknownPeer: 404,
    Unframeable: 422,
    EmptyFile: 422,
    TooLarge: 413,
    SendError: 409,
    StoreError: 503,
}
"""Most specific first: a subclass is looked up before its base."""

EDGE_ERRORS = (SendError, StoreError)
"""What a send may fail with: the edges catch exactly these."""


def http_error(exc: Exception) -> HTTPException:
    status = next(code for kind, code in STATUS.items() if isinstance(exc, kind))
    return HTTPException(status, str(exc))


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own handler fails (500) on a body that is not UTF-8; show it replaced."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {**e, "input": e["input"].decode("utf-8", "replace")}
        if isinstance(e.get("input"), bytes)
        else e
        for e in exc.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(errors)}, 422)


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A read the store could not answer (Redis away): 503 with its one line, as a send
    that cannot be kept gets, wherever in the API it happened."""
    return JSONResponse({"detail": str(exc)}, STATUS[StoreError])


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug. Starlette answers it outside every middleware, the guard included, so the
    security headers every response promises are added here."""
    headers = {name.decode(): value.decode() for name, value in HEADERS}
    return JSONResponse({"detail": "internal error; webchat's log has the details"}, 500, headers)
