"""Several instances, one room: the transcript as a Redis Stream, against Debian's redis-server.

Each test starts its own redis-server on a free loopback port, in its own directory, and
stops it by PID; nothing here uses a Redis double.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import redis
import trustme
from websockets.sync.client import connect as ws_connect

from tests.conftest import Running, free_port, port_open, wait_until
from tests.test_services import api, entries, need, stop
from webchat.model import Entry, Event, Message
from webchat.room.claims import RoomClaims
from webchat.store import Match
from webchat.store.redis import RedisStore
from webchat.store.redis_link import redacted


class RedisServer:
    """Debian's redis-server on a free port, with an append-only file, restartable."""

    def __init__(self, where: Path, *extra: str) -> None:
        self.program = need("redis-server", "redis-server")
        self.port = free_port()
        self.where = where
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "yes", "--dir", str(self.where), *self.extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port))

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def instance(url: str, *flags: str) -> Running:
    return Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--store", url, *flags
    )


def line(text: str, peer: str = "127.0.0.1:1") -> list[Entry]:
    return [Message.received(peer, text.encode())]


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", ["2", "3"])  # XREAD's reply has a shape for each
async def test_two_stores_of_one_room_give_one_gap_free_sequence(
    redis_server: RedisServer, protocol: str
) -> None:
    url = f"{redis_server.url}?protocol={protocol}"
    first, second = (RedisStore(url, "lab", 1000) for _ in range(2))
    seen: tuple[list[int], list[int]] = ([], [])
    first.follow(lambda batch: seen[0].extend(e.id for e in batch))
    second.follow(lambda batch: seen[1].extend(e.id for e in batch))
    try:
        await asyncio.gather(
            *(store.append(line(f"{n}")) for n in range(40) for store in (first, second))
        )
        async with asyncio.timeout(5):
            while len(seen[0]) < 80 or len(seen[1]) < 80:
                await asyncio.sleep(0.01)
        assert seen[0] == seen[1] == list(range(1, 81))
        assert first.epoch == second.epoch
        read = await second.read(0, 100)
        assert [e.id for e in read] == list(range(1, 81))
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_an_append_returns_followed_and_reads_match_sqlites_rules(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, "default", 1000)
    got: list[Entry] = []
    store.follow(got.extend)
    try:
        kept = await store.append(
            [*line("hello"), Event("connected", "127.0.0.1:2", "1 connected"), *line("bye")]
        )
        assert [e.id for e in kept] == [1, 2, 3] and [e.id for e in got] == [1, 2, 3]
        assert isinstance(got[1], Event) and got[1].detail == "1 connected"
        assert [e.id for e in await store.read(0, 10, newest_first=True)] == [3, 2, 1]
        assert [e.id for e in await store.read(1, 10, before=3)] == [2]
        assert [e.id for e in await store.read(0, 10, match=Match(text="BYE"))] == [3]
        assert [e.id for e in await store.read(0, 10, max_bytes=1)] == [1]
        assert await store.clear() == 3
        assert await store.read(0, 10) == []
        (after,) = await store.append(line("again"))
        assert after.id == 4  # ids go on after a clear
        raw = bytes(range(256))  # any bytes, as they came
        await store.append([Message.received("127.0.0.1:2", raw)])
        (back,) = await store.read(4, 1)
        assert isinstance(back, Message) and back.data == raw
    finally:
        await store.close()


@pytest.mark.anyio
async def test_an_append_retried_with_its_token_is_written_once(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, "default", 1000)
    keys = ["webchat:default:log", "webchat:default:last", "webchat:default:done:t1"]
    packed = msgpack.packb([["1.0", "in", "p:1", b"x", ""]], use_bin_type=False)
    args: list[str | int | bytes] = [1000, 60, "me", packed]
    try:
        assert await store._append(keys=keys, args=args) == 1
        assert await store._append(keys=keys, args=args) == 1  # the reply was lost: retried
        with redis.Redis(port=redis_server.port) as client:
            assert client.xlen("webchat:default:log") == 1
    finally:
        await store.close()


@pytest.mark.anyio
async def test_chat_names_are_claimed_once_in_the_room(redis_server: RedisServer) -> None:
    first, second = (RedisStore(redis_server.url, "lab", 1000) for _ in range(2))
    one, two = RoomClaims(first), RoomClaims(second)
    try:
        assert await one.claim("a:1", None) == "user1"
        assert await two.claim("b:2", None) == "user2"
        assert await two.claim("b:2", "ANN") == "ANN"
        assert await one.claim("a:1", "ann") is None  # taken, whatever its case
        assert await two.held() == {"a:1": "user1", "b:2": "ANN"}
        await two.release("b:2", "user2")
        await one.release("b:2", "ANN")  # only its owner gives a name back
        assert await one.claim("a:1", "ann") is None
        assert await one.forget(second.instance) == ["ANN"]  # its instance was lost
        assert await one.claim("a:1", "ann") == "ann"
        await one.release("a:1", "user1")
        await one.release("a:1", "ann")
        assert await two.claim("c:3", None) == "user1"  # an empty room counts from 1 again
    finally:
        await first.close()
        await second.close()


@pytest.mark.anyio
async def test_max_history_trims_the_stream(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, "default", 10)
    try:
        for n in range(30):
            await store.append([Message.received("p:1", str(k).encode()) for k in range(50)])
            assert n * 50 < store.last_id
        with redis.Redis(port=redis_server.port) as client:
            assert 10 <= client.xlen("webchat:default:log") < 1500
            client.delete("webchat:default:last")  # evicted, or deleted by hand
        (again,) = await store.append(line("after the counter was lost"))
        assert again.id == 30 * 50 + 1  # taken up from the stream: no clash, no gap
    finally:
        await store.close()


def test_the_password_is_never_shown(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--requirepass", "s3cret-pw")
    url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
    assert redacted(url) == f"redis://:***@127.0.0.1:{server.port}/0"
    try:
        with instance(url) as running, api(running) as http:
            assert "s3cret-pw" not in running.start_line
            assert f"redis://:***@127.0.0.1:{server.port}/0 (room default)" in running.start_line
            server.stop()
            wait_until(lambda: not http.get("/api/status").json()["store"]["ok"] or None)
            assert "s3cret-pw" not in http.get("/api/status").text
            running.proc.terminate()
            running.proc.wait(10)
            assert running.proc.stderr is not None
            stderr = running.proc.stderr.read()
        assert "cannot be reached" in stderr and "s3cret-pw" not in stderr
    finally:
        server.stop()


def test_two_instances_share_one_transcript_with_the_same_ids(
    redis_server: RedisServer,
) -> None:
    with instance(redis_server.url) as a, instance(redis_server.url) as b:
        with ws_connect(f"ws://127.0.0.1:{b.http_port}/ws?after=0") as page:
            assert json.loads(page.recv(5))["type"] == "hello"
            with socket.create_connection(("127.0.0.1", a.tcp_port)) as peer:
                peer.sendall(b"hello from a peer of A\n")
                while True:
                    frame = json.loads(page.recv(5))
                    if frame.get("text") == "hello from a peer of A":
                        break
        assert frame["direction"] == "in"
        wait_until(lambda: entries(a) == entries(b) and len(entries(a)) >= 4)
        listed = entries(a)
        assert [e["id"] for e in listed] == list(range(1, len(listed) + 1))
        assert frame["id"] in [e["id"] for e in listed]
        with api(a) as http_a, api(b) as http_b:
            assert http_a.get("/api/export").text == http_b.get("/api/export").text


def test_redis_down_refuses_sends_keeps_peers_and_recovers(
    redis_server: RedisServer,
) -> None:
    with instance(redis_server.url) as running, api(running) as http:
        with socket.create_connection(("127.0.0.1", running.tcp_port)) as peer:
            wait_until(lambda: http.get("/api/status").json()["peers"])
            redis_server.stop()
            answer = http.post("/api/messages", json={"text": "while down"})
            assert answer.status_code == 503 and "cannot be reached" in answer.json()["detail"]
            status = http.get("/api/status").json()
            assert status["store"]["ok"] is False and len(status["peers"]) == 1
            assert http.get("/api/messages").status_code == 503
            peer.sendall(b"said while redis was down\n")
            redis_server.start()
            wait_until(lambda: http.get("/api/status").json()["store"]["ok"], timeout=10)
            wait_until(
                lambda: "said while redis was down" in [e.get("text") for e in entries(running)],
                timeout=10,
            )
            assert http.post("/api/messages", json={"text": "back"}).status_code == 202
        listed = entries(running)
        assert [e["id"] for e in listed] == list(range(1, len(listed) + 1))


def test_redis_out_of_memory_is_waited_out_as_an_outage(redis_server: RedisServer) -> None:
    """Redis refusing writes (`maxmemory` reached) keeps the lines waiting, not dropped."""
    with (
        instance(redis_server.url) as running,
        api(running) as http,
        redis.Redis(port=redis_server.port) as admin,
        socket.create_connection(("127.0.0.1", running.tcp_port)) as peer,
    ):
        wait_until(lambda: http.get("/api/status").json()["peers"])
        admin.config_set("maxmemory", 1)
        peer.sendall(b"said while redis was full\n")
        wait_until(lambda: http.get("/api/status").json()["store"]["ok"] is False)
        answer = http.post("/api/messages", json={"text": "while full"})
        assert answer.status_code == 503 and "maxmemory" in answer.json()["detail"]
        time.sleep(1.5)  # the tail reads on meanwhile: a read must not end the refusal
        assert http.get("/api/status").json()["store"]["ok"] is False
        admin.config_set("maxmemory", 0)
        wait_until(lambda: "said while redis was full" in [e.get("text") for e in entries(running)])
        assert http.get("/api/status").json()["store"]["ok"] is True
        assert len(http.get("/api/status").json()["peers"]) == 1  # still connected


def test_a_tls_redis_takes_its_ca_in_the_url(tmp_path: Path) -> None:
    ca = trustme.CA()
    pem, ca_pem = tmp_path / "redis.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    port = free_port()
    argv = [need("redis-server", "redis-server"), "--port", "0", "--tls-port", str(port)]
    argv += ["--tls-cert-file", str(pem), "--tls-key-file", str(pem), "--tls-auth-clients", "no"]
    argv += ["--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port))
        url = f"rediss://127.0.0.1:{port}/0"
        untrusted = subprocess.run(
            [sys.executable, "-m", "webchat", "server", "--tcp-port", "0", "--store", url],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert untrusted.returncode == 1 and "?ssl_ca_certs=" in untrusted.stderr
        with (
            instance(f"{url}?ssl_ca_certs={ca_pem}") as running,
            socket.create_connection(("127.0.0.1", running.tcp_port)) as peer,
        ):
            peer.sendall(b"over TLS to redis\n")
            wait_until(lambda: "over TLS to redis" in [e.get("text") for e in entries(running)])
    finally:
        stop(server)


def test_a_store_url_is_checked_and_sqlite_urls_are_files(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "webchat", "server", "--store", "ftp://x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "--store takes redis://" in bad.stderr
    path = tmp_path / "t.sqlite3"
    with Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--store", f"sqlite:///{path}"
    ) as running:
        assert f"transcript in {path}" in running.start_line
    unreachable = subprocess.run(
        [
            sys.executable,
            "-m",
            "webchat",
            "server",
            "--store",
            f"redis://127.0.0.1:{free_port()}/0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unreachable.returncode == 1
    assert "cannot be reached" in unreachable.stderr and "Traceback" not in unreachable.stderr


def test_sends_relays_and_the_roster_cross_instances(redis_server: RedisServer) -> None:
    with (
        instance(redis_server.url, "--relay") as a,
        instance(redis_server.url, "--relay") as b,
        api(b) as http_b,
    ):
        assert http_b.post("/api/messages", json={"text": "nobody"}).status_code == 409
        peer_a = socket.create_connection(("127.0.0.1", a.tcp_port), timeout=5)
        peer_b = socket.create_connection(("127.0.0.1", b.tcp_port), timeout=5)
        with peer_a, peer_b:
            wait_until(lambda: len(http_b.get("/api/status").json()["peers"]) == 2)
            roster = http_b.get("/api/status").json()["peers"]
            holders = {p["peer"]: p["instance"] for p in roster}
            assert len(set(holders.values())) == 2  # each peer with the instance holding it
            name_a = peer_name(peer_a)
            assert name_a in holders
            sent = http_b.post("/api/messages", json={"text": "to all, from B"})
            assert sent.status_code == 202
            assert peer_a.recv(100) == b"to all, from B\n"
            assert peer_b.recv(100) == b"to all, from B\n"
            only = http_b.post("/api/messages", json={"text": "to A's peer", "to": name_a})
            assert only.status_code == 202
            assert peer_a.recv(100) == b"to A's peer\n"
            peer_a.sendall(b"relayed across\n")
            assert peer_b.recv(100) == b"relayed across\n"
            unknown = http_b.post("/api/messages", json={"text": "x", "to": "10.0.0.1:1"})
            assert unknown.status_code == 404
            a.proc.kill()  # kill -9: no goodbye
            wait_until(lambda: len(http_b.get("/api/status").json()["peers"]) == 1, 10)
            lost = [e for e in entries(b) if e.get("detail") == "instance lost"]
            assert [e["peer"] for e in lost] == [name_a]


def test_quick_comings_and_goings_leave_no_peer_in_the_rooms_hash(
    redis_server: RedisServer,
) -> None:
    """Every peer that leaves is taken out of the room's hash, however quickly it came and
    went (a late HSET would list it for ever: the writes keep their entries' order)."""
    with instance(redis_server.url) as running, redis.Redis(port=redis_server.port) as admin:
        for _ in range(40):
            socket.create_connection(("127.0.0.1", running.tcp_port), timeout=5).close()
        wait_until(
            lambda: len([e for e in entries(running) if e.get("kind") == "disconnected"]) == 40
        )
        wait_until(lambda: admin.hlen("webchat:default:peers") == 0)
        time.sleep(0.5)  # a write that came late would show now
        assert admin.hlen("webchat:default:peers") == 0


def peer_name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def test_one_client_instance_a_room_held_as_a_lease(redis_server: RedisServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as service:
        target = f"127.0.0.1:{service.getsockname()[1]}"
        flags = ["--connect", target, "--http-port", "0", "--quiet", "--store", redis_server.url]
        with Running("client", *flags) as first:
            second = subprocess.run(
                [sys.executable, "-m", "webchat", "client", *flags],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert second.returncode == 1
            assert "room default's client connection is held by instance" in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1
            first.proc.kill()  # kill -9: the lease runs out by itself
            killed = time.monotonic()
        while not takes_the_room(flags):
            assert time.monotonic() - killed < 15, "the lease outlived its holder"
        assert time.monotonic() - killed > 3  # it was held until it ran out, not given up


def takes_the_room(flags: list[str]) -> bool:
    """Start a client instance: True if it is still running after 2 s (it holds the room)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "webchat", "client", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(2)
    except subprocess.TimeoutExpired:
        stop(proc)
        return True
    return False


def test_a_stopped_client_instance_gives_the_room_up_at_once(redis_server: RedisServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as service:
        target = f"127.0.0.1:{service.getsockname()[1]}"
        flags = ["--connect", target, "--http-port", "0", "--quiet", "--store", redis_server.url]
        first = Running("client", *flags)
        with api(first) as http:
            assert http.get("/healthz").status_code == 200  # serving: its signals are ours
        first.proc.terminate()
        assert first.proc.wait(10) == 0
        first.stop()
        with Running("client", *flags) as second:
            assert "TCP client to" in second.start_line


@contextlib.contextmanager
def viewer(url: str, *flags: str) -> Iterator[tuple[str, httpx.Client]]:
    """`webchat view` on a free port: its start line and a client of its API."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "webchat", "view", "--http-port", "0", "--store", url, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        start = proc.stdout.readline()
        port = int(start.split("page at http://127.0.0.1:")[1].split("/")[0])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield start, http
    finally:
        stop(proc)  # type: ignore[arg-type]


def test_a_viewer_instance_shows_the_room_and_sends_through_it(
    redis_server: RedisServer,
) -> None:
    with (
        viewer(redis_server.url) as (start, http),
        instance(redis_server.url) as server,
        socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5) as peer,
    ):
        assert "viewer of room default" in start
        wait_until(lambda: http.get("/api/status").json()["peers"])
        assert http.get("/api/status").json()["role"] == "view"
        assert http.post("/api/messages", json={"text": "from a viewer"}).status_code == 202
        assert peer.recv(100) == b"from a viewer\n"
        peer.sendall(b"seen by the viewer\n")
        wait_until(
            lambda: (
                "seen by the viewer"
                in [m.get("text") for m in http.get("/api/messages").json()["messages"]]
            )
        )
        assert "<h1>Room</h1>" in http.get("/").text


def test_a_viewer_needs_a_shared_store() -> None:
    alone = subprocess.run(
        [sys.executable, "-m", "webchat", "view"], capture_output=True, text=True, timeout=30
    )
    assert alone.returncode == 2 and "give --store redis://" in alone.stderr


def test_three_instances_relay_a_line_to_every_other_peer(redis_server: RedisServer) -> None:
    with (
        instance(redis_server.url, "--relay") as a,
        instance(redis_server.url, "--relay") as b,
        instance(redis_server.url, "--relay") as c,
        api(c) as http,
    ):
        peers = [socket.create_connection(("127.0.0.1", i.tcp_port), timeout=5) for i in (a, b, c)]
        try:
            wait_until(lambda: len(http.get("/api/status").json()["peers"]) == 3)
            peers[0].sendall(b"from a peer of A\n")
            assert [p.recv(100) for p in peers[1:]] == [b"from a peer of A\n"] * 2
            peers[2].sendall(b"from a peer of C\n")
            assert [p.recv(100) for p in peers[:2]] == [b"from a peer of C\n"] * 2
        finally:
            for peer in peers:
                peer.close()


def test_a_chat_room_spans_instances_with_names_unique_in_the_room(
    redis_server: RedisServer,
) -> None:
    with (
        instance(redis_server.url, "--chat") as a,
        instance(redis_server.url, "--chat") as b,
        viewer(redis_server.url, "--chat") as (start, page),
    ):
        assert "viewer of chat room default" in start
        one = socket.create_connection(("127.0.0.1", a.tcp_port), timeout=10)
        said_one = one.makefile("rb")
        assert said_one.readline() == b"* welcome, you are user1; /nick NAME changes it\n"
        two = socket.create_connection(("127.0.0.1", b.tcp_port), timeout=10)
        said_two = two.makefile("rb")
        with one, two, said_one, said_two:
            assert said_two.readline().startswith(b"* welcome, you are user2;")
            assert said_one.readline() == b"* user2 joined\n"
            one.sendall(b"/nick ann\n")
            assert said_one.readline() == b"* you are now ann\n"
            heard = said_two.readline()
            if heard == b"* user1 joined\n":  # A's news of user1 reached B after two joined
                heard = said_two.readline()
            assert heard == b"* user1 is now ann\n"
            wait_until(  # the viewer holds no peer: it lists them, named, from the room
                lambda: (
                    {p.get("name") for p in page.get("/api/status").json()["peers"]}
                    == {"ann", "user2"}
                )
            )
            two.sendall(b"/nick ANN\n")
            assert said_two.readline() == b"* ANN is taken; choose another name\n"
            two.sendall(b"hello \x1b[2J from B\n")
            assert said_one.readline() == b"<user2> hello \\x1b[2J from B\n"
            one.sendall(b"hi from A\n")
            assert said_two.readline() == b"<ann> hi from A\n"
            said = page.post("/api/messages", json={"text": "from the page", "name": "bo"})
            assert said.status_code == 202  # a viewer's page speaks in the room by name
            assert said_one.readline() == b"<bo> from the page\n"
            assert said_two.readline() == b"<bo> from the page\n"
            a.proc.kill()  # kill -9: its peer's name is given back, and the room is told
            assert said_two.readline() == b"* ann left\n"
            two.sendall(b"/nick ann\n")
            assert said_two.readline() == b"* you are now ann\n"
        details = [e["detail"] for e in entries(b) if e.get("kind") == "chat"]
        assert details[:3] == ["user1 joined", "user2 joined", "user1 is now ann"]
        assert "ann left" in details


def test_rules_and_snippets_are_the_rooms_on_every_instance(redis_server: RedisServer) -> None:
    with (
        instance(redis_server.url) as a,
        instance(redis_server.url) as b,
        api(a) as http_a,
        api(b) as http_b,
    ):
        saved = http_a.post("/api/snippets", json={"name": "hi", "text": "hello {{counter}}"})
        assert saved.status_code == 201 and saved.json()["id"] == 1
        assert [s["name"] for s in http_b.get("/api/snippets").json()["snippets"]] == ["hi"]
        peer = socket.create_connection(("127.0.0.1", a.tcp_port), timeout=5)
        heard = peer.makefile("rb")
        with peer, heard:
            wait_until(lambda: len(http_b.get("/api/status").json()["peers"]) == 1)
            timer = http_b.post("/api/rules", json={"every": 0.5, "reply": "tick"})
            assert timer.status_code == 201 and timer.json()["id"] == 1
            assert heard.readline() == b"tick\n"  # A heard of B's rule at its next beat
            assert http_b.delete("/api/rules/1").status_code == 204
            rule = http_b.post("/api/rules", json={"match": "^ping$", "reply": "pong"})
            assert rule.status_code == 201 and rule.json()["id"] == 2
            assert http_a.get("/api/rules").json()["rules"][0]["reply"] == "pong"
            peer.sendall(b"ping\n")
            while (said := heard.readline()) == b"tick\n":
                pass  # until A's next beat, its timer goes on
            assert said == b"pong\n"
            sent = http_b.post("/api/snippets/1/send", json={})
            assert sent.status_code == 202
            while (said := heard.readline()) == b"tick\n":
                pass
            assert said == b"hello 1\n"  # and no second pong: A alone answered
        assert http_a.get("/api/snippets").json()["snippets"][0]["sent"] == 1
        assert http_a.delete("/api/rules/2").status_code == 204
        assert http_b.get("/api/rules").json()["rules"] == []
        assert http_b.patch("/api/snippets/1", json={"text": "bye"}).status_code == 200
    with instance(redis_server.url) as c, api(c) as http_c:  # kept in Redis, not in a process
        assert http_c.get("/api/snippets").json()["snippets"][0]["text"] == "bye"
        redis_server.stop()
        refused = http_c.post("/api/snippets", json={"name": "x", "text": "y"})
        assert refused.status_code == 503 and "cannot be reached" in refused.json()["detail"]


def test_a_send_goes_out_as_sent_from_whichever_instance(redis_server: RedisServer) -> None:
    """An explicit line ending and a file's bytes are kept with the entry, not left to the
    holder's framing; `framing` is the holder's (A's LF here, not B's CRLF)."""
    with (
        instance(redis_server.url) as a,
        instance(redis_server.url, "--framing", "crlf") as b,
        api(b) as http_b,
    ):
        peer = socket.create_connection(("127.0.0.1", a.tcp_port), timeout=5)
        with peer:
            wait_until(lambda: len(http_b.get("/api/status").json()["peers"]) == 1)
            for ending, wire in (("crlf", b"x\r\n"), ("none", b"x"), ("framing", b"x\n")):
                sent = http_b.post("/api/messages", json={"text": "x", "line_ending": ending})
                assert sent.status_code == 202
                assert recv_exactly(peer, len(wire)) == wire
            data = bytes(range(256)) * 40
            octets = {"content-type": "application/octet-stream"}
            filed = http_b.post("/api/messages/file", content=data, headers=octets)
            assert filed.status_code == 202, filed.text
            assert recv_exactly(peer, len(data)) == data
            peer.sendall(b"done\n")  # and nothing more came before it
            wait_until(lambda: any(e.get("text") == "done" for e in entries(b)))
            peer.settimeout(0.3)
            with pytest.raises(TimeoutError):
                peer.recv(1)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {len(data)} of {size} bytes"
        data += chunk
    return data
