"""POST /api/messages/file: a file, byte for byte, recorded in pieces of at most --max-line."""

from __future__ import annotations

import contextlib
import os
import threading

from fastapi.testclient import TestClient

from tests.test_api import join, make_client


def drain(sock: object, size: int, into: bytearray) -> threading.Thread:
    """Read `size` bytes in a thread, slowly enough that the sender must wait for room."""

    def run() -> None:
        sock.settimeout(10)  # type: ignore[attr-defined]
        while len(into) < size:
            chunk = sock.recv(65536)  # type: ignore[attr-defined]
            if not chunk:
                return
            into.extend(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def outs(client: TestClient) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    after = 0
    while page := client.get(f"/api/messages?direction=out&after={after}&limit=1000").json()[
        "messages"
    ]:
        found += page
        after = int(page[-1]["id"])
    return found


def test_a_raw_body_arrives_byte_for_byte_in_max_line_pieces() -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)  # three times write_limit, and not a whole piece
    with make_client(max_line=65536, framing="len16") as client, join(client) as sock:
        received = bytearray()
        reading = drain(sock, len(data), received)
        answer = client.post(
            "/api/messages/file", content=data, headers={"content-type": "application/octet-stream"}
        )
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["bytes"] == len(data) and body["messages"] == 49 and body["to"] is None
        reading.join(10)
        assert bytes(received) == data  # no length prefix: a file goes out as it is
        pieces = outs(client)
        assert len(pieces) == 49 and pieces[0]["id"] == body["first_id"]
        assert pieces[-1]["id"] == body["last_id"]


def test_a_multipart_upload_goes_to_the_peer_named() -> None:
    with make_client() as client, join(client) as one, join(client) as other:
        name = f"127.0.0.1:{one.getsockname()[1]}"
        answer = client.post(
            f"/api/messages/file?to={name}", files={"file": ("notes.txt", b"line 1\nline 2\n")}
        )
        assert answer.status_code == 202, answer.text
        one.settimeout(5)
        assert one.recv(100) == b"line 1\nline 2\n"
        other.settimeout(0.3)
        with contextlib.suppress(TimeoutError):
            assert other.recv(100) == b""
        assert [m["text"] for m in outs(client)] == ["line 1\nline 2\n"]
        assert outs(client)[0]["peer"] == name


def test_refusals_come_before_the_upload_or_say_what_went_out() -> None:
    with make_client(max_send=100_000) as client:
        octets = {"content-type": "application/octet-stream"}
        none = client.post("/api/messages/file", content=b"x", headers=octets)
        assert none.status_code == 409 and "no TCP client" in none.json()["detail"]
        with join(client):
            unknown = client.post("/api/messages/file?to=1.2.3.4:5", content=b"x", headers=octets)
            assert unknown.status_code == 404
            empty = client.post("/api/messages/file", content=b"", headers=octets)
            assert empty.status_code == 422 and "empty" in empty.json()["detail"]
            nameless = client.post("/api/messages/file", files={"other": ("a", b"b")})
            assert nameless.status_code == 422 and "`file`" in nameless.json()["detail"]
            big = client.post("/api/messages/file", content=b"x" * 300_000, headers=octets)
            assert big.status_code == 413  # by its Content-Length, before it is read
            over = client.post("/api/messages/file", content=b"y" * 150_000, headers=octets)
            assert over.status_code == 413  # counted as it streams
            assert over.json()["detail"] == (
                "the file is over --max-send (100000 bytes); its first 0 bytes were sent"
            )
            assert outs(client) == []
        json_body = client.post("/api/messages", json={"text": "x" * (1024 * 1024 + 1)})
        assert json_body.status_code in (413, 422)  # the JSON limit stays 1 MiB
