"""webchat against real programs nobody here wrote: nc, ngircd, redis-server, telnet.

Each program is started by the test on a free loopback port and stopped by its PID;
`.ci/run` installs the Debian packages when they are missing, and a test whose
program is absent skips and says which package it needs.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Running, free_port, port_open, wait_until


def need(program: str, package: str) -> str:
    path = shutil.which(program) or (
        f"/usr/sbin/{program}" if Path(f"/usr/sbin/{program}").exists() else None
    )
    if path is None:
        pytest.skip(f"{program} is missing: apt-get install {package}")
    return path


def api(running: Running) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}", timeout=10)


def entries(running: Running, **query: Any) -> list[dict[str, Any]]:
    with api(running) as http:
        listed: list[dict[str, Any]] = http.get(
            "/api/messages", params={"limit": 1000, **query}
        ).json()["messages"]
        return listed


def texts(running: Running, direction: str = "in") -> list[str]:
    return [e["text"] for e in entries(running, direction=direction)]


def kinds(running: Running) -> list[str]:
    return [e["kind"] for e in entries(running) if e["type"] == "event"]


@pytest.fixture
def server() -> Iterator[Running]:
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet") as running:
        yield running


def test_a_request_piped_into_nc_gets_the_pages_reply(server: Running) -> None:
    nc = need("nc", "netcat-openbsd")
    piped = subprocess.Popen(
        [nc, "-N", "127.0.0.1", str(server.tcp_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert piped.stdin is not None and piped.stdout is not None
        piped.stdin.write(b"question?\n")
        piped.stdin.close()  # nc -N: shutdown(SHUT_WR) after stdin's EOF, then keep reading
        wait_until(lambda: "half_closed" in kinds(server))
        time.sleep(0.5)  # a reply some time later, as a person would type it
        with api(server) as http:
            assert http.post("/api/messages", json={"text": "answer!"}).status_code == 202
        assert piped.stdout.readline() == b"answer!\n"
        assert texts(server) == ["question?"]
        half = [e for e in entries(server) if e.get("kind") == "half_closed"]
        assert half[0]["detail"] == "peer finished sending"
    finally:
        stop(piped)


@contextlib.contextmanager
def listening(argv: list[str], port: int) -> Iterator[None]:
    """A server program, started here and stopped by its PID, once its port answers."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port))
        yield
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a program this test started, by its PID, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class SlowLink:
    """A TCP relay that delivers each chunk from the server in two packets 0.3 s apart, as a
    retransmission would: the line framing must not cut a line at the pause."""

    def __init__(self, upstream: int, pause: float = 0.3) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._upstream, self._pause = upstream, pause
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            near, _ = self.listener.accept()
            far = socket.create_connection(("127.0.0.1", self._upstream))
            for source, sink, split in ((far, near, True), (near, far, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, split), daemon=True
                )
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, split: bool) -> None:
        with contextlib.suppress(OSError), source, sink:
            while chunk := source.recv(65536):
                if split and len(chunk) > 1:
                    sink.sendall(chunk[: len(chunk) // 2])
                    time.sleep(self._pause)
                    chunk = chunk[len(chunk) // 2 :]
                sink.sendall(chunk)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def ngircd(tmp_path: Path) -> Iterator[int]:
    with irc_server(tmp_path) as port:
        yield port


@contextlib.contextmanager
def irc_server(where: Path, ping_timeout: int = 120) -> Iterator[int]:
    """Debian's ngircd on a free port; it PINGs a client silent for `ping_timeout` seconds
    and drops it after as many more without a PONG."""
    program = need("ngircd", "ngircd")
    port = free_port()
    conf = where / "ngircd.conf"
    conf.write_text(
        "[Global]\nName = irc.example.org\nInfo = webchat test\nListen = 127.0.0.1\n"
        f'Ports = {port}\nMotdPhrase = "hello from ngircd"\nPidFile = {where}/ngircd.pid\n'
        f"[Limits]\nPingTimeout = {ping_timeout}\n[Options]\nPAM = no\nDNS = no\nIdent = no\n"
    )
    with listening([program, "-n", "-f", str(conf)], port):
        yield port


def test_irc_lines_split_across_a_pause_stay_whole_in_crlf_framing(ngircd: int) -> None:
    link = SlowLink(ngircd)
    try:
        with Running(
            "client",
            "--connect",
            f"127.0.0.1:{link.port}",
            "--http-port",
            "0",
            "--quiet",
            "--framing",
            "crlf",
            "--on-connect",
            "NICK tester",
            "--on-connect",
            "USER tester 0 * :webchat test",
        ) as running:
            wait_until(lambda: any(" 376 " in t for t in texts(running)), timeout=20)
            with api(running) as http:
                assert http.post("/api/messages", json={"text": "PING :split"}).status_code == 202
            wait_until(
                lambda: any(t.endswith("PONG irc.example.org :split") for t in texts(running)),
                timeout=10,
            )
            received = texts(running)
            assert all(t.startswith(":irc.example.org ") for t in received), received
            assert any(t.startswith(":irc.example.org 001 tester :Welcome") for t in received)
    finally:
        link.close()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[int]:
    program = need("redis-server", "redis-server")
    port = free_port()
    argv = [program, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    with listening([*argv, "--appendonly", "no", "--dir", str(tmp_path)], port):
        yield port


def test_redis_inline_commands_in_crlf_framing(redis: int) -> None:
    with (
        Running(
            "client",
            "--connect",
            f"127.0.0.1:{redis}",
            "--http-port",
            "0",
            "--quiet",
            "--framing",
            "crlf",
        ) as running,
        api(running) as http,
    ):
        wait_until(lambda: "connected" in kinds(running))
        for text in ("PING", "SET greeting hello", "GET greeting", "GET missing"):
            assert http.post("/api/messages", json={"text": text}).status_code == 202
        wait_until(lambda: len(texts(running)) >= 5)
        assert texts(running) == ["+PONG", "+OK", "$5", "hello", "$-1"]


def test_the_telnet_client_gets_clean_lines_both_ways() -> None:
    telnet = need("telnet", "telnet")
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--telnet") as running:
        client = subprocess.Popen(
            [telnet, "127.0.0.1", str(running.tcp_port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert client.stdin is not None and client.stdout is not None
            wait_until(lambda: "connected" in kinds(running))
            client.stdin.write(b"hello from telnet\n")
            client.stdin.flush()
            wait_until(lambda: texts(running) == ["hello from telnet"])
            with api(running) as http:
                sent = http.post("/api/messages", json={"text": "first\nsecond \xff"})
                assert sent.status_code == 202
            seen = b""
            while b"second" not in seen:
                seen += client.stdout.readline()
            assert seen.endswith(b"'^]'.\nfirst\nsecond \xc3\xbf\n")  # nothing but the lines
        finally:
            stop(client)


def test_the_client_role_refuses_a_telnet_servers_options() -> None:
    """A scripted telnet server: it offers options, sends a prompt, and ends lines CR NUL."""
    listener = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"\xff\xfd\x01\xff\xfb\x03\xff\xfd\x1fWelcome\r\x00to \xff\xff\r\nlogin: ")
            conn.settimeout(5)
            data = b""
            while len(data) < 9 or not data.endswith(b"\r\n"):
                data += conn.recv(100)
            answers.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with Running(
            "client",
            "--connect",
            f"127.0.0.1:{listener.getsockname()[1]}",
            "--http-port",
            "0",
            "--quiet",
            "--telnet",
        ) as running:
            wait_until(lambda: len(texts(running)) == 3)
            assert texts(running) == ["Welcome", "to \ufffd", "login: "]
            # "to " and one 0xff byte
            assert entries(running, q="to ", direction="in")[0]["b64"] == "dG8g/w=="
            (event,) = [e for e in entries(running) if e.get("kind") == "telnet"]
            assert event["detail"] == (
                "DO ECHO, WILL SUPPRESS-GO-AHEAD, DO NAWS; "
                "answered WONT ECHO, DONT SUPPRESS-GO-AHEAD, WONT NAWS"
            )
            with api(running) as http:
                assert http.post("/api/messages", json={"text": "bob"}).status_code == 202
            thread.join(5)
            assert answers == [b"\xff\xfc\x01\xff\xfe\x03\xff\xfc\x1fbob\r\n"]
    finally:
        listener.close()
