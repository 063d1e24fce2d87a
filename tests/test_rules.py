"""The auto-responder through REST and real peers: rules answer, timers fire, --echo, and a
webchat client stays on Debian's ngircd past its ping timeout."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Running, dial, recv_until, wait_until
from tests.test_api import join, make_client
from tests.test_services import api, entries, irc_server, kinds, texts


def test_rules_through_rest_answer_a_peer_and_are_kept(tmp_path: Path) -> None:
    db = str(tmp_path / "t.sqlite3")
    with make_client(db=db) as client, join(client) as sock:
        made = client.post("/api/rules", json={"match": "^PING (.*)$", "reply": r"PONG \1"})
        assert made.status_code == 201, made.text
        rule = made.json()
        assert rule == {"id": 1, "match": "^PING (.*)$", "every": None, "reply": r"PONG \1",
                        "peer": None, "enabled": True, "hits": 0}  # fmt: skip
        sock.sendall(b"PING :abc\n")
        assert recv_until(sock, b"\n") == b"PONG :abc\n"
        reply = wait_until(lambda: client.get("/api/messages?direction=out").json()["messages"])
        assert reply[0]["text"] == "PONG :abc" and reply[0]["rule"] == 1  # marked automatic
        off = client.patch("/api/rules/1", json={"enabled": False}).json()
        assert off["enabled"] is False and off["hits"] == 1 and off["reply"] == r"PONG \1"
        sock.sendall(b"PING :again\n")
        sock.settimeout(0.3)
        try:
            extra = sock.recv(100)
        except TimeoutError:
            extra = b""
        assert extra == b""
        assert client.put("/api/rules/1", json={"reply": "x"}).status_code == 422
        assert client.patch("/api/rules/9", json={"enabled": True}).status_code == 404
        bad = client.post("/api/rules", json={"match": "(", "reply": "x"})
        assert bad.status_code == 422 and "regular expression" in bad.json()["detail"]
    saved = json.loads(Path(db + ".rules.json").read_text())
    assert [r["match"] for r in saved] == ["^PING (.*)$"]
    with make_client(db=db) as again:
        assert again.get("/api/rules").json()["rules"][0]["enabled"] is False
        assert again.delete("/api/rules/1").status_code == 204
        assert again.get("/api/rules").json() == {"rules": []}
        assert again.delete("/api/rules/1").status_code == 404


def test_a_timer_rule_fires_on_each_connection_after_it_is_made() -> None:
    with make_client() as client:
        timer = {"every": 0.5, "reply": "keepalive {{counter}} to {{peer}}"}
        assert client.post("/api/rules", json=timer).status_code == 201
        with join(client) as sock:
            name = f"127.0.0.1:{sock.getsockname()[1]}"
            first = recv_until(sock, b"\n")
            assert first == f"keepalive 1 to {name}\n".encode()
            assert recv_until(sock, b"\n").startswith(b"keepalive 2 ")
        with join(client) as later:  # a new connection has timers of its own
            assert recv_until(later, b"\n").startswith(b"keepalive ")


def test_echo_is_an_echo_server_in_one_flag() -> None:
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--echo") as running:
        with dial(f"127.0.0.1:{running.tcp_port}") as sock:
            sock.sendall(b"hello echo\nsecond line\n")
            assert recv_until(sock, b"line\n") == b"hello echo\nsecond line\n"
        with api(running) as http:
            (echo,) = http.get("/api/rules").json()["rules"]
            assert echo["id"] == 0 and echo["hits"] == 2


def test_a_pong_rule_keeps_a_client_on_ngircd_past_its_ping_timeout(tmp_path: Path) -> None:
    with irc_server(tmp_path, ping_timeout=3) as port, Running(
        "client", "--connect", f"127.0.0.1:{port}", "--http-port", "0", "--quiet",
        "--framing", "crlf", "--on-connect", "NICK keeper", "--on-connect", "USER k 0 * :k",
    ) as running, api(running) as http:  # fmt: skip
        rule = {"match": "^PING (.*)$", "reply": r"PONG \1"}
        assert http.post("/api/rules", json=rule).status_code == 201
        wait_until(lambda: any(" 001 keeper " in t for t in texts(running)), timeout=10)
        time.sleep(9)  # past 3 s of silence, a PING, and 3 s more for the PONG
        assert any(t.startswith("PING ") for t in texts(running))
        pongs = [e for e in entries(running, direction="out") if e.get("rule") == 1]
        assert pongs and pongs[0]["text"].startswith("PONG ")
        assert "disconnected" not in kinds(running)
