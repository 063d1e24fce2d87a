"""The REST API and /ws through TestClient (lifespan on), with raw sockets as TCP peers."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import dial, recv_until, wait_until
from webchat.settings import Settings
from webchat.web.app import create_app


def make_client(**options: Any) -> TestClient:
    base: dict[str, Any] = {
        "tcp_port": 0,
        "http_port": 0,
        "quiet": True,
        "allow_host": ["testserver"],  # the Host TestClient sends; test_guard tests the rule
    }
    return TestClient(create_app(Settings(**(base | options))))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def tcp_address(client: TestClient) -> str:
    return str(client.get("/api/status").json()["tcp"])


def join(client: TestClient) -> socket.socket:
    before = len(client.get("/api/status").json()["peers"])
    sock = dial(tcp_address(client))
    wait_until(lambda: len(client.get("/api/status").json()["peers"]) > before)
    return sock


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_status_lists_peers_with_counters(client: TestClient) -> None:
    status = client.get("/api/status").json()
    assert status | {"tcp": None} == {
        "role": "server",
        "tcp": None,
        "framing": "line",
        "peers": [],
        "subscribers": 0,
        "store": {"ok": True, "error": None, "since": None},
    }
    with join(client) as sock:
        sock.sendall(b"abc\n")
        wait_until(lambda: client.get("/api/status").json()["peers"][0]["bytes_in"] == 4)
        peer = client.get("/api/status").json()["peers"][0]
        assert peer["peer"] == f"127.0.0.1:{sock.getsockname()[1]}"
        assert peer["connected_at"].endswith("Z")


def test_post_without_peer_is_409_with_advice(client: TestClient) -> None:
    response = client.post("/api/messages", json={"text": "hi"})
    assert response.status_code == 409
    assert "connect" in response.json()["detail"]


def test_post_reaches_every_peer_or_one(client: TestClient) -> None:
    with join(client) as a, join(client) as b:
        response = client.post("/api/messages", json={"text": "hello all"})
        assert response.status_code == 202
        entry = response.json()
        assert entry["id"] > 0 and entry["direction"] == "out" and entry["peer"] is None
        assert recv_until(a, b"\n") == b"hello all\n"
        assert recv_until(b, b"\n") == b"hello all\n"
        name_b = f"127.0.0.1:{b.getsockname()[1]}"
        response = client.post("/api/messages", json={"text": "only b", "to": name_b})
        assert response.status_code == 202 and response.json()["peer"] == name_b
        assert recv_until(b, b"\n") == b"only b\n"
        a.settimeout(0.2)
        with pytest.raises(TimeoutError):
            a.recv(100)


def test_post_errors(client: TestClient) -> None:
    with join(client):
        missing = client.post("/api/messages", json={"text": "x", "to": "10.9.9.9:1"})
        assert missing.status_code == 404 and "10.9.9.9:1" in missing.json()["detail"]
        assert client.post("/api/messages", json={"txt": "x"}).status_code == 422
        assert client.post("/api/messages", content=b"not json").status_code == 422
        lone = client.post(
            "/api/messages",
            content=b'{"text":"\\ud800"}',
            headers={"content-type": "application/json"},
        )
        assert lone.status_code == 422 and "surrogate" in lone.json()["detail"]
        for loose in ("true", 1):  # as strict as /ws, which refuses them
            sent = client.post("/api/messages", json={"text": "x", "escapes": loose})
            assert sent.status_code == 422


def test_transcript_paging(client: TestClient) -> None:
    with join(client) as sock:
        sock.sendall(b"one\ntwo\nthree\n")
        wait_until(lambda: len(client.get("/api/messages?limit=100").json()["messages"]) >= 5)
    everything = client.get("/api/messages").json()["messages"]
    ids = [m["id"] for m in everything]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    texts = [m["text"] for m in everything if m["type"] == "message"]
    assert texts == ["one", "two", "three"]
    page = client.get(f"/api/messages?after={ids[1]}&limit=2").json()["messages"]
    assert [m["id"] for m in page] == ids[2:4]
    assert client.get("/api/messages?limit=999999").status_code == 200
    assert client.get("/api/messages?limit=0").status_code == 422
    assert client.get("/api/messages?after=-1").status_code == 422


def test_client_role_serves_while_target_is_down() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with make_client(role="client", connect=f"127.0.0.1:{port}") as client:
        wait_until(lambda: client.get("/api/messages").json()["messages"])
        event = client.get("/api/messages").json()["messages"][0]
        assert event["kind"] == "connect_failed" and "refused" in event["detail"]
        response = client.post("/api/messages", json={"text": "x"})
        assert response.status_code == 409 and "not connected" in response.json()["detail"]
        assert client.get("/api/status").json()["role"] == "client"
        assert "TCP Client" in client.get("/").text


def test_page_has_the_seed_layout(client: TestClient) -> None:
    html = client.get("/").text
    for needle in (
        "<h1>TCP Server</h1>",
        f"<title>webchat · server :{tcp_address(client).rpartition(':')[2]}</title>",
        'role="log"',
        '<textarea id="entry"',
        ">Send</button>",
        'id="peer"',
    ):
        assert needle in html
    assert "<script>" not in html  # no inline script: the CSP to come must not break it
    assert client.get("/static/main.js").status_code == 200


def test_each_endpoint_gets_its_own_default_file(data_home: Path) -> None:
    with make_client() as client:
        port = tcp_address(client).rpartition(":")[2]
        assert (data_home / f"server-{port}.sqlite3").is_file()
    with make_client(role="client", connect="[::1]:7", tcp_port=9000) as client:
        assert (data_home / "client-__1-7.sqlite3").is_file()
    with make_client(db=":memory:"):
        pass
    assert len(list(data_home.glob("*.sqlite3"))) == 2


def test_older_entries_and_search(client: TestClient) -> None:
    with join(client) as sock:
        sock.sendall(b"".join(b"line %d%s\n" % (i, b" needle" * (i % 10 == 0)) for i in range(100)))
        wait_until(lambda: client.get("/api/messages?q=line 99").json()["messages"])
        name = f"127.0.0.1:{sock.getsockname()[1]}"
    every = client.get("/api/messages?limit=1000").json()["messages"]
    last = every[-1]["id"]
    older = client.get(f"/api/messages?before={last}&limit=3").json()["messages"]
    assert [m["id"] for m in older] == [last - 3, last - 2, last - 1]
    found = client.get("/api/messages?q=NEEDLE&limit=4").json()["messages"]
    assert [m["text"] for m in found] == [
        "line 0 needle",
        "line 10 needle",
        "line 20 needle",
        "line 30 needle",
    ]
    newest = client.get(f"/api/messages?q=needle&before={last}&limit=2").json()["messages"]
    assert [m["text"] for m in newest] == ["line 80 needle", "line 90 needle"]
    by_peer = client.get("/api/messages", params={"peer": name, "direction": "in", "limit": 1000})
    assert len(by_peer.json()["messages"]) == 100
    assert client.get("/api/messages?direction=sideways").status_code == 422
    assert client.get("/api/messages?q=").status_code == 422


def test_export_downloads_every_format(client: TestClient) -> None:
    with join(client) as sock:
        sock.sendall('a, "quoted"\nünï\n'.encode())
        wait_until(lambda: client.get("/api/messages?q=ünï").json()["messages"])
    for fmt, media in [
        ("jsonl", "application/x-ndjson"),
        ("csv", "text/csv"),
        ("txt", "text/plain"),
    ]:
        response = client.get(f"/api/export?format={fmt}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert re.fullmatch(
            rf'attachment; filename="webchat-server-\d{{8}}T\d{{6}}Z\.{fmt}"',
            response.headers["content-disposition"],
        )
        assert "ünï" in response.text
    rows = list(csv.DictReader(io.StringIO(client.get("/api/export?format=csv").text)))
    assert [r["text"] for r in rows if r["type"] == "message"] == ['a, "quoted"', "ünï"]
    lines = client.get("/api/export?format=jsonl&after=1&before=4").text.splitlines()
    assert [json.loads(x)["id"] for x in lines] == [2, 3]
    assert client.get("/api/export?format=xml").status_code == 422


def test_exact_bytes_both_ways_with_hex_sends_and_b64(client: TestClient) -> None:
    with join(client) as sock, client.websocket_connect("/ws") as ws:
        sock.sendall(b"A\x00B\xff\r\n")

        def inbound() -> list[dict[str, Any]]:
            entries = client.get("/api/messages?direction=in").json()["messages"]
            return list(entries)

        (entry,) = wait_until(inbound)
        assert base64.b64decode(entry["b64"]) == b"A\x00B\xff"
        assert entry["text"] == "A\x00B\ufffd"
        sent = client.post("/api/messages", json={"hex": "de ad be ef"})
        assert sent.status_code == 202 and exact_bytes(sent.json()) == b"\xde\xad\xbe\xef"
        assert recv_until(sock, b"\n") == b"\xde\xad\xbe\xef\n"
        ws.send_json({"type": "send", "hex": "48656c6c6f"})
        assert recv_until(sock, b"\n") == b"Hello\n"
        for bad, words in [
            ({"hex": "0g"}, "hex digit"),
            ({}, "exactly one"),
            ({"hex": "1"}, "odd"),
        ]:
            response = client.post("/api/messages", json=bad)
            assert response.status_code == 422 and words in response.json()["detail"]
        jsonl = client.get("/api/export?format=jsonl").text.splitlines()
        kept = [json.loads(x) for x in jsonl if '"message"' in x]
        assert [exact_bytes(m) for m in kept][:2] == [
            b"A\x00B\xff",
            b"\xde\xad\xbe\xef",
        ]


@pytest.mark.parametrize(
    ("framing", "wire_in", "received", "wire_out"),
    [
        ("crlf", b"one\r\ntwo\n", ["one", "two"], b"hi\r\n"),
        ("nul", b"one\x00t\nwo\x00", ["one", "t\nwo"], b"hi\x00"),
        ("len16", b"\x00\x03one\x00\x00", ["one", ""], b"\x00\x02hi"),
        ("len32", b"\x00\x00\x00\x03one", ["one"], b"\x00\x00\x00\x02hi"),
    ],
)
def test_framing_modes_over_real_sockets(
    framing: str, wire_in: bytes, received: list[str], wire_out: bytes
) -> None:
    with make_client(framing=framing) as client, join(client) as sock:
        sock.sendall(wire_in)

        def texts() -> list[str]:
            entries = client.get("/api/messages?direction=in").json()["messages"]
            return [e["text"] for e in entries]

        wait_until(lambda: len(texts()) == len(received))
        assert texts() == received
        assert client.post("/api/messages", json={"text": "hi"}).status_code == 202
        sock.settimeout(5)
        assert sock.recv(100) == wire_out


def test_a_length_over_the_limit_closes_that_peer_with_a_clear_event() -> None:
    with make_client(framing="len16", max_line=100) as client, join(client) as sock:
        sock.sendall(b"\x00\x02ok\x01\x00")  # then a 256-byte length: over 100
        sock.settimeout(5)
        assert sock.recv(10) == b""

        def closed() -> list[dict[str, Any]]:
            entries = client.get("/api/messages").json()["messages"]
            return [e for e in entries if e.get("kind") == "disconnected"]

        assert "protocol error: length prefix says 256 bytes" in wait_until(closed)[0]["detail"]
        texts = [m["text"] for m in client.get("/api/messages?direction=in").json()["messages"]]
        assert texts == ["ok"]
        with join(client):
            big = client.post("/api/messages", json={"text": "x" * 70_000})
            assert big.status_code == 422 and "16-bit" in big.json()["detail"]


def ipv6_or_skip() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")


def test_ipv6_server_names_peers_in_brackets_and_dual_stack_takes_ipv4() -> None:
    ipv6_or_skip()
    with make_client(tcp_host="::1") as client:
        address = tcp_address(client)
        assert address.startswith("[::1]:")
        with join(client) as sock:
            name = f"[::1]:{sock.getsockname()[1]}"
            assert [p["peer"] for p in client.get("/api/status").json()["peers"]] == [name]
            assert client.post("/api/messages", json={"text": "v6", "to": name}).status_code == 202
            assert recv_until(sock, b"\n") == b"v6\n"
    with make_client(tcp_host="::") as client:
        port = tcp_address(client).rpartition(":")[2]
        with dial(f"127.0.0.1:{port}") as v4:
            wait_until(lambda: client.get("/api/status").json()["peers"])
            peers = [p["peer"] for p in client.get("/api/status").json()["peers"]]
            assert peers == [f"127.0.0.1:{v4.getsockname()[1]}"]


def test_ipv6_client_connects_to_a_bracketed_address() -> None:
    ipv6_or_skip()
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen()
        listener.settimeout(10)
        port = listener.getsockname()[1]
        with make_client(role="client", connect=f"[::1]:{port}") as client:
            peer, _ = listener.accept()
            with peer:
                wait_until(lambda: client.get("/api/status").json()["peers"])
                assert client.get("/api/status").json()["tcp"] == f"[::1]:{port}"
                assert client.post("/api/messages", json={"text": "hi v6"}).status_code == 202
                assert recv_until(peer, b"\n") == b"hi v6\n"


def exact_bytes(entry: dict[str, Any]) -> bytes:
    """The rule in docs/protocol.md: `b64` when present, else the text as UTF-8."""
    return base64.b64decode(entry["b64"]) if "b64" in entry else entry["text"].encode()


def test_b64_comes_only_when_the_text_is_not_exactly_the_bytes(client: TestClient) -> None:
    said = [b"hello", b"a\tb\x00", "café".encode(), "\ufffd".encode(), b"caf\xe9", b"\xff"]
    with join(client) as sock:
        sock.sendall(b"".join(s + b"\n" for s in said))
        wait_until(lambda: len(client.get("/api/messages?direction=in").json()["messages"]) == 6)
        got = client.get("/api/messages?direction=in").json()["messages"]
        assert ["b64" in m for m in got] == [False, False, False, False, True, True]
        assert [exact_bytes(m) for m in got] == said


def test_escapes_in_a_send(client: TestClient) -> None:
    with join(client) as sock:
        sent = client.post("/api/messages", json={"text": r"a\tb\x00", "escapes": True})
        assert sent.status_code == 202 and exact_bytes(sent.json()) == b"a\tb\x00"
        assert recv_until(sock, b"\n") == b"a\tb\x00\n"
        bad = client.post("/api/messages", json={"text": r"\q", "escapes": True})
        assert bad.status_code == 422 and "unknown escape" in bad.json()["detail"]


@pytest.mark.parametrize("db", [None, ":memory:"])
def test_delete_clears_the_transcript_and_says_so(db: str | None) -> None:
    with make_client(db=db) as client, join(client) as sock:
        sock.sendall(b"one\ntwo\n")
        wait_until(lambda: len(client.get("/api/messages").json()["messages"]) == 4)
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()
            before = [ws.receive_json()["id"] for _ in range(4)]
            cleared = client.delete("/api/messages")
            assert cleared.status_code == 200 and cleared.json()["removed"] == 4
            event = cleared.json()["event"]
            assert event["kind"] == "cleared" and event["detail"] == (
                "4 entries removed (DELETE /api/messages)"
            )
            assert event["id"] == before[-1] + 1  # ids go on, never reused
            assert ws.receive_json() == event  # every open page learns of it
        assert client.get("/api/messages").json()["messages"] == [event]
        assert client.get("/api/export").text.count("\n") == 1
        with client.websocket_connect("/ws?after=0") as ws:
            ws.receive_json()
            assert ws.receive_json() == event
        sock.sendall(b"three\n")
        wait_until(lambda: len(client.get("/api/messages").json()["messages"]) == 2)
        assert client.get("/api/messages").json()["messages"][1]["id"] == event["id"] + 1


@pytest.mark.parametrize(
    ("ending", "wire"),
    [("framing", b"ab\n"), ("none", b"ab"), ("lf", b"ab\n"), ("crlf", b"ab\r\n")],
)
def test_a_send_chooses_its_line_ending(client: TestClient, ending: str, wire: bytes) -> None:
    with join(client) as sock:
        body = {"text": "ab", "line_ending": ending}
        sent = client.post("/api/messages", json=body)
        assert sent.status_code == 202 and sent.json()["text"] == "ab"
        sock.settimeout(5)
        got = b""
        while len(got) < len(wire):
            got += sock.recv(100)
        assert got == wire
    bad = client.post("/api/messages", json={"text": "x", "line_ending": "cr"})
    assert bad.status_code == 422


def test_connection_endpoints_are_for_the_client_role(client: TestClient) -> None:
    refused = client.post("/api/connection/disconnect")
    assert refused.status_code == 409 and "webchat client" in refused.json()["detail"]
    assert "connection" not in client.get("/api/status").json()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        with make_client(role="client", connect=target) as tcp_client:
            accepted, _ = listener.accept()

            def state() -> str:
                return str(tcp_client.get("/api/status").json()["connection"]["state"])

            wait_until(lambda: state() == "connected")
            answer = tcp_client.post("/api/connection/disconnect")
            assert answer.status_code == 200 and answer.json()["connection"]["target"] == target
            wait_until(lambda: state() == "stopped")
            assert accepted.recv(10) == b""
            assert tcp_client.post("/api/connection/connect").status_code == 200
            listener.accept()[0].close()
            wait_until(lambda: state() in ("connected", "retrying"))
            accepted.close()
