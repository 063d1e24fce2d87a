"""`create_app(settings)`: the lifespan builds the runtime; routers do the rest.

Everything starts and stops in the lifespan, so FastAPI's TestClient runs the
same wiring as the CLI. Shutdown goes in order: readers get their 1001 close
(before uvicorn would send 1012), in-flight sends finish, the TCP role says
goodbye to its peers, and the store commits what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from webchat.hub import GOING_AWAY
from webchat.roles.base import STOP_TIMEOUT
from webchat.settings import Settings
from webchat.store import Store, StoreError
from webchat.web import api, page, room, upload, ws
from webchat.web.errors import internal_error, invalid_request, store_unavailable
from webchat.web.guard import Guard
from webchat.web.runtime import VERSION, build


def create_app(
    settings: Settings, tcp_sock: socket.socket | None = None, store: Store | None = None
) -> FastAPI:
    """The whole product for one role; the CLI passes the listener and store it opened
    already, so their errors are one line before anything starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = build(settings, tcp_sock, store)
        app.state.runtime = rt
        await rt.role.start()
        if rt.shared is not None:
            await rt.shared.start()
        # What start-up built lives until exit: out of the collector's reach, a full
        # collection under a flood scans only what came after (pauses of 15-28 ms were
        # measured before, in the tail of a send's latency).
        gc.freeze()
        publishing = asyncio.create_task(rt.publish_status())
        try:
            yield
        finally:
            publishing.cancel()
            await close_websockets(app)
            if rt.sending:
                await asyncio.wait(rt.sending, timeout=STOP_TIMEOUT)
            await rt.role.stop()
            if rt.shared is not None:
                await rt.shared.stop()
            if rt.snippets is not None:
                rt.snippets.close()
            await rt.hub.store.close()
            if rt.console is not None:
                await asyncio.to_thread(rt.console.drain, STOP_TIMEOUT)  # the last lines too

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
        view_token=settings.view_token,
        allowed_origins=settings.allow_origin,
        max_body=settings.max_body,
        hosts=[settings.http_host, *settings.allow_host],
        large_bodies={upload.FILE_PATH: settings.max_send + upload.MULTIPART_SLACK},
    )
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StoreError, store_unavailable)
    app.add_exception_handler(Exception, internal_error)
    app.mount(page.SWAGGER, StaticFiles(directory=page.swagger_dir()), name="swagger")
    app.mount("/static", StaticFiles(directory=page.resource_dir("static")), name="static")
    for router in (page.router, api.router, upload.router, room.router, ws.router):
        app.include_router(router)
    return app


async def close_websockets(app: FastAPI) -> None:
    """Close every `/ws` with 1001 before the server would close them with 1012."""
    rt = getattr(app.state, "runtime", None)
    if rt is not None:
        rt.hub.close_all(GOING_AWAY, "webchat shutting down")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await rt.hub.wait_detached()
