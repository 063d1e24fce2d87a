"""The CLI as a real process: help, bad input, busy ports, the console mirror, signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.conftest import Running, dial, recv_until


def webchat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webchat", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def server() -> Iterator[Running]:
    running = Running("server", "--tcp-port", "0", "--http-port", "0")
    yield running
    running.stop()


def one_line_error(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_help_lists_every_flag() -> None:
    result = webchat("server", "--help")
    assert result.returncode == 0
    for flag in (
        "--tcp-host",
        "--tcp-port",
        "--http-host",
        "--http-port",
        "--max-clients",
        "--relay",
        "--framing",
        "--max-line",
        "--db",
        "--quiet",
    ):
        assert flag in result.stdout
    assert "--connect" in webchat("client", "--help").stdout


def test_bad_flags_and_values_exit_2_with_one_line() -> None:
    one_line_error(webchat("server", "--bogus"), 2, "--bogus")
    one_line_error(webchat("server", "--tcp-port", "abc"), 2, "abc")
    one_line_error(webchat("server", "--framing", "xml"), 2, "xml")
    one_line_error(webchat("client"), 2, "--connect")
    one_line_error(webchat("server", env={"WEBCHAT_TCP_PORT": "nope"}), 2, "WEBCHAT_TCP_PORT")


def test_connect_without_port_or_unresolvable_exits_1() -> None:
    one_line_error(webchat("client", "--connect", "localhost"), 1, "HOST:PORT")
    one_line_error(webchat("client", "--connect", "no-such-host.invalid:80"), 1, "resolve")


def test_busy_ports_exit_1_naming_the_flag() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        one_line_error(webchat("server", "--tcp-port", port, "--http-port", "0"), 1, "--tcp-port")
        one_line_error(webchat("server", "--tcp-port", "0", "--http-port", port), 1, "--http-port")


def test_console_mirror_prints_each_message_and_event(server: Running) -> None:
    server.expect(r"^\d\d:\d\d:\d\d\.\d{3} --- - listening")
    with dial(f"127.0.0.1:{server.tcp_port}") as sock:
        name = f"127.0.0.1:{sock.getsockname()[1]}"
        server.expect(rf"--- {name} connected")
        sock.sendall(b"hello\x1b[2J\n")
        assert re.fullmatch(
            rf"\d\d:\d\d:\d\d\.\d{{3}} in  {name} hello\\x1b\[2J", server.expect("in  ")
        )


def test_quiet_prints_only_the_start_line() -> None:
    running = Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet")
    try:
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            sock.sendall(b"hello\n")
            time.sleep(0.5)
        with pytest.raises(AssertionError):
            running.expect("hello", timeout=0.5)
    finally:
        running.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_peers_with_fin_websockets_with_1001_and_exits_0(
    server: Running, sig: int
) -> None:
    with (
        dial(f"127.0.0.1:{server.tcp_port}") as sock,
        ws_connect(f"ws://127.0.0.1:{server.http_port}/ws") as ws,
    ):
        server.expect("connected")
        assert '"hello"' in str(ws.recv(timeout=5))
        started = time.monotonic()
        server.proc.send_signal(sig)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert recv_until(sock, b"\n") == b""  # FIN: the peer reads end-of-stream, not a reset
        assert server.proc.wait(5) == 0
        assert time.monotonic() - started < 5
