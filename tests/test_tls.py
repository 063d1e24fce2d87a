"""TLS on both TCP roles and on the page, with certificates from a throwaway CA (trustme)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.sync.client import connect as ws_connect

from tests.conftest import Running, dial, free_port, port_open, wait_until
from tests.test_api import make_client, tcp_address


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pems(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    where = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"cert": where / "server.pem", "ca": where / "ca.pem"}
    cert.private_key_and_cert_chain_pem.write_to_path(str(paths["cert"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return {name: str(path) for name, path in paths.items()}


def trusting(pems: dict[str, str]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=pems["ca"])


def events(client: Any, kind: str) -> list[dict[str, Any]]:
    entries = client.get("/api/messages?limit=1000").json()["messages"]
    return [e for e in entries if e.get("kind") == kind]


def test_tls_server_role_talks_tls_and_rejects_plain_tcp(pems: dict[str, str]) -> None:
    with make_client(tcp_tls_cert=pems["cert"]) as client:
        host, _, port = tcp_address(client).rpartition(":")
        with dial(tcp_address(client)) as plain:  # no handshake: plain bytes are not TLS
            plain.sendall(b"hello in clear\n")
            plain.settimeout(5)
            assert plain.recv(100) == b""
        assert "TLS handshake failed" in wait_until(lambda: events(client, "rejected"))[0]["detail"]

        async def speak_tls() -> bytes:
            reader, writer = await asyncio.open_connection(
                host, int(port), ssl=trusting(pems), server_hostname="127.0.0.1"
            )
            writer.write(b"over tls\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return line

        async def both() -> bytes:
            speaking = asyncio.create_task(speak_tls())
            await asyncio.to_thread(
                wait_until, lambda: client.get("/api/messages?q=over tls").json()["messages"]
            )
            assert client.post("/api/messages", json={"text": "tls back"}).status_code == 202
            return await speaking

        assert asyncio.run(both()) == b"tls back\n"


@contextlib.asynccontextmanager
async def tls_listener(pems: dict[str, str]) -> AsyncIterator[tuple[int, asyncio.Queue[bytes]]]:
    """A TLS line server that greets and collects lines; it closes what it opened."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pems["cert"])
    heard: asyncio.Queue[bytes] = asyncio.Queue()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b"welcome\n")
        with contextlib.suppress(OSError):
            while line := await reader.readline():
                await heard.put(line)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1], heard
        for writer in writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@pytest.mark.parametrize(
    ("options", "outcome"),
    [
        ({"tls_ca": "CA"}, "connected"),
        ({"tls": True}, "certificate verify failed"),
        ({"tls_insecure": True}, "connected"),
    ],
    ids=["trusted-ca", "system-cas-refuse", "insecure"],
)
def test_tls_client_role_verifies_the_server(
    pems: dict[str, str], options: dict[str, Any], outcome: str
) -> None:
    options = {k: pems["ca"] if v == "CA" else v for k, v in options.items()}

    async def scenario() -> None:
        async with tls_listener(pems) as (port, heard):
            with make_client(role="client", connect=f"127.0.0.1:{port}", **options) as client:
                if outcome != "connected":
                    failed = await asyncio.to_thread(
                        wait_until, lambda: events(client, "connect_failed")
                    )
                    assert outcome in failed[0]["detail"]
                    return
                await asyncio.to_thread(
                    wait_until, lambda: client.get("/api/messages?q=welcome").json()["messages"]
                )
                assert client.post("/api/messages", json={"text": "hi tls"}).status_code == 202
                assert await asyncio.wait_for(heard.get(), 5) == b"hi tls\n"

    asyncio.run(scenario())


@pytest.fixture
def https_server(pems: dict[str, str]) -> Iterator[Running]:
    running = Running(
        "server", "--tcp-port", "0", "--http-port", "0", "--quiet",
        "--http-tls-cert", pems["cert"], "--tcp-tls-cert", pems["cert"],
    )  # fmt: skip
    yield running
    running.stop()


def test_the_page_and_websocket_over_https(https_server: Running, pems: dict[str, str]) -> None:
    assert https_server.start_line.startswith(
        f"webchat: page at https://127.0.0.1:{https_server.http_port}/"
    )
    assert " with TLS" in https_server.start_line
    base = f"https://127.0.0.1:{https_server.http_port}"
    assert httpx.get(f"{base}/healthz", verify=trusting(pems)).json() == {"status": "ok"}
    with ws_connect(f"wss://127.0.0.1:{https_server.http_port}/ws", ssl=trusting(pems)) as ws:
        assert '"hello"' in str(ws.recv(timeout=5))


@pytest.mark.skipif(not shutil.which("ncat"), reason="ncat is not installed (apt-get install ncat)")
def test_ncat_ssl_talks_to_the_tls_server_role(https_server: Running, pems: dict[str, str]) -> None:
    ncat = subprocess.run(
        ["ncat", "-4", "--ssl", "--ssl-trustfile", pems["ca"], "--ssl-verify", "localhost",
         str(https_server.tcp_port)],
        input=b"from ncat\n", capture_output=True, timeout=20,
    )  # fmt: skip
    assert ncat.returncode == 0, ncat.stderr
    base = f"https://127.0.0.1:{https_server.http_port}"
    found = httpx.get(f"{base}/api/messages?q=from ncat", verify=trusting(pems)).json()
    assert [m["text"] for m in found["messages"]] == ["from ncat"]


def test_a_bad_certificate_file_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    result = subprocess.run(
        [sys.executable, "-m", "webchat", "server", "--tcp-tls-cert", str(bogus)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(bogus) in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def client_pems(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A client certificate from the same CA, and a CA nobody trusts for the stranger."""
    where = tmp_path_factory.mktemp("mtls")
    issued = ca.issue_cert("webchat-client@example.org", common_name="webchat client")
    stranger = trustme.CA().issue_cert("stranger@example.org", common_name="stranger")
    paths = {"cert": where / "client.pem", "stranger": where / "stranger.pem"}
    issued.private_key_and_cert_chain_pem.write_to_path(str(paths["cert"]))
    stranger.private_key_and_cert_chain_pem.write_to_path(str(paths["stranger"]))
    return {name: str(path) for name, path in paths.items()}


def s_client(port: int, pems: dict[str, str], *cert: str) -> subprocess.CompletedProcess[bytes]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is missing: apt-get install openssl")
    return subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", pems["ca"],
         "-quiet", "-no_ign_eof", *cert],
        input=b"hello over mtls\n", capture_output=True, timeout=20,
    )  # fmt: skip


def test_an_mtls_server_refuses_a_peer_without_a_certificate_and_shows_who_connected(
    pems: dict[str, str], client_pems: dict[str, str]
) -> None:
    with make_client(tcp_tls_cert=pems["cert"], tcp_tls_client_ca=pems["ca"]) as client:
        port = int(tcp_address(client).rpartition(":")[2])
        s_client(port, pems)
        refused = wait_until(lambda: events(client, "rejected"))
        assert "TLS handshake failed" in refused[0]["detail"]
        assert "certificate" in refused[0]["detail"]
        stranger = s_client(port, pems, "-cert", client_pems["stranger"])
        assert b"hello" not in stranger.stdout  # refused too (its entry is counted, not shown)
        s_client(port, pems, "-cert", client_pems["cert"])
        (connected,) = wait_until(lambda: events(client, "connected"))
        tls = connected["tls"]
        assert tls["version"] in ("TLSv1.2", "TLSv1.3") and tls["cipher"]
        assert "CN=webchat client" in tls["peer_cert_subject"]
        assert len(tls["peer_cert_sha256"]) == 64
        found = wait_until(lambda: client.get("/api/messages?q=over mtls").json()["messages"])
        assert found[0]["text"] == "hello over mtls"


def test_the_client_role_shows_its_certificate_to_an_openssl_server_that_requires_one(
    pems: dict[str, str], client_pems: dict[str, str]
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is missing: apt-get install openssl")
    port = free_port()
    server = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pems["cert"],
         "-CAfile", pems["ca"], "-Verify", "1", "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: port_open(port))
        options = {"role": "client", "connect": f"127.0.0.1:{port}", "tls_ca": pems["ca"]}
        with make_client(**options, tls_cert=client_pems["cert"]) as client:
            (connected,) = wait_until(lambda: events(client, "connected"))
            assert connected["tls"]["peer_cert_subject"]  # the server's, verified
            status = client.get("/api/status").json()
            assert status["peers"][0]["tls"] == connected["tls"]
            assert client.post("/api/messages", json={"text": "client cert ok"}).status_code == 202
            assert server.stdout is not None
            assert server.stdout.readline() == b"client cert ok\n"
    finally:
        server.kill()
        server.wait(5)
        for pipe in (server.stdin, server.stdout):
            if pipe is not None:
                pipe.close()
