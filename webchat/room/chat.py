"""`--chat`: the TCP room of `ncat --chat`, with names: `user<N>`, `/nick`, announcements.

`Names` is sans-I/O (who is called what, what a line means); `ChatRoom` is a hub
listener that acts on committed entries: it relays each line to the other peers
as `<name> text`, answers `/nick`, and announces joins, leaves and renames to
everyone, TCP peers and page alike (a `chat` event each). Everything written to a
TCP peer has its control characters escaped, so no peer drives another's terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from webchat.model import CHAT_NAME, Entry, Event, Message
from webchat.notation import printable
from webchat.roles.base import RoleBase
from webchat.roles.peer import Peer
from webchat.store import StoreError


@dataclass(frozen=True)
class Said:
    """What a line from a peer means: `relay` it as `<name> text`, or a `reply` to the
    peer alone and an `announce` to everyone (a rename)."""

    relay: str | None = None
    reply: str | None = None
    announce: str | None = None


def check_name(name: str) -> str | None:
    """Why `name` cannot be a chat name, or None."""
    if not CHAT_NAME.fullmatch(name):
        return (
            f"{printable(name)!r} cannot be a name: use 1 to 24 letters, digits or _ . - "
            "[ ] { } | ^ `"
        )
    return None


class Names:
    def __init__(self) -> None:
        self._by_peer: dict[str, str] = {}
        self._next = 1

    def join(self, peer: str) -> str:
        while (name := f"user{self._next}") in self.taken():
            self._next += 1
        self._next += 1
        self._by_peer[peer] = name
        return name

    def leave(self, peer: str) -> str | None:
        return self._by_peer.pop(peer, None)

    def of(self, peer: str) -> str | None:
        return self._by_peer.get(peer)

    def taken(self) -> set[str]:
        return {name.casefold() for name in self._by_peer.values()}

    def hear(self, peer: str, text: str) -> Said:
        name = self._by_peer.get(peer)
        if name is None:
            return Said()
        if not text.startswith("/nick"):
            return Said(relay=f"<{name}> {text}")
        wanted = text[5:].strip()
        if not wanted or text[5:6] not in (" ", ""):
            return Said(reply="* usage: /nick NAME")
        problem = check_name(wanted)
        if problem is None and wanted.casefold() in self.taken() - {name.casefold()}:
            problem = f"{wanted} is taken; choose another name"
        if problem is not None:
            return Said(reply=f"* {problem}")
        self._by_peer[peer] = wanted
        return Said(reply=f"* you are now {wanted}", announce=f"{name} is now {wanted}")


class ChatRoom:
    """The room at work, as a hub listener of the server role."""

    def __init__(self, role: RoleBase) -> None:
        self._role = role
        self.names = Names()
        role.on_join.append(self._joined)

    def _joined(self, peer: Peer) -> None:
        """Named before it is heard: its first line already carries the name."""
        name = peer.chat_name = self.names.join(peer.name)
        self._write(peer.name, f"* welcome, you are {name}; /nick NAME changes it")
        self._announce(peer.name, f"{name} joined")

    def __call__(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            peer = entry.peer
            if peer is None:
                continue
            if isinstance(entry, Message):
                if entry.direction == "in":
                    self._heard(peer, entry.text)
            elif entry.kind == "disconnected":
                left = self.names.leave(peer)
                if left is not None:
                    self._announce(peer, f"{left} left")

    def _heard(self, peer: str, text: str) -> None:
        said = self.names.hear(peer, text)
        if said.relay is not None:
            self._role.broadcast(printable(said.relay).encode(), but=peer)
        if said.reply is not None:
            self._write(peer, said.reply)
        if said.announce is not None:
            self._label(peer, self.names.of(peer))
            self._announce(peer, said.announce)

    def _label(self, peer: str, name: str | None) -> None:
        """The peer's next lines carry its name into the transcript."""
        if (connection := self._role.peers.get(peer)) is not None:
            connection.chat_name = name

    def _write(self, peer: str, line: str) -> None:
        self._role.broadcast(printable(line).encode(), only=peer)

    def _announce(self, but: str | None, what: str) -> None:
        """To every TCP peer (but the one it is about, when that one was told already),
        and to the page as a `chat` event."""
        self._role.broadcast(printable(f"* {what}").encode(), but=but)
        self._role.spawn(self._record(what))

    async def _record(self, what: str) -> None:
        with contextlib.suppress(StoreError):
            await self._role.record([Event("chat", None, what)])

    def name_of(self, peer: str) -> str | None:
        return self.names.of(peer)
