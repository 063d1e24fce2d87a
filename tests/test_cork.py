"""Corked WebSocket writes: one write a loop iteration, nothing lost on close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from webchat.web.cork import CorkedTransport, text_frames, websocket_protocol

pytestmark = pytest.mark.anyio


class Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 7

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def corked() -> tuple[CorkedTransport, Recording]:
    raw = Recording()
    transport: Any = raw
    return CorkedTransport(transport), raw


async def test_writes_of_one_iteration_leave_as_one() -> None:
    transport, raw = corked()
    for frame in (b"a", b"bb", b"ccc"):
        transport.write(frame)
    assert raw.writes == [] and transport.get_write_buffer_size() == 7 + 6
    await asyncio.sleep(0)
    assert raw.writes == [b"abbccc"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert raw.writes == [b"abbccc", b"next"]


async def test_a_large_burst_goes_out_before_the_iteration_ends() -> None:
    transport, raw = corked()
    transport.write(b"x" * 40_000)
    transport.write(b"y" * 40_000)  # past 64 KiB: flow control must see it now
    assert [len(w) for w in raw.writes] == [80_000]


async def test_close_sends_what_waits_and_abort_drops_it() -> None:
    transport, raw = corked()
    transport.write(b"close frame")
    transport.close()
    assert raw.writes == [b"close frame"] and raw.closed
    transport, raw = corked()
    transport.write(b"gone")
    transport.abort()
    await asyncio.sleep(0)
    assert raw.writes == [] and raw.aborted


async def test_our_fin_follows_what_waits() -> None:
    transport, raw = corked()
    order: list[str] = []
    raw.write = lambda data: order.append("write")  # type: ignore[method-assign]
    raw.write_eof = lambda: order.append("eof")  # type: ignore[attr-defined]
    transport.write(b"close frame")
    transport.write_eof()
    assert order == ["write", "eof"]


async def test_everything_else_is_the_real_transport() -> None:
    transport, _ = corked()
    assert transport.get_extra_info("peername") == "info peername"


def test_uvicorn_gets_a_protocol_that_corks_its_transport() -> None:
    protocol = websocket_protocol()
    assert not isinstance(protocol, str)
    assert "connection_made" in vars(protocol)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_our_frames_are_what_a_websockets_client_reads(size: int) -> None:
    """Each header length (7-bit, 16-bit, 64-bit), at its edges, and non-ASCII text."""
    client = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)  # past the handshake
    texts = ["é" * (size // 2) + "x" * (size % 2), "next"]
    client.receive_data(text_frames(texts))
    events = client.events_received()
    assert all(isinstance(e, Frame) and e.opcode is Opcode.TEXT and e.fin for e in events)
    assert [bytes(e.data).decode() for e in events if isinstance(e, Frame)] == texts
