"""--chat: names, /nick, announcements and escaping, sans-I/O and between real sockets."""

from __future__ import annotations

import asyncio
import socket

from tests.conftest import Running, dial, recv_until, wait_until
from tests.test_services import api, entries
from webchat.room.chat import Names, Said
from webchat.room.claims import LocalClaims


def test_names_are_given_changed_and_kept_unique() -> None:
    names = Names()
    claims = LocalClaims(names)

    def claim(peer: str, name: str | None) -> str | None:
        return asyncio.run(claims.claim(peer, name))

    for peer in ("a:1", "b:2"):
        names.call(peer, str(claim(peer, None)))
    assert names.of("a:1") == "user1" and names.of("b:2") == "user2"
    assert names.hear("a:1", "hi all") == Said(relay="<user1> hi all")
    assert names.hear("a:1", "/nick ann") == Said(rename="ann")
    names.call("a:1", "ann")
    assert names.hear("b:2", "/nick ANN") == Said(rename="ANN")
    assert claim("b:2", "ANN") is None and claim("a:1", "ANN") == "ANN"  # a peer may recase
    assert "cannot be a name" in str(names.hear("b:2", "/nick a b").reply)
    assert names.hear("b:2", "/nick").reply == "* usage: /nick NAME"
    assert names.hear("b:2", "/nickname").reply == "* usage: /nick NAME"
    assert names.leave("a:1") == "ann"
    assert claim("b:2", "ann") == "ann" and claim("c:3", None) == "user3"


def line(sock: socket.socket) -> bytes:
    return recv_until(sock, b"\n")


def test_three_nc_peers_and_a_page_user_chat_by_name() -> None:
    with Running("server", "--tcp-port", "0", "--http-port", "0", "--quiet", "--chat") as running:
        assert "(chat room)" in running.start_line
        address = f"127.0.0.1:{running.tcp_port}"
        with dial(address) as one, dial(address) as two, dial(address) as three:
            assert line(one) == b"* welcome, you are user1; /nick NAME changes it\n"
            assert line(one) == b"* user2 joined\n"
            assert line(two).startswith(b"* welcome, you are user2")
            assert line(one) == b"* user3 joined\n" and line(two) == b"* user3 joined\n"
            assert line(three).startswith(b"* welcome, you are user3")
            one.sendall(b"/nick ann\n")
            assert line(one) == b"* you are now ann\n"
            assert line(two) == b"* user1 is now ann\n" and line(three) == b"* user1 is now ann\n"
            one.sendall(b"hello \x1b[2Jroom\n")  # an escape sequence must not reach a terminal
            assert line(two) == b"<ann> hello \\x1b[2Jroom\n"
            assert line(three) == b"<ann> hello \\x1b[2Jroom\n"
            with api(running) as http:
                said = http.post("/api/messages", json={"text": "hi from the page", "name": "bo"})
                assert said.status_code == 202 and said.json()["name"] == "bo"
                assert line(one) == b"<bo> hi from the page\n"
                status = http.get("/api/status").json()
                assert sorted(p["name"] for p in status["peers"]) == ["ann", "user2", "user3"]
                bad = http.post("/api/messages", json={"text": "x", "name": "no spaces"})
                assert bad.status_code == 422
            two.close()
            assert line(one) == b"* user2 left\n"
        heard = [e for e in entries(running, direction="in") if e["text"].startswith("hello")]
        assert heard[0]["name"] == "ann"  # the transcript says who spoke
        wait_until(lambda: any(e.get("kind") == "chat" for e in entries(running)))
        events = [e["detail"] for e in entries(running) if e.get("kind") == "chat"]
        assert events[:4] == ["user1 joined", "user2 joined", "user3 joined", "user1 is now ann"]
