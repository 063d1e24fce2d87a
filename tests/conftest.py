"""Shared helpers: loopback sockets on port 0, polling with a deadline."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def wait_until(check: Callable[[], T], timeout: float = 5.0) -> T:
    """Poll `check` until it returns something truthy; fail with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def dial(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
    return sock


def recv_until(sock: socket.socket, ending: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while not data.endswith(ending):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit
    return data
