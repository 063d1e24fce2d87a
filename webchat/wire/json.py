"""The `/ws` and REST JSON format: entries to frames, client frames to requests.

An entry is encoded once (`frame`) and the same string goes to every reader,
the REST API and the JSON Lines export. Client frames are parsed into values:
a bad frame is an error string, never an exception, so `/ws` can answer it
and keep the socket open (as websockets' `Protocol.parse` keeps `parser_exc`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from webchat.model import CHAT_NAME, Entry, Message, iso_utc
from webchat.notation import parse_hex, unescape
from webchat.types import LINE_ENDINGS, LineEnding

BATCH_FRAMES = 1000
"""Most frames in one `?batch=1` message."""


def entry_dict(entry: Entry) -> dict[str, Any]:
    """The entry as `/ws` and the REST API show it."""
    if isinstance(entry, Message):
        shown = {
            "type": "message",
            "id": entry.id,
            "ts": iso_utc(entry.ts),
            "direction": entry.direction,
            "peer": entry.peer,
            "text": entry.text,
        }
        if not exact(entry):
            shown["b64"] = base64.b64encode(entry.data).decode()
        if entry.rule is not None:
            shown["rule"] = entry.rule
        if entry.name is not None:
            shown["name"] = entry.name
        return shown
    shown = {
        "type": "event",
        "id": entry.id,
        "ts": iso_utc(entry.ts),
        "kind": entry.kind,
        "peer": entry.peer,
        "detail": entry.detail,
    }
    if entry.tls is not None:
        shown["tls"] = entry.tls
    return shown


def exact(message: Message) -> bool:
    """Is `text` exactly the bytes, as UTF-8? Then `b64` is left out: it would cost more
    than the text (encoding a 64 KiB chunk took 1.6 ms/MiB with it, 0.16 without). Decoding
    puts U+FFFD only where bytes were invalid, so a text without one is exact."""
    return "\ufffd" not in message.text or message.text.encode() == message.data


def dumps(value: Any) -> str:
    """One JSON encoder for every frame."""
    return orjson.dumps(value).decode()


def frame(entry: Entry) -> str:
    """The entry's `/ws` frame, encoded once for every reader."""
    return dumps(entry_dict(entry))


def error_frame(detail: str, ref: object = None) -> str:
    """An `error`; for a send that had an `id`, with that id."""
    reply: dict[str, object] = {"type": "error", "detail": detail}
    if ref is not None:
        reply["id"] = ref
    return dumps(reply)


def pong_frame(ping_id: object) -> str:
    return dumps({"type": "pong", "id": ping_id})


def sent_frame(ref: object, entry_id: int) -> str:
    """A send with an `id` was committed and written: its `out` entry is `entry_id`."""
    return dumps({"type": "sent", "id": ref, "entry_id": entry_id})


def batch_frames(frames: Sequence[str]) -> list[str]:
    """`?batch=1` messages: the frames joined as encoded, never encoded again."""
    return [
        '{"type":"batch","frames":[' + ",".join(frames[i : i + BATCH_FRAMES]) + "]}"
        for i in range(0, len(frames), BATCH_FRAMES)
    ]


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A `send` from a browser or the API, once checked: the exact bytes to send."""

    data: bytes
    to: str | None
    ending: LineEnding = "framing"
    ref: object = None
    """The client's `id` for this send, echoed in its `sent` or `error` reply; None: no reply
    on success."""
    name: str | None = None
    """`--chat`: the page user's name, shown to TCP peers as `<name> text`."""


@dataclass(frozen=True, slots=True)
class Ping:
    """A browser measuring its round trip: answered at once with `pong` and the same id."""

    id: object


def parse_send(
    text: object,
    hex_text: object,
    escapes: object,
    to: object,
    max_text: int,
    ending: object = "framing",
    ref: object = None,
    name: object = None,
) -> SendRequest | str:
    """The one check of a send, for `/ws` and REST alike: the request or the error."""
    if to is not None and not isinstance(to, str):
        return '"to" must be a peer name such as "127.0.0.1:5555", or null for every peer'
    if ending not in LINE_ENDINGS:
        return '"line_ending" must be "framing" (the default), "none", "lf" or "crlf"'
    if name is not None and not (isinstance(name, str) and CHAT_NAME.fullmatch(name)):
        return '"name" must be 1 to 24 letters, digits or _ . - [ ] { } | ^ `'
    data = _payload(text, hex_text, escapes)
    if isinstance(data, str):
        return data
    if len(data) > max_text:
        return f"the message is {len(data)} bytes; the limit is {max_text}"
    speaker = name if isinstance(name, str) else None
    return SendRequest(data, to, cast(LineEnding, ending), ref, speaker)


def _payload(text: object, hex_text: object, escapes: object) -> bytes | str:
    if (text is None) == (hex_text is None):
        return 'give exactly one of "text" (a string) and "hex" (hex digits)'
    if not isinstance(escapes, bool):
        return '"escapes" must be true or false'
    if text is not None:
        if not isinstance(text, str):
            return '"text" must be a string'
        try:
            return unescape(text) if escapes else text.encode()
        except UnicodeEncodeError:
            return '"text" holds a lone surrogate (an unpaired \\ud800-\\udfff): send valid Unicode'
        except ValueError as exc:
            return str(exc)
    if not isinstance(hex_text, str):
        return '"hex" must be a string of hex digits, e.g. "de ad be ef"'
    return _converted(parse_hex, hex_text)


def _converted(convert: Any, text: str) -> bytes | str:
    try:
        data: bytes = convert(text)
    except ValueError as exc:
        return str(exc)
    return data


def parse_client_frame(raw: str | bytes, max_text: int) -> SendRequest | Ping | str:
    """A `/ws` frame from the browser, or the error detail to send back."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 'frames must be JSON, e.g. {"type":"send","text":"hello"}'
    if not isinstance(value, dict):
        return 'frames must be JSON objects, e.g. {"type":"send","text":"hello"}'
    kind = value.get("type")
    if kind == "ping":
        return Ping(value.get("id"))
    if kind != "send":
        return f'unknown frame type {kind!r}: a browser sends "send" (or "ping")'
    return parse_send(
        value.get("text"),
        value.get("hex"),
        value.get("escapes", False),
        value.get("to"),
        max_text,
        value.get("line_ending", "framing"),
        value.get("id"),
        value.get("name"),
    )
