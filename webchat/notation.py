"""Bytes as text and back: escapes, hex digits and printable text.

One escape rule serves the page's send box (`unescape`), the console mirror
and the text export (`escape`, `printable`), so what one shows the other reads.
"""

from __future__ import annotations

import binascii
import re

_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\x00", "\\": b"\\"}
_NAMED = {0: "\\0", 9: "\\t", 10: "\\n", 13: "\\r", 0x5C: "\\\\"}
_CONTROL = (
    {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
    | {c: f"\\u{c:04x}" for c in [0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}
    | {9: "\\t", 10: "\\n", 13: "\\r"}
)
"""C0, DEL and C1 (CSI, OSC, NEL drive terminals), line and paragraph separators (they break
a log line) and the bidi overrides (they reorder what a reader sees)."""


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
        sequence = next(parts, None)
        if not sequence:
            continue
        if sequence.startswith("\\x") and len(sequence) == 4:
            out.append(int(sequence[2:], 16))
        elif sequence[1:] in _ESCAPES:
            out += _ESCAPES[sequence[1:]]
        else:
            raise ValueError(
                f"unknown escape {sequence!r}: use \\r \\n \\t \\0 \\xNN or \\\\ for a backslash"
            )
    return bytes(out)


def printable(text: str) -> str:
    """Control characters escaped, so a peer cannot drive a terminal or break a log line."""
    return text if text.isprintable() else text.translate(_CONTROL)


def lossless(text: str, data: bytes) -> str:
    """`text` made printable, or the escaped bytes where the UTF-8 reading lost some."""
    if "\ufffd" in text and text.encode() != data:
        return escape(data)
    return printable(text)
