"""The transcript's entry types and peer names.

Entries are slotted and validated when built (as h11's events are): every
layer above passes them around without re-checking. An entry's `id` is the
one field set after construction, once, by the store as it commits (`stamp`):
copying each entry to give it an id cost 14% of the hot path.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from webchat.types import EVENT_KINDS, Direction, EventKind, LineEnding


@dataclass(frozen=True, slots=True)
class Message:
    """Bytes that crossed the TCP side; `text` is their UTF-8 reading, `data` the bytes."""

    direction: Direction
    peer: str | None
    data: bytes
    text: str
    ts: float = dataclasses.field(default_factory=time.time)
    id: int = 0
    rule: int | None = None
    """The auto-responder rule that sent it; None for everything else."""
    name: str | None = None
    """`--chat`: who said it (a TCP peer's chat name, or the page user's)."""
    origin: str | None = None
    """A shared room (`--store redis://`): the instance that recorded it; None elsewhere."""
    ending: LineEnding | None = None
    """A send's line ending when it is not the framing's (`none` for a file's pieces):
    kept, so every instance of a shared room writes the send as it went out."""

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {self.direction!r}")

    @classmethod
    def received(cls, peer: str, data: bytes, ts: float | None = None) -> Message:
        """`ts`: when the bytes were read; the lines of one read share it."""
        if ts is None:
            return cls("in", peer, data, decode(data))
        return cls("in", peer, data, decode(data), ts)

    @classmethod
    def sent(
        cls,
        peer: str | None,
        data: bytes,
        rule: int | None = None,
        name: str | None = None,
        ending: LineEnding = "framing",
    ) -> Message:
        if rule is None and name is None and ending == "framing":
            return cls("out", peer, data, decode(data))
        kept = None if ending == "framing" else ending
        return cls("out", peer, data, decode(data), rule=rule, name=name, ending=kept)


@dataclass(frozen=True, slots=True)
class Event:
    """A change of connection state, told in the words the page shows."""

    kind: EventKind
    peer: str | None
    detail: str = ""
    ts: float = dataclasses.field(default_factory=time.time)
    id: int = 0
    tls: TlsDetails | None = None
    """A connection's TLS, on `connected` and `tls` events of TLS peers."""
    origin: str | None = None
    """A shared room (`--store redis://`): the instance that recorded it; None elsewhere."""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")


Entry = Message | Event
TlsDetails = dict[str, str | None]
"""`version`, `cipher`, `peer_cert_subject`, `peer_cert_sha256`."""


def stamp(entry: Entry, entry_id: int) -> None:
    """Give a new entry its id; only a store calls this, once, as it commits the entry."""
    object.__setattr__(entry, "id", entry_id)


def decode(data: bytes) -> str:
    """UTF-8 with U+FFFD for invalid bytes; the entry keeps `data` for a lossless view."""
    return data.decode("utf-8", "replace")


def searchable(entry: Entry) -> str:
    """The text a search looks in: a message's text, an event's detail."""
    return entry.text if isinstance(entry, Message) else entry.detail


CHAT_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]{}|^`]{1,24}")
"""A `--chat` name: IRC's nickname characters (and `.`/`-`), 1 to 24 of them."""


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
        try:
            ipaddress.IPv6Address(host.split("%")[0])
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{value!r}: put an IPv6 address in brackets, e.g. [::1]:9000")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


_LAST_ISO: list[tuple[float, str]] = [(-1.0, "")]
"""The last timestamp formatted: the entries of one read share their `ts`."""


def iso_utc(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`, as the protocol promises.

    The date and time up to the second are formatted once per second (a flood
    shares them), the whole once per distinct `ts` in a row."""
    last = _LAST_ISO[0]
    if last[0] == ts:
        return last[1]
    fraction, second = math.modf(ts)
    micros = round(fraction * 1_000_000)  # as datetime.fromtimestamp rounds
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    text = f"{_utc_second(int(second))}.{micros // 1000:03d}Z"
    _LAST_ISO[0] = (ts, text)
    return text
