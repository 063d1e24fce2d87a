"""Sans-I/O STARTTLS preambles: the plaintext each protocol needs before its TLS handshake.

Each dialogue is a generator, as h11 drives its state machine by events: it
yields a `Step` (bytes to send, then "upgrade now" or a failure) and is sent
what the server said, a line at a time (XMPP, which has no lines, gets the
bytes as they came). The client role writes the bytes, feeds the replies, and
runs the handshake when told; nothing here touches a socket.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass

from webchat.types import StartTlsName

MAX_PREAMBLE = 64 * 1024
"""Bytes a server may say before it agrees to TLS; past it, the upgrade fails."""


@dataclass(frozen=True)
class Step:
    send: bytes = b""
    upgrade: bool = False
    failure: str | None = None


Dialogue = Generator[Step, bytes, None]


def _reply(first: Step) -> Generator[Step, bytes, tuple[str, list[bytes]]]:
    """An SMTP reply: `250-...` lines until `250 ...`; its code and its lines."""
    lines = [(yield first)]
    while len(lines[-1]) >= 4 and lines[-1][3:4] == b"-":
        lines.append((yield Step()))
    return lines[-1][:3].decode("ascii", "replace"), lines


def _said(lines: list[bytes]) -> str:
    return lines[-1].decode("utf-8", "replace")


def smtp(host: str) -> Dialogue:
    code, lines = yield from _reply(Step())
    if code != "220":
        yield Step(failure=f"the server did not greet with 220: {_said(lines)}")
        return
    code, lines = yield from _reply(Step(b"EHLO webchat\r\n"))
    if code != "250":
        yield Step(failure=f"EHLO was refused: {_said(lines)}")
        return
    if not any(line[4:].upper().startswith(b"STARTTLS") for line in lines):
        yield Step(failure="the server does not offer STARTTLS in its EHLO reply")
        return
    code, lines = yield from _reply(Step(b"STARTTLS\r\n"))
    if code != "220":
        yield Step(failure=f"STARTTLS was refused: {_said(lines)}")
        return
    yield Step(upgrade=True)


def imap(host: str) -> Dialogue:
    greeting = yield Step()
    if not greeting.upper().startswith(b"* OK"):
        yield Step(failure=f"the server did not greet with * OK: {_said([greeting])}")
        return
    line = yield Step(b"a1 STARTTLS\r\n")
    while not line.startswith(b"a1 "):  # untagged lines come first
        line = yield Step()
    if line[3:].upper().startswith(b"OK"):
        yield Step(upgrade=True)
    else:
        yield Step(failure=f"STARTTLS was refused: {_said([line])}")


def pop3(host: str) -> Dialogue:
    greeting = yield Step()
    if not greeting.startswith(b"+OK"):
        yield Step(failure=f"the server did not greet with +OK: {_said([greeting])}")
        return
    line = yield Step(b"STLS\r\n")
    if line.startswith(b"+OK"):
        yield Step(upgrade=True)
    else:
        yield Step(failure=f"STLS was refused: {_said([line])}")


_IRC_NUMERIC = re.compile(rb"^(?::\S+ )?(\d{3}) ")


def irc(host: str) -> Dialogue:
    """IRCv3 STARTTLS: 670 goes ahead, 691 refuses; notices before it are passed over."""
    line = yield Step(b"STARTTLS\r\n")
    while True:
        numeric = _IRC_NUMERIC.match(line)
        code = numeric.group(1) if numeric else b""
        if code == b"670":
            yield Step(upgrade=True)
            return
        if code in (b"691", b"421", b"451") or line.startswith(b"ERROR"):
            yield Step(failure=f"STARTTLS was refused: {_said([line])}")
            return
        line = yield Step()


def xmpp(host: str) -> Dialogue:
    header = (
        f"<?xml version='1.0'?><stream:stream to='{host}' version='1.0' "
        "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
    said = yield Step(header.encode())
    while b"</stream:features>" not in said and b"<stream:features/>" not in said:
        said += yield Step()
    if b"<starttls" not in said:
        yield Step(failure="the server does not offer STARTTLS in its stream features")
        return
    said = yield Step(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    while b"<proceed" not in said and b"<failure" not in said:
        said += yield Step()
    if b"<proceed" in said:
        yield Step(upgrade=True)
    else:
        yield Step(failure="the server answered STARTTLS with <failure/>")


DIALOGUES: dict[StartTlsName, Callable[[str], Dialogue]] = {
    "smtp": smtp,
    "imap": imap,
    "pop3": pop3,
    "xmpp": xmpp,
    "irc": irc,
}
"""Every protocol but `plain`, which has no preamble of ours: it upgrades when told
(`POST /api/connection/starttls`)."""


class Preamble:
    """One connection's way to TLS: `first` to send at once, then `feed` what came."""

    def __init__(self, protocol: StartTlsName, host: str) -> None:
        self._dialogue = DIALOGUES[protocol](host)
        self._lines = protocol != "xmpp"
        self._buf = bytearray()
        self._seen = 0
        self.first = next(self._dialogue)

    def feed(self, data: bytes) -> list[Step]:
        """The steps this data leads to; the last one may upgrade or fail."""
        self._seen += len(data)
        if self._seen > MAX_PREAMBLE:
            return [Step(failure=f"no answer to STARTTLS in the first {MAX_PREAMBLE} bytes")]
        if not self._lines:
            return [self._dialogue.send(data)]
        self._buf += data
        steps: list[Step] = []
        while b"\n" in self._buf:
            line, _, rest = bytes(self._buf).partition(b"\n")
            self._buf[:] = rest
            step = self._dialogue.send(line.removesuffix(b"\r"))
            steps.append(step)
            if step.upgrade or step.failure:
                break
        return steps
