"""`/ws` through TestClient (lifespan on): hello, replay, live, sends, errors, batches."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.conftest import recv_until, wait_until
from tests.test_api import client, join, make_client, tcp_address

__all__ = ["client"]


def test_ws_hello_replay_then_live(client: TestClient) -> None:
    with join(client) as sock:
        sock.sendall(b"before\n")
        wait_until(
            lambda: any(
                m.get("text") == "before" for m in client.get("/api/messages").json()["messages"]
            )
        )
        with client.websocket_connect("/ws") as ws:
            hello = ws.receive_json()
            assert hello["type"] == "hello" and hello["role"] == "server"
            assert hello["tcp"] == tcp_address(client) and hello["framing"] == "line"
            assert hello["peers"] == [f"127.0.0.1:{sock.getsockname()[1]}"]
            assert isinstance(hello["version"], str)
            replay = [ws.receive_json() for _ in range(3)]
            assert [e.get("kind", e.get("text")) for e in replay] == [
                "listening",
                "connected",
                "before",
            ]
            sock.sendall("live \xe9\xff\n".encode("latin-1"))
            live = ws.receive_json()
            assert live["type"] == "message" and live["direction"] == "in"
            assert live["text"] == "live \ufffd\ufffd" and live["id"] == replay[-1]["id"] + 1
            assert live["ts"].endswith("Z")


def test_ws_send_is_seen_by_every_tab_and_reaches_tcp(client: TestClient) -> None:
    with (
        join(client) as sock,
        client.websocket_connect("/ws") as one,
        client.websocket_connect("/ws") as two,
    ):
        for ws in (one, two):
            assert ws.receive_json()["type"] == "hello"
            for _ in range(2):
                ws.receive_json()
        one.send_json({"type": "send", "text": "from the page"})
        assert recv_until(sock, b"\n") == b"from the page\n"
        for ws in (one, two):
            out = ws.receive_json()
            assert (
                out["direction"] == "out" and out["text"] == "from the page" and out["peer"] is None
            )


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ("not json", "JSON"),
        ("[1]", "objects"),
        ('{"type":"shout"}', "unknown frame type"),
        ('{"type":"send"}', "text"),
        ('{"type":"send","text":"x","to":5}', "peer name"),
        ('{"type":"send","text":"x","to":"10.9.9.9:1"}', "no peer named"),
        ('{"type":"send","hex":"abc"}', "odd count"),
        ('{"type":"send","hex":"zz"}', "not a hex digit"),
        ('{"type":"send","text":"x","hex":"00"}', "exactly one"),
    ],
)
def test_ws_bad_frames_get_an_error_and_the_socket_stays_open(
    client: TestClient, frame: str, words: str
) -> None:
    with join(client) as sock, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.receive_json()
        ws.receive_json()
        ws.send_text(frame)
        error = ws.receive_json()
        assert error["type"] == "error" and words in error["detail"]
        ws.send_json({"type": "send", "text": "still here"})
        assert recv_until(sock, b"\n") == b"still here\n"
        assert ws.receive_json()["text"] == "still here"


def test_ws_send_without_peer_is_an_error_frame(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.receive_json()
        ws.send_json({"type": "send", "text": "anyone?"})
        error = ws.receive_json()
        assert error["type"] == "error" and "no TCP client" in error["detail"]


def test_ws_after_replays_exactly_the_rest(client: TestClient) -> None:
    with join(client) as sock:
        sock.sendall(b"a\nb\nc\n")
        wait_until(lambda: len(client.get("/api/messages").json()["messages"]) == 5)
        with client.websocket_connect("/ws?after=3") as ws:
            ws.receive_json()
            assert [ws.receive_json()["id"] for _ in range(2)] == [4, 5]
            sock.sendall(b"d\n")
            assert ws.receive_json() == client.get("/api/messages?after=5").json()["messages"][0]


def test_ws_after_from_another_transcript_replays_from_the_start(client: TestClient) -> None:
    with join(client) as sock:
        sock.sendall(b"a\nb\n")
        wait_until(lambda: len(client.get("/api/messages").json()["messages"]) == 4)
        with client.websocket_connect("/ws?after=3") as ws:
            epoch = ws.receive_json()["epoch"]
            assert isinstance(epoch, str) and epoch and ws.receive_json()["id"] == 4
        with client.websocket_connect(f"/ws?after=3&epoch={epoch}") as ws:
            assert ws.receive_json()["epoch"] == epoch and ws.receive_json()["id"] == 4
        with client.websocket_connect("/ws?after=3&epoch=an-older-run") as ws:
            ws.receive_json()
            assert [ws.receive_json()["id"] for _ in range(4)] == [1, 2, 3, 4]


@pytest.mark.parametrize("after", ["abc", "²", "①", "-1"])
def test_ws_bad_after_is_refused_with_a_reason(client: TestClient, after: str) -> None:
    with client.websocket_connect(f"/ws?after={after}") as ws:
        assert "after" in ws.receive_json()["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_ws_without_after_replays_only_the_newest() -> None:
    with make_client(replay=2) as client, join(client) as sock:
        sock.sendall(b"1\n2\n3\n")
        wait_until(lambda: len(client.get("/api/messages").json()["messages"]) == 5)
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()
            assert [ws.receive_json()["text"] for _ in range(2)] == ["2", "3"]


def test_ws_ping_gets_a_pong_with_the_same_id(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"type": "ping", "id": 7})
        frame = ws.receive_json()
        while frame["type"] != "pong":
            frame = ws.receive_json()
        assert frame == {"type": "pong", "id": 7}


def test_ws_batch_mode_sends_batches_of_encoded_frames(client: TestClient) -> None:
    with join(client) as sock:
        sock.sendall(b"".join(b"b%d\n" % i for i in range(50)))
        wait_until(lambda: client.get("/api/messages?q=b49").json()["messages"])
    with client.websocket_connect("/ws?batch=1&after=0") as ws:
        assert ws.receive_json()["type"] == "hello"
        first = ws.receive_json()
        assert first["type"] == "batch"
        texts = [f["text"] for f in first["frames"] if f["type"] == "message"]
        assert texts == [f"b{i}" for i in range(50)]
        ws.send_json({"type": "ping", "id": "x"})
        batch = ws.receive_json()
        while {"type": "pong", "id": "x"} not in batch["frames"]:  # after any late event
            batch = ws.receive_json()
        assert batch["type"] == "batch"
    with client.websocket_connect("/ws?batch=yes") as ws:
        assert "batch must be 0" in ws.receive_json()["detail"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def newest_id(client: TestClient) -> int:
    return int(client.get("/api/messages?before=999999&limit=1").json()["messages"][-1]["id"])


def test_a_send_with_an_id_is_answered_sent_or_error_with_that_id(client: TestClient) -> None:
    with client.websocket_connect(f"/ws?after={newest_id(client)}") as ws:
        ws.receive_json()
        ws.send_json({"type": "send", "text": "nobody there", "id": "a1"})
        refused = ws.receive_json()
        assert refused == {"type": "error", "detail": refused["detail"], "id": "a1"}
        with join(client):
            wait_until(lambda: client.get("/api/status").json()["peers"])
            ws.send_json({"type": "send", "text": "hi", "id": 7})
            frames = [ws.receive_json() for _ in range(3)]  # connected, sent and the out entry
            sent = next(f for f in frames if f["type"] == "sent")
            out = next(f for f in frames if f.get("direction") == "out")
            assert sent == {"type": "sent", "id": 7, "entry_id": out["id"]}


def test_status_frames_only_for_readers_that_ask(client: TestClient) -> None:
    with client.websocket_connect(f"/ws?status=1&after={newest_id(client)}") as ws:
        assert ws.receive_json()["type"] == "hello"
        status = ws.receive_json()
        assert status["type"] == "status" and status["peers"] == [] and status["peer_count"] == 0
        with join(client) as sock:
            frames = [ws.receive_json() for _ in range(2)]  # the connected entry, a new status
            roster = next(f for f in frames if f["type"] == "status")
            (peer,) = roster["peers"]
            assert peer["peer"] == f"127.0.0.1:{sock.getsockname()[1]}"
            assert {"last_activity", "pending", "bytes_in"} <= set(peer)
    with client.websocket_connect("/ws?status=2") as ws:
        assert "status must be 0" in ws.receive_json()["detail"]
