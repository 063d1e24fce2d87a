"""Shared helpers: loopback sockets on port 0, polling with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from webchat.model import Entry, Event, Message

T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Default transcripts go under the test's own directory, never the user's."""
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "webchat"


OPENED: list[asyncio.StreamWriter] = []


@pytest.fixture
async def close_test_peers() -> AsyncIterator[None]:
    """Close the TCP peers a roles test opened (they go in OPENED)."""
    yield
    while OPENED:
        writer = OPENED.pop()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class Recorder:
    """A hub listener that keeps every committed entry, for tests of the roles."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def __call__(self, entries: Sequence[Entry]) -> None:
        self.entries.extend(entries)

    def events(self, kind: str) -> list[Event]:
        return [e for e in self.entries if isinstance(e, Event) and e.kind == kind]

    def texts(self, direction: str = "in") -> list[str]:
        return [e.text for e in self.entries if isinstance(e, Message) and e.direction == direction]

    async def wait(self, check: object, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():  # type: ignore[operator]
                await asyncio.sleep(0.01)


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


def free_port() -> int:
    """A loopback port free now, for a program that takes a port number, not a socket."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def recv_until(sock: socket.socket, ending: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while not data.endswith(ending):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit
    return data


START = re.compile(
    r"page at https?://127\.0\.0\.1:(\d+)/(?:\?token=(\S+))?(?: \(token required\))? - "
    r"TCP (?:server on|client to) [\d.]+:(\d+)"
)


class Running:
    """A `webchat` process whose stdout lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webchat", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._collect, daemon=True).start()
        self.start_line = self.expect("page at")
        match = START.search(self.start_line)
        assert match, "the start-up line names the page and the TCP side"
        self.http_port, self.token, self.tcp_port = int(match[1]), match[2], int(match[3])

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no stdout line matched {pattern!r}")

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe:
                pipe.close()
