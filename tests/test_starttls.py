"""STARTTLS: the preambles without sockets, then against aiosmtpd, an IMAP fixture and
an upgrade on request."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller

from tests.conftest import Running, free_port, wait_until
from tests.test_api import make_client
from tests.test_services import api, entries, kinds, texts
from tests.test_tls import events
from webchat.starttls import Preamble, Step


def test_smtp_preamble_greets_asks_and_upgrades() -> None:
    smtp = Preamble("smtp", "mail.example.org")
    assert smtp.first == Step()
    assert smtp.feed(b"220 mail.example.org ESMTP\r\n") == [Step(b"EHLO webchat\r\n")]
    assert smtp.feed(b"250-mail.example.org\r\n250-STARTTLS\r\n250 ") == [Step(), Step()]
    assert smtp.feed(b"SIZE 100\r\n") == [Step(b"STARTTLS\r\n")]
    assert smtp.feed(b"220 go ahead\r\n") == [Step(upgrade=True)]


def test_smtp_without_starttls_fails_with_the_reason() -> None:
    smtp = Preamble("smtp", "h")
    smtp.feed(b"220 hi\r\n")
    (step,) = smtp.feed(b"250 only this\r\n")
    assert step.failure == "the server does not offer STARTTLS in its EHLO reply"


@pytest.mark.parametrize(
    ("protocol", "said", "first", "answer"),
    [
        ("imap", b"* OK ready\r\n", b"a1 STARTTLS\r\n", b"* note\r\na1 OK begin\r\n"),
        ("pop3", b"+OK ready\r\n", b"STLS\r\n", b"+OK go\r\n"),
        ("irc", b":irc NOTICE * :hello\r\n", b"", b":irc 670 * :STARTTLS ok\r\n"),
    ],
)
def test_line_protocols_upgrade_on_their_answer(
    protocol: Any, said: bytes, first: bytes, answer: bytes
) -> None:
    preamble = Preamble(protocol, "h")
    steps = preamble.feed(said)
    if protocol == "irc":
        assert preamble.first == Step(b"STARTTLS\r\n")
    else:
        assert steps == [Step(first)]
    assert preamble.feed(answer)[-1] == Step(upgrade=True)


def test_refusals_say_what_the_server_said() -> None:
    imap = Preamble("imap", "h")
    imap.feed(b"* OK\r\n")
    assert imap.feed(b"a1 NO not now\r\n")[-1].failure == "STARTTLS was refused: a1 NO not now"
    irc = Preamble("irc", "h")
    assert irc.feed(b":s 691 * :no tls\r\n")[-1].failure == "STARTTLS was refused: :s 691 * :no tls"


def test_xmpp_reads_features_without_lines() -> None:
    xmpp = Preamble("xmpp", "chat.example.org")
    assert b"to='chat.example.org'" in xmpp.first.send
    assert xmpp.feed(b"<stream:stream><stream:features><starttls xmlns='x'/>") == [Step()]
    (ask,) = xmpp.feed(b"</stream:features>")
    assert ask.send == b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    assert xmpp.feed(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") == [Step(upgrade=True)]


def test_a_server_that_never_agrees_is_cut_off() -> None:
    pop3 = Preamble("pop3", "h")
    (step,) = pop3.feed(b"x" * 70_000)
    assert step.failure is not None and "65536" in step.failure


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ca = trustme.CA()
    where = tmp_path_factory.mktemp("starttls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    return {"ca": str(where / "ca.pem"), "context": context}


class Handler:
    def __init__(self) -> None:
        self.senders: list[str] = []

    async def handle_MAIL(  # aiosmtpd calls its hooks by these names
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.senders.append(address)
        envelope.mail_from = address
        return "250 OK sender accepted"


def test_smtp_starttls_against_aiosmtpd(certs: dict[str, Any]) -> None:
    handler = Handler()
    port = free_port()
    smtpd = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=certs["context"],
        require_starttls=True,
    )
    smtpd.start()
    try:
        with Running(
            "client", "--connect", f"127.0.0.1:{port}", "--http-port", "0", "--quiet",
            "--framing", "crlf", "--starttls", "smtp", "--tls-ca", certs["ca"],
            "--on-connect", "EHLO webchat",
        ) as running, api(running) as http:  # fmt: skip
            assert "(STARTTLS smtp)" in running.start_line
            wait_until(lambda: "tls" in kinds(running), timeout=15)
            (tls,) = [e for e in entries(running) if e.get("kind") == "tls"]
            assert tls["detail"].startswith("STARTTLS (smtp): TLSv1")
            assert tls["tls"]["peer_cert_subject"] and tls["tls"]["cipher"]
            wait_until(lambda: texts(running).count("250 HELP") == 2)  # EHLO before and after
            sent = http.post("/api/messages", json={"text": "MAIL FROM:<ann@example.org>"})
            assert sent.status_code == 202
            wait_until(lambda: "250 OK sender accepted" in texts(running))
            assert handler.senders == ["ann@example.org"]
            said = texts(running, "out")
            assert said[:3] == ["EHLO webchat", "STARTTLS", "EHLO webchat"]
            talk = [e["text"] for e in entries(running) if e["type"] == "message"]
            assert talk[1:3] == ["EHLO webchat", "250-localhost"]  # each after its cue
            assert talk[0].startswith("220 ") and talk.index("STARTTLS") > talk.index("250 HELP")
            status = http.get("/api/status").json()
            assert status["connection"]["starttls"] == "smtp"
            assert status["peers"][0]["tls"] == tls["tls"]
    finally:
        smtpd.stop()


@contextlib.contextmanager
def serving(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]],
) -> Iterator[int]:
    """An asyncio server in a thread of its own, on a free loopback port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await server.serve_forever()

    task_box: list[asyncio.Task[None]] = []

    def run() -> None:
        task_box.append(loop.create_task(main()))
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task_box[0])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(task_box[0].cancel)
        thread.join(5)
        loop.close()


def upgrading_server(context: ssl.SSLContext, greeting: bytes, ask: bytes, agree: bytes) -> Any:
    """A line server that greets, agrees to `ask` with `agree`, then speaks TLS and echoes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            writer.write(greeting)
            while (line := await reader.readline()) and line.rstrip(b"\r\n") != ask:
                writer.write(b"BAD " + line)
            writer.write(agree)
            await writer.drain()
            await writer.start_tls(context)
            while line := await reader.readline():
                writer.write(b"echo: " + line)
                await writer.drain()
        writer.close()

    return handle


def test_imap_starttls_against_a_fixture(certs: dict[str, Any]) -> None:
    handle = upgrading_server(
        certs["context"], b"* OK IMAP4rev1 ready\r\n", b"a1 STARTTLS", b"a1 OK Begin TLS\r\n"
    )
    with serving(handle) as port, make_client(
        role="client", connect=f"127.0.0.1:{port}", starttls="imap", tls_ca=certs["ca"],
        framing="crlf",
    ) as client:  # fmt: skip
        wait_until(lambda: events(client, "tls"))
        assert client.post("/api/messages", json={"text": "a2 NOOP"}).status_code == 202
        wait_until(lambda: client.get("/api/messages?q=echo: a2 NOOP").json()["messages"])


def test_plain_starttls_upgrades_when_asked(certs: dict[str, Any]) -> None:
    handle = upgrading_server(certs["context"], b"hello\n", b"STARTTLS", b"go ahead\n")
    with (
        serving(handle) as port,
        make_client(
            role="client", connect=f"127.0.0.1:{port}", starttls="plain", tls_ca=certs["ca"]
        ) as client,
    ):
        wait_until(lambda: client.get("/api/messages?q=hello").json()["messages"])
        assert client.post("/api/messages", json={"text": "STARTTLS"}).status_code == 202
        wait_until(lambda: client.get("/api/messages?q=go ahead").json()["messages"])
        upgraded = client.post("/api/connection/starttls")
        assert upgraded.status_code == 200, upgraded.text
        assert upgraded.json()["tls"]["version"].startswith("TLSv1")
        again = client.post("/api/connection/starttls")
        assert again.status_code == 409 and "TLS already" in again.json()["detail"]
        assert client.post("/api/messages", json={"text": "secret"}).status_code == 202
        wait_until(lambda: client.get("/api/messages?q=echo: secret").json()["messages"])


def test_starttls_on_request_is_refused_where_it_cannot_be() -> None:
    with make_client() as server_role:
        answer = server_role.post("/api/connection/starttls")
        assert answer.status_code == 409 and "webchat client" in answer.json()["detail"]
