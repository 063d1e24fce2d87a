"""Names shared by every layer: directions, event kinds, framing and role names.

One module, as `starlette/types.py` is, so the layers agree on spelling
without importing each other.
"""

from __future__ import annotations

from typing import Literal, get_args

Direction = Literal["in", "out"]
EventKind = Literal[
    "listening",
    "connected",
    "half_closed",
    "telnet",
    "tls",
    "disconnected",
    "rejected",
    "connect_failed",
    "rate_limited",
    "chat",
    "cleared",
]
FramingName = Literal["line", "crlf", "raw", "nul", "len16", "len32"]
LineEnding = Literal["framing", "none", "lf", "crlf"]
"""What ends a send on the wire: the framing's own (LF, CRLF, NUL, a length prefix), or
nothing, LF or CRLF whatever the framing."""
RoleName = Literal["server", "client", "view"]
StartTlsName = Literal["smtp", "imap", "pop3", "xmpp", "irc", "plain"]
"""`--starttls`: the plaintext preamble before the handshake; `plain` waits to be told."""

EVENT_KINDS: frozenset[str] = frozenset(get_args(EventKind))
FRAMING_NAMES: tuple[str, ...] = get_args(FramingName)
LINE_ENDINGS: tuple[str, ...] = get_args(LineEnding)
STARTTLS_NAMES: tuple[str, ...] = get_args(StartTlsName)
