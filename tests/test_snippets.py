"""Saved messages through REST: kept in the transcript file, sent with placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import recv_until
from tests.test_api import join, make_client


def test_snippets_are_saved_sent_and_kept(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite3")
    with make_client(db=db) as client, join(client) as sock:
        made = client.post("/api/snippets", json={"name": "hello", "text": "hi #{{counter}}"})
        assert made.status_code == 201, made.text
        assert made.json() == {"id": 1, "name": "hello", "text": "hi #{{counter}}", "hex": None,
                               "sent": 0}  # fmt: skip
        binary = client.post("/api/snippets", json={"name": "magic", "hex": "de ad be ef"})
        assert binary.json()["id"] == 2
        for expected in (b"hi #1\n", b"hi #2\n"):
            sent = client.post("/api/snippets/1/send")
            assert sent.status_code == 202 and sent.json()["direction"] == "out"
            assert recv_until(sock, b"\n") == expected
        name = f"127.0.0.1:{sock.getsockname()[1]}"
        to_one = client.post("/api/snippets/2/send", json={"to": name})
        assert to_one.status_code == 202 and to_one.json()["peer"] == name
        assert recv_until(sock, b"\n") == b"\xde\xad\xbe\xef\n"
        stamped = client.post("/api/snippets", json={"name": "t", "text": "{{time}} {{peer}}"})
        client.post(f"/api/snippets/{stamped.json()['id']}/send")
        assert re.fullmatch(rb"\d\d:\d\d:\d\d all\n", recv_until(sock, b"\n"))
        renamed = client.patch("/api/snippets/1", json={"name": "greeting"}).json()
        assert renamed["name"] == "greeting" and renamed["text"] == "hi #{{counter}}"
        assert renamed["sent"] == 2
        as_hex = client.patch("/api/snippets/1", json={"hex": "41"}).json()
        assert as_hex["hex"] == "41" and as_hex["text"] is None
        assert client.post("/api/snippets/9/send").status_code == 404
        unknown_peer = client.post("/api/snippets/2/send", json={"to": "1.2.3.4:5"})
        assert unknown_peer.status_code == 404
    for bad, problem in [
        ({"name": "x"}, "either text or hex"),
        ({"name": "x", "text": "a", "hex": "41"}, "either text or hex"),
        ({"name": " ", "text": "a"}, "needs a name"),
        ({"name": "x", "hex": "zz"}, "not a hex digit"),
    ]:
        with make_client(db=db) as again:
            refused = again.post("/api/snippets", json=bad)
            assert refused.status_code == 422 and problem in refused.json()["detail"]
    with make_client(db=db) as again:
        kept = again.get("/api/snippets").json()["snippets"]
        assert [s["name"] for s in kept] == ["greeting", "magic", "t"]
        assert again.delete("/api/snippets/2").status_code == 204
        assert again.delete("/api/snippets/2").status_code == 404
        assert again.post("/api/snippets/1/send").status_code == 409  # nobody connected
