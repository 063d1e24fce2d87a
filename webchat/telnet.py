"""Sans-I/O telnet (RFC 854): option negotiation out of the text, refused, as `ncat -t` does.

A telnet server opens with `IAC DO ECHO`, `IAC WILL SUPPRESS-GO-AHEAD` and the
like; unanswered, some wait forever, and the bytes show as garbage. With
`--telnet`, the filter takes every IAC sequence out of the stream and refuses
each offer (`DO` gets `WONT`, `WILL` gets `DONT`; `WONT` and `DONT` need no
answer, so two refusing ends never loop). `IAC IAC` is a data byte 0xFF, and
telnet's `CR NUL` (a bare CR) ends a line as `CR LF` does. The filter keeps
one state between chunks and never buffers: a subnegotiation is skipped as it
comes, so one that never ends costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
_CR, _NUL, _LF = 13, 0, 10
ANSWERS = {DO: WONT, WILL: DONT}
VERBS = {DO: "DO", DONT: "DONT", WILL: "WILL", WONT: "WONT"}
COMMANDS = {241: "NOP", 242: "DM", 243: "BRK", 244: "IP", 245: "AO", 246: "AYT", 247: "EC"}
COMMANDS |= {248: "EL", 249: "GA", SE: "SE"}
OPTIONS = {
    0: "BINARY",
    1: "ECHO",
    3: "SUPPRESS-GO-AHEAD",
    5: "STATUS",
    6: "TIMING-MARK",
    24: "TERMINAL-TYPE",
    31: "NAWS",
    32: "TERMINAL-SPEED",
    33: "TOGGLE-FLOW-CONTROL",
    34: "LINEMODE",
    35: "X-DISPLAY-LOCATION",
    36: "ENVIRON",
    37: "AUTHENTICATION",
    38: "ENCRYPT",
    39: "NEW-ENVIRON",
}
MAX_NOTES = 16
"""Commands named in one `telnet` event; past that they are counted."""


@dataclass
class Filtered:
    """One chunk, filtered: the data for the framer, the refusals to write back, and the
    commands seen, in the words of the `telnet` event."""

    data: bytes
    reply: bytes = b""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """`DO ECHO, WILL SUPPRESS-GO-AHEAD; answered WONT ECHO, DONT SUPPRESS-GO-AHEAD`."""
        shown = self.notes[:MAX_NOTES]
        more = len(self.notes) - len(shown)
        text = ", ".join(shown) + (f" and {more} more" if more else "")
        answers = [name(self.reply[i + 1], self.reply[i + 2]) for i in range(0, len(self.reply), 3)]
        if answers:
            shown_answers = answers[:MAX_NOTES]
            extra = len(answers) - len(shown_answers)
            text += "; answered " + ", ".join(shown_answers)
            text += f" and {extra} more" if extra else ""
        return text


def name(verb: int, option: int) -> str:
    return f"{VERBS[verb]} {OPTIONS.get(option, str(option))}"


def escape(data: bytes) -> bytes:
    """A payload for the wire: a 0xFF byte is sent as `IAC IAC`."""
    return data.replace(b"\xff", b"\xff\xff") if b"\xff" in data else data


class TelnetFilter:
    """The receiving side of one telnet connection."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state = "data"  # data, cr, iac, verb:N, sb-option, sb, sb-iac

    def feed(self, chunk: bytes) -> Filtered:
        if self._state == "data" and IAC not in chunk and b"\r\x00" not in chunk:
            if chunk.endswith(b"\r"):
                self._state = "cr"
            return Filtered(chunk)
        out = bytearray()
        reply = bytearray()
        notes: list[str] = []
        for byte in chunk:
            state = self._state
            if state in ("data", "cr"):
                self._state = "data"
                if byte == IAC:
                    self._state = "iac"
                elif state == "cr" and byte == _NUL:
                    out.append(_LF)  # CR NUL: the CR is out already; LF makes it a line end
                else:
                    out.append(byte)
                    if byte == _CR:
                        self._state = "cr"
            elif state == "iac":
                self._state = "data"
                if byte == IAC:
                    out.append(IAC)
                elif byte in VERBS:
                    self._state = f"verb:{byte}"
                elif byte == SB:
                    self._state = "sb-option"
                else:
                    notes.append(COMMANDS.get(byte, f"command {byte}"))
            elif state.startswith("verb:"):
                verb = int(state[5:])
                self._state = "data"
                notes.append(name(verb, byte))
                if verb in ANSWERS:
                    reply += bytes((IAC, ANSWERS[verb], byte))
            elif state == "sb-option":
                self._state = "sb"
                notes.append(f"SB {OPTIONS.get(byte, str(byte))}")
            elif state == "sb":
                if byte == IAC:
                    self._state = "sb-iac"
            else:  # sb-iac: IAC SE ends the subnegotiation; IAC IAC is a byte inside it
                self._state = "data" if byte == SE else "sb"
        return Filtered(bytes(out), bytes(reply), notes)
