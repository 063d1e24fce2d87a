"""The transcript's entry types, peer names and the JSON frames of `/ws`.

Entries are frozen, slotted and validated when built (as h11's events are):
every layer above passes them around without copying or re-checking. An
entry gets its `id` from the store, so a role builds it with `id=0` and the
store hands back a copy that carries the id.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import ipaddress
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import orjson

Direction = Literal["in", "out"]
EventKind = Literal["listening", "connected", "disconnected", "rejected", "connect_failed"]
_KINDS = frozenset(get_args(EventKind))


@dataclass(frozen=True, slots=True)
class Message:
    """Bytes that crossed the TCP side; `text` is their UTF-8 reading, `data` the bytes."""

    direction: Direction
    peer: str | None
    data: bytes
    text: str
    ts: float = dataclasses.field(default_factory=time.time)
    id: int = 0

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {self.direction!r}")

    @classmethod
    def received(cls, peer: str, data: bytes) -> Message:
        return cls("in", peer, data, decode(data))

    @classmethod
    def sent(cls, peer: str | None, data: bytes) -> Message:
        return cls("out", peer, data, decode(data))


@dataclass(frozen=True, slots=True)
class Event:
    """A change of connection state, told in the words the page shows."""

    kind: EventKind
    peer: str | None
    detail: str = ""
    ts: float = dataclasses.field(default_factory=time.time)
    id: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")


Entry = Message | Event


def decode(data: bytes) -> str:
    """UTF-8 with U+FFFD for invalid bytes; the entry keeps `data` for a lossless view."""
    return data.decode("utf-8", "replace")


def peer_name(host: str, port: int) -> str:
    """`host:port`, with IPv6 hosts in brackets so the port stays unambiguous (RFC 3986)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(value: str) -> tuple[str, int]:
    """Inverse of `peer_name`; raises ValueError with a message fit for a user."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text:
        raise ValueError(f"{value!r} has no port: write HOST:PORT, e.g. 127.0.0.1:9000")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host.split("%")[0])
    elif ":" in host:
        raise ValueError(f"{value!r}: put an IPv6 address in brackets, e.g. [::1]:9000")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_utc(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, as the protocol promises.

    The date and time up to the second are formatted once per second (a flood
    shares them); only the milliseconds are per entry."""
    fraction, second = math.modf(ts)
    micros = round(fraction * 1_000_000)  # as datetime.fromtimestamp rounds
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return f"{_utc_second(int(second))}.{micros // 1000:03d}Z"


def entry_dict(entry: Entry) -> dict[str, Any]:
    """The entry as `/ws` and the REST API show it."""
    if isinstance(entry, Message):
        return {
            "type": "message",
            "id": entry.id,
            "ts": iso_utc(entry.ts),
            "direction": entry.direction,
            "peer": entry.peer,
            "text": entry.text,
            "b64": base64.b64encode(entry.data).decode(),
        }
    return {
        "type": "event",
        "id": entry.id,
        "ts": iso_utc(entry.ts),
        "kind": entry.kind,
        "peer": entry.peer,
        "detail": entry.detail,
    }


def dumps(value: Any) -> str:
    """One JSON encoder for every frame, so an entry is encoded once for all subscribers."""
    return orjson.dumps(value).decode()


def error_frame(detail: str) -> str:
    return dumps({"type": "error", "detail": detail})


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A `send` from a browser or the API, once checked: the exact bytes to send."""

    data: bytes
    to: str | None


def parse_hex(text: str) -> bytes:
    """`48 65 6c 6c 6f`, `48656c6c6f` or `48:65`: hex digits, separators optional.

    Raises ValueError with a message that points at the problem."""
    digits = re.sub(r"[\s:.,-]", "", text.removeprefix("0x"))
    bad = re.search(r"[^0-9a-fA-F]", digits)
    if bad:
        raise ValueError(f"hex: {bad.group()!r} is not a hex digit (use 0-9 and a-f)")
    if len(digits) % 2:
        raise ValueError(f"hex: {len(digits)} digits is an odd count; each byte needs two")
    return binascii.unhexlify(digits)


_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\x00", "\\": b"\\"}


_NAMED = {0: "\\0", 9: "\\t", 10: "\\n", 13: "\\r", 0x5C: "\\\\"}


def escape(data: bytes) -> str:
    """Bytes as `unescape` reads them back: printable ASCII as is, the rest `\\xNN`."""
    return "".join(_NAMED.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in data)


def unescape(text: str) -> bytes:
    """UTF-8 of `text` with `\\r \\n \\t \\0 \\xNN \\\\` turned into the bytes they name.

    Raises ValueError naming the first bad escape."""
    out = bytearray()
    parts = iter(re.split(r"(\\x[0-9a-fA-F]{2}|\\.?)", text, flags=re.S))
    for plain in parts:
        out += plain.encode()
        escape = next(parts, None)
        if not escape:
            continue
        if escape.startswith("\\x") and len(escape) == 4:
            out.append(int(escape[2:], 16))
        elif escape[1:] in _ESCAPES:
            out += _ESCAPES[escape[1:]]
        else:
            raise ValueError(
                f"unknown escape {escape!r}: use \\r \\n \\t \\0 \\xNN or \\\\ for a backslash"
            )
    return bytes(out)


def send_payload(text: object, hex_text: object, escapes: object = False) -> bytes | str:
    """The bytes of a send that gives exactly one of `text` and `hex`, or the error.
    With `escapes`, `\\r \\n \\t \\0 \\xNN \\\\` in `text` become the bytes they name."""
    if (text is None) == (hex_text is None):
        return 'give exactly one of "text" (a string) and "hex" (hex digits)'
    if not isinstance(escapes, bool):
        return '"escapes" must be true or false'
    if text is not None:
        if not isinstance(text, str):
            return '"text" must be a string'
        if not escapes:
            return text.encode()
        try:
            return unescape(text)
        except ValueError as exc:
            return str(exc)
    if not isinstance(hex_text, str):
        return '"hex" must be a string of hex digits, e.g. "de ad be ef"'
    try:
        return parse_hex(hex_text)
    except ValueError as exc:
        return str(exc)


@dataclass(frozen=True, slots=True)
class Ping:
    """A browser measuring its round trip: answered at once with `pong` and the same id."""

    id: object


def parse_client_frame(raw: str | bytes) -> SendRequest | Ping | str:
    """A `/ws` frame from the browser, or the error detail to send back.

    Errors are values here so the endpoint can answer them and keep the
    socket open; nothing a browser sends may end the connection.
    """
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 'frames must be JSON, e.g. {"type":"send","text":"hello"}'
    if not isinstance(frame, dict):
        return 'frames must be JSON objects, e.g. {"type":"send","text":"hello"}'
    kind = frame.get("type")
    if kind == "ping":
        return Ping(frame.get("id"))
    if kind != "send":
        return f'unknown frame type {kind!r}: a browser sends "send" (or "ping")'
    to = frame.get("to")
    if to is not None and not isinstance(to, str):
        return '"to" must be a peer name such as "127.0.0.1:5555", or null for every peer'
    data = send_payload(frame.get("text"), frame.get("hex"), frame.get("escapes", False))
    return data if isinstance(data, str) else SendRequest(data, to)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {9: "\\t", 10: "\\n", 13: "\\r"}


def printable(text: str) -> str:
    """Control characters escaped, so a peer cannot drive a terminal or break a log line."""
    return text if text.isprintable() else text.translate(_CONTROL)


def console_line(entry: Entry) -> str:
    """The console mirror's line: local time, direction or event, peer, text."""
    clock = (
        time.strftime("%H:%M:%S", time.localtime(entry.ts)) + f".{int(entry.ts * 1000) % 1000:03d}"
    )
    if isinstance(entry, Message):
        lossy = "\ufffd" in entry.text and entry.text.encode() != entry.data
        text = escape(entry.data) if lossy else printable(entry.text)
        return f"{clock} {entry.direction:<3} {entry.peer or '*'} {text}"
    detail = printable(entry.detail)
    return f"{clock} --- {entry.peer or '-'} {entry.kind}{': ' + detail if detail else ''}"
