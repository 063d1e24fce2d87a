"""Run the app under uvicorn with our own signals and event loop.

uvicorn's own signal capture is replaced: it would re-raise SIGTERM after a
graceful stop (exit 143), and it closes WebSockets with 1012 before the
lifespan runs, while we promise 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator, Iterator

import uvicorn

from webchat.settings import Settings
from webchat.store import Store
from webchat.web.app import close_websockets, create_app
from webchat.web.cork import websocket_protocol


def quiet_invalid_text(record: logging.LogRecord) -> bool:
    """uvicorn closes a WebSocket that sends a text frame that is not UTF-8 with 1007, as it
    should, but logs a traceback for it: any client could fill the log. One line instead."""
    if record.getMessage().startswith("Invalid UTF-8 sequence received from client"):
        record.msg, record.args = INVALID_TEXT, ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


INVALID_TEXT = "a WebSocket client sent a text frame that is not UTF-8; closed it with 1007"


class NotStarted(Exception):
    """uvicorn gave up before serving; it has said why already."""


WS_MAX_SIZE = 1024 * 1024
"""Largest frame a browser may send; matches the POST body limit."""
# permessage-deflate is off: the profile showed compressing every small JSON frame costing
# more CPU than a loopback or LAN link saves in bytes.


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # signals are ours: see the module docstring


@contextlib.contextmanager
def _signals(loop: asyncio.AbstractEventLoop, on_signal: Callable[[], None]) -> Iterator[None]:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(
    settings: Settings, http: socket.socket, tcp: socket.socket | None, store: Store
) -> None:
    app = create_app(settings, tcp, store)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        ws=websocket_protocol(),
        ws_max_size=WS_MAX_SIZE,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ssl_certfile=settings.http_tls_cert,
        ssl_keyfile=settings.http_tls_key,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    logging.getLogger("uvicorn.error").addFilter(quiet_invalid_text)
    server = _Server(config)
    stopping: list[asyncio.Task[None]] = []

    async def stop() -> None:
        await close_websockets(app)
        server.should_exit = True

    def on_signal() -> None:
        if stopping:
            server.force_exit = True
        else:
            stopping.append(asyncio.ensure_future(stop()))

    with _signals(asyncio.get_running_loop(), on_signal):
        await server.serve(sockets=[http])
    if not server.started:
        raise NotStarted("the server did not start; see the message above")


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (uvicorn[standard] brings it): faster sockets, same API.

    Not with a TLS server role: uvloop reads a new connection before its protocol can
    pause it, so the ClientHello lands in the stream buffer and the handshake that
    `start_tls` begins afterwards never sees it (measured: every ncat --ssl hung)."""
    if settings.tcp_tls_cert or settings.starttls:  # STARTTLS: start_tls, likewise
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
