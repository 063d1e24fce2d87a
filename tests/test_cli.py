"""The CLI as a real process: help, bad input, busy ports, the console mirror, signals."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.conftest import Running, dial, recv_until, wait_until


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
    one_line_error(webchat("server", "--tcp-port", "abc"), 2, "'abc' is not a port: give a number")
    one_line_error(webchat("server", "--http-port", "70000"), 2, "from 0 to 65535")
    one_line_error(webchat("server", "--framing", "xml"), 2, "xml")
    one_line_error(webchat("client"), 2, "--connect")
    one_line_error(webchat("server", env={"WEBCHAT_TCP_PORT": "nope"}), 2, "WEBCHAT_TCP_PORT")


def test_connect_without_port_or_unresolvable_exits_1() -> None:
    one_line_error(webchat("client", "--connect", "localhost"), 1, "HOST:PORT")
    one_line_error(webchat("client", "--connect", "no-such-host.invalid:80"), 1, "resolve")


def test_bind_mistakes_name_the_real_one() -> None:
    one_line_error(
        webchat("server", "--http-host", "127.0.0.1:8000"),
        2,
        "give the port on its own: --http-host 127.0.0.1 --http-port 8000",
    )
    foreign = webchat("server", "--tcp-host", "192.0.2.1", "--tcp-port", "0", "--http-port", "0")
    one_line_error(foreign, 1, "192.0.2.1 is not an address of this machine")


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
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet") as running:
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            sock.sendall(b"hello\n")
            time.sleep(0.5)
        with pytest.raises(AssertionError):
            running.expect("hello", timeout=0.5)


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


def test_start_line_names_the_transcript_file(tmp_path: Path) -> None:
    db = tmp_path / "named.sqlite3"
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--db", str(db)) as running:
        assert running.start_line.endswith(f"transcript in {db}")
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--db", ":memory:") as memory:
        assert "transcript in memory" in memory.start_line


def test_a_bad_transcript_file_is_one_line_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 1000)
    result = webchat("server", "--tcp-port", "0", "--http-port", "0", "--db", str(junk))
    one_line_error(result, 1, f"{junk} is not an SQLite database")
    one_line_error(webchat("export", "--db", str(junk)), 1, str(junk))
    one_line_error(webchat("export", "--db", str(tmp_path / "none.db")), 1, "does not exist")
    one_line_error(webchat("export"), 2, "--db")


def acknowledged_traffic(running: Running, stop_after: int) -> tuple[dict[int, str], set[int]]:
    """POSTs and inbound lines at once until `stop_after` POSTs were acknowledged, then
    `kill -9`. Returns the acknowledged sends and the ids a WebSocket was shown."""
    base = f"http://127.0.0.1:{running.http_port}"
    shown: set[int] = set()
    acked: dict[int, str] = {}
    with (
        dial(f"127.0.0.1:{running.tcp_port}") as peer,
        ws_connect(f"ws://127.0.0.1:{running.http_port}/ws") as ws,
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        wait_until(lambda: http.get("/api/status").json()["peers"])

        def inbound() -> None:
            for i in range(3000):
                peer.sendall(b"in %d\n" % i)

        def watch() -> None:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                while True:
                    frame = json.loads(ws.recv(timeout=5))
                    if frame.get("type") == "message" and frame["direction"] == "in":
                        shown.add(frame["id"])

        threads = [threading.Thread(target=f, daemon=True) for f in (inbound, watch)]
        for thread in threads:
            thread.start()
        for i in range(stop_after):
            response = http.post("/api/messages", json={"text": f"post {i}"})
            assert response.status_code == 202
            acked[response.json()["id"]] = f"post {i}"
        running.proc.kill()
        running.proc.wait(5)
        threads[1].join(10)
    return acked, shown


def test_kill_9_loses_nothing_acknowledged_and_ids_continue(tmp_path: Path) -> None:
    db = str(tmp_path / "crash.sqlite3")
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--db", db) as first:
        acked, shown = acknowledged_traffic(first, 200)
    assert len(acked) == 200 and shown
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--db", db) as second:
        base = f"http://127.0.0.1:{second.http_port}"
        entries = httpx.get(f"{base}/api/messages?limit=10000").json()["messages"]
        while len(entries) % 10000 == 0 and entries:
            more = httpx.get(f"{base}/api/messages?limit=10000&after={entries[-1]['id']}")
            entries += more.json()["messages"]
        by_id = {e["id"]: e for e in entries}
        ids = [e["id"] for e in entries]
        assert ids == sorted(set(ids))
        assert {i: by_id[i]["text"] for i in acked} == acked
        assert shown <= by_id.keys()
        newest = entries[-1]
        assert (
            newest["kind"] == "listening"
            and newest["id"] > max(acked)
            and newest["id"] > max(shown)
        )
        resume_at = ids[len(ids) // 2]
        with ws_connect(f"ws://127.0.0.1:{second.http_port}/ws?after={resume_at}") as ws:
            replayed: list[int] = []
            while not replayed or replayed[-1] != newest["id"]:
                frame = json.loads(ws.recv(timeout=5))
                if frame["type"] in ("message", "event"):
                    replayed.append(frame["id"])
        assert replayed == [i for i in ids if i > resume_at]


def test_export_writes_a_live_transcript_offline(tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite3"
    with Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--db", str(db)
    ) as running:
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            sock.sendall(b"first, with comma\nsecond\n")
            base = f"http://127.0.0.1:{running.http_port}"
            wait_until(lambda: httpx.get(f"{base}/api/messages?q=second").json()["messages"])
        out = tmp_path / "out.csv"
        result = webchat("export", "--db", str(db), "--format", "csv", "-o", str(out))
        assert result.returncode == 0, result.stderr
        rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8"), newline="")))
        assert [r["text"] for r in rows if r["type"] == "message"] == [
            "first, with comma",
            "second",
        ]
        jsonl = webchat("export", "--db", str(db), "--after", "1")
        assert json.loads(jsonl.stdout.splitlines()[0])["id"] == 2
        txt = webchat("export", "--db", str(db), "--format", "txt").stdout
        assert re.search(r"Z  in   127\.0\.0\.1:\d+  second$", txt, re.M)


def test_off_loopback_a_token_is_generated_and_the_bare_url_refused() -> None:
    with Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--http-host", "0.0.0.0"
    ) as running:
        assert running.token and len(running.token) >= 24
        base = f"http://127.0.0.1:{running.http_port}"
        assert httpx.get(f"{base}/").status_code == 401
        assert httpx.get(f"{base}/api/status").status_code == 401
        with httpx.Client(base_url=base) as browser:
            page = browser.get(f"/?token={running.token}")
            assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
            assert browser.get("/api/status").status_code == 200  # by the cookie
            cookie = page.headers["set-cookie"].split(";")[0]
        with ws_connect(
            f"ws://127.0.0.1:{running.http_port}/ws", additional_headers={"Cookie": cookie}
        ) as ws:
            assert '"hello"' in str(ws.recv(timeout=5))
        with pytest.raises(Exception, match="401"):
            ws_connect(f"ws://127.0.0.1:{running.http_port}/ws").close()


def test_no_auth_off_loopback_warns(tmp_path: Path) -> None:
    running = Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--http-host", "0.0.0.0", "--no-auth"
    )
    try:
        assert running.token is None
        assert httpx.get(f"http://127.0.0.1:{running.http_port}/api/status").status_code == 200
    finally:
        running.proc.kill()
        assert running.proc.stderr is not None
        warning = running.proc.stderr.read()
        running.stop()
    assert "warning: --no-auth" in warning


def test_bad_access_flags_exit_2_with_one_line() -> None:
    one_line_error(webchat("server", "--allow", "example.org"), 2, "--allow")
    one_line_error(webchat("server", "--deny", "10.0.0.0/33"), 2, "--deny")
    one_line_error(webchat("server", "--token", "short"), 2, "token")
    one_line_error(webchat("server", "--idle-timeout", "0"), 2, "--idle-timeout")
    bad_login = webchat("client", "--connect", "127.0.0.1:9", "--on-connect", r"x\q")
    one_line_error(bad_login, 2, "--on-connect unknown escape")


def test_transcripts_lists_and_prunes_old_ones_but_never_one_in_use(data_home: Path) -> None:
    assert f"no transcripts in {data_home}" in webchat("transcripts").stdout
    data_home.mkdir(parents=True)
    old, fresh = data_home / "server-1111.sqlite3", data_home / "server-2222.sqlite3"
    for path in (old, fresh, data_home / "server-1111.sqlite3-wal"):
        path.write_bytes(b"")
    week_ago = time.time() - 8 * 86400
    for part in (old, data_home / "server-1111.sqlite3-wal"):
        os.utime(part, (week_ago - 86400, week_ago - 86400))
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet") as running:
        busy = data_home / f"server-{running.tcp_port}.sqlite3"
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{running.http_port}/healthz").is_success)
        time.sleep(0.2)  # its `listening` entry is written
        for part in [busy, *data_home.glob(busy.name + "-*")]:  # idle since long ago, but open
            os.utime(part, (week_ago, week_ago))
        listing = webchat("transcripts").stdout.splitlines()
        assert [line.split()[0] for line in listing] == [str(old), str(busy), str(fresh)]
        assert listing[1].endswith("in use") and not listing[0].endswith("in use")
        pruned = webchat("transcripts", "--prune", "7d")
        assert pruned.returncode == 0 and f"removed {old}" in pruned.stdout
        assert f"kept {busy}" in pruned.stderr and "in use" in pruned.stderr
        assert sorted(data_home.iterdir()) == sorted(
            [busy, fresh, *busy.parent.glob(busy.name + "-*")]
        )
    one_line_error(webchat("transcripts", "--prune", "soon"), 2, "'soon' is not an age")
