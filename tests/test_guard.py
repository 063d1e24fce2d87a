"""The guard (token, Origin, body size, headers) and TCP peer rules, via TestClient and sockets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from tests.conftest import dial, wait_until
from tests.test_api import client, make_client, tcp_address
from webchat.web.guard import PAGE_CSP

__all__ = ["client"]
TOKEN = "correct-horse-battery"
GUARDED = ["/", "/api/status", "/api/messages", "/api/export", "/docs", "/openapi.json"]


@pytest.fixture
def guarded() -> Iterator[TestClient]:
    with make_client(token=TOKEN) as client:
        yield client


def test_every_guarded_route_needs_the_token(guarded: TestClient) -> None:
    for path in GUARDED:
        response = guarded.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert (
            "the --token (or WEBCHAT_TOKEN) webchat was started with" in response.json()["detail"]
        )
        assert guarded.get(path, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        ok = guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, path
    assert guarded.post("/api/messages", json={"text": "x"}).status_code == 401
    assert guarded.delete("/api/messages").status_code == 401
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/static/main.js").status_code == 200


@pytest.mark.parametrize(
    "host",
    ["localhost:8000", "127.0.0.1:8000", "127.9.9.9", "[::1]:8000", "app.localhost", "10.1.2.3"],
)
def test_loopback_names_and_any_address_are_served(host: str) -> None:
    with make_client(allow_host=[]) as client:
        assert client.get("/api/status", headers={"Host": host}).status_code == 200


def test_a_rebound_name_is_refused_on_every_route_without_a_token() -> None:
    """DNS rebinding: the attacker's name now points at us, and its page sends that name
    as Host and as Origin, so the Origin check alone lets it in."""
    client = make_client(allow_host=[])
    evil = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    for path in [*GUARDED, "/static/main.js", "/healthz"]:
        refused = client.get(path, headers=evil)
        assert refused.status_code == 403, path
        assert "--allow-host evil.example" in refused.json()["detail"]
        assert refused.headers["x-content-type-options"] == "nosniff"
    assert client.post("/api/messages", json={"text": "x"}, headers=evil).status_code == 403
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect("/ws", headers=evil),
    ):
        pass
    assert denied.value.status_code == 403


def test_allow_host_names_another_way_in_and_a_token_makes_any_host_fine() -> None:
    with make_client(allow_host=["webchat.lan"]) as client:
        assert client.get("/api/status", headers={"Host": "WebChat.lan:8000"}).status_code == 200
        assert client.get("/api/status", headers={"Host": "other.lan"}).status_code == 403
    with make_client(http_host="box.example") as client:
        assert client.get("/api/status", headers={"Host": "box.example:8000"}).status_code == 200
    with make_client(token=TOKEN) as client:
        bearer = {"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/status", headers=bearer).status_code == 200


def test_the_page_with_token_sets_a_strict_http_only_cookie(guarded: TestClient) -> None:
    page = guarded.get(f"/?token={TOKEN}")
    assert page.status_code == 200
    cookie = page.headers["set-cookie"]
    assert f"={TOKEN};" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert guarded.get("/api/status").status_code == 200  # the cookie alone now
    with guarded.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
    guarded.cookies.clear()
    assert guarded.get("/?token=nope").status_code == 401


def test_the_websocket_is_refused_at_the_handshake_without_the_token(guarded: TestClient) -> None:
    with pytest.raises(WebSocketDenialResponse) as refused, guarded.websocket_connect("/ws"):
        pass
    assert refused.value.status_code == 401
    with guarded.websocket_connect(f"/ws?token={TOKEN}") as ws:
        assert ws.receive_json()["type"] == "hello"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with guarded.websocket_connect("/ws", headers=headers) as ws:
        assert ws.receive_json()["type"] == "hello"


def test_a_foreign_origin_cannot_open_the_websocket() -> None:
    with make_client(allow_origin=["https://proxy.example"]) as client:
        evil = {"Origin": "http://evil.example"}
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            client.websocket_connect("/ws", headers=evil),
        ):
            pass
        assert refused.value.status_code == 403
        other_port = {"Origin": "http://testserver:8001"}
        with (
            pytest.raises(WebSocketDenialResponse),
            client.websocket_connect("/ws", headers=other_port),
        ):
            pass
        for origin in ("http://testserver", "https://proxy.example/", None):
            headers = {"Origin": origin} if origin else {}
            with client.websocket_connect("/ws", headers=headers) as ws:
                assert ws.receive_json()["type"] == "hello"


def test_security_headers_and_a_strict_csp_on_html(guarded: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    page = guarded.get("/", headers=auth)
    assert page.headers["content-security-policy"] == PAGE_CSP
    csp = page.headers["content-security-policy"]
    for part in ("default-src 'self'", "script-src 'self'", "connect-src 'self'"):
        assert part in csp
    assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
    docs = guarded.get("/docs", headers=auth)
    docs_csp = docs.headers["content-security-policy"]
    assert "unsafe-inline" not in docs_csp and "'sha256-" in docs_csp
    assert "http" not in docs_csp and "//" not in docs.text.replace("http://www.w3.org", "")
    for response in (page, guarded.get("/api/status", headers=auth), guarded.get("/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_swagger_ui_is_served_from_webchat_itself(client: TestClient) -> None:
    """No CDN: /docs works offline, and no third party runs script beside the token cookie."""
    docs = client.get("/docs").text
    for asset in re.findall(r'(?:src|href)="(/static/swagger/[^"]+)"', docs):
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 10, asset
    assert "swagger-ui-bundle.js" in docs and "cdn" not in docs


def test_a_500_carries_the_security_headers_too(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    app = make_client().app
    with TestClient(app, raise_server_exceptions=False) as client:
        monkeypatch.setattr(app.state.runtime.hub.store, "read", broken)  # type: ignore[attr-defined]
        response = client.get("/api/messages")
    assert response.status_code == 500 and "internal error" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_oversized_bodies_are_413_and_long_text_422() -> None:
    with make_client() as client, dial(tcp_address(client)):
        wait_until(lambda: client.get("/api/status").json()["peers"])
        huge = json.dumps({"text": "x" * (1024 * 1024 + 10)})
        response = client.post(
            "/api/messages", content=huge, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413 and "1048576" in response.json()["detail"]

        def chunks() -> Iterator[bytes]:
            yield huge.encode()

        chunked = client.post(
            "/api/messages", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        wide = json.dumps({"text": "é" * 600_000})  # under 1 MiB of characters, over in bytes
        assert client.post("/api/messages", content=wide).status_code == 413
    with make_client(max_text=10) as client:
        assert client.post("/api/messages", json={"text": "x" * 11}).status_code == 422


def test_a_denied_peer_is_closed_at_once_and_recorded() -> None:
    with make_client(deny=["127.0.0.0/8"]) as client:
        with dial(tcp_address(client)) as sock:
            assert sock.recv(10) == b""  # closed (reset or FIN) before any byte
            name = f"127.0.0.1:{sock.getsockname()[1]}"

        def rejected() -> list[dict[str, str]]:
            entries = client.get("/api/messages").json()["messages"]
            return [e for e in entries if e.get("kind") == "rejected" and e["peer"] == name]

        assert "--deny" in wait_until(rejected)[0]["detail"]
        assert client.get("/api/status").json()["peers"] == []


def test_idle_peers_are_closed_with_a_reason() -> None:
    with make_client(idle_timeout=0.3) as client, dial(tcp_address(client)) as sock:
        sock.sendall(b"hi\n")
        sock.settimeout(5)
        assert sock.recv(10) == b""

        def gone() -> list[dict[str, str]]:
            entries = client.get("/api/messages").json()["messages"]
            return [e for e in entries if e.get("kind") == "disconnected"]

        assert "idle" in wait_until(gone)[0]["detail"]


VIEW = "view-only-token-5678"


def test_a_view_token_reads_everything_and_is_refused_on_every_write_path() -> None:
    with make_client(token=TOKEN, view_token=VIEW) as app:
        status = app.get("/api/status", headers=bearer(TOKEN)).json()
        with dial(status["tcp"]) as peer:
            wait_until(lambda: app.get("/api/status", headers=bearer(TOKEN)).json()["peers"])
            peer.sendall(b"visible to viewers\n")

            def seen() -> list[object]:
                found: list[object] = app.get(
                    "/api/messages?q=visible", headers=bearer(VIEW)
                ).json()["messages"]
                return found

            assert wait_until(seen)
            for path in ("/api/status", "/api/export?format=txt", "/healthz"):
                assert app.get(path, headers=bearer(VIEW)).status_code == 200
            page = app.get(f"/?token={VIEW}")
            assert page.status_code == 200 and "view only" in page.text
            assert '<form id="send-form" autocomplete="off" hidden>' in page.text
            cookie = page.headers["set-cookie"]
            assert VIEW in cookie and TOKEN not in cookie  # the link's own token, never more
            writes = [
                ("POST", "/api/messages", {"json": {"text": "no"}}),
                ("POST", "/api/messages/file", {"content": b"no"}),
                ("DELETE", "/api/messages", {}),
                ("POST", "/api/connection/connect", {}),
                ("POST", "/api/connection/starttls", {}),
                ("POST", "/api/rules", {"json": {"match": "x", "reply": "y"}}),
                ("PATCH", "/api/rules/1", {"json": {"enabled": False}}),
                ("DELETE", "/api/rules/1", {}),
                ("POST", "/api/snippets", {"json": {"name": "n", "text": "t"}}),
                ("POST", "/api/snippets/1/send", {}),
                ("PUT", "/api/snippets/1", {"json": {"name": "n", "text": "t"}}),
            ]
            for method, path, body in writes:
                refused = app.request(method, path, headers=bearer(VIEW), **body)  # type: ignore[arg-type]
                assert refused.status_code == 403, (method, path)
                assert "view-only link" in refused.json()["detail"]
            with app.websocket_connect(f"/ws?token={VIEW}") as ws:
                assert json.loads(ws.receive_text())["type"] == "hello"
                ws.send_text(json.dumps({"type": "send", "text": "no", "id": "v1"}))
                while (frame := json.loads(ws.receive_text()))["type"] != "error":
                    pass
                assert frame["id"] == "v1" and "view-only link" in frame["detail"]
            peer.settimeout(0.3)
            with pytest.raises(TimeoutError):
                peer.recv(10)  # nothing a viewer tried reached the peer
            assert (
                app.post("/api/messages", json={"text": "ok"}, headers=bearer(TOKEN)).status_code
                == 202
            )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
