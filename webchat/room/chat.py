"""`--chat`: the TCP room of `ncat --chat`, with names: `user<N>`, `/nick`, announcements.

`Names` is sans-I/O (who is called what, what a line means); `ChatRoom` is a hub
listener that acts on committed entries: it relays each line to the other peers
as `<name> text`, answers `/nick`, and announces joins, leaves and renames to
everyone, TCP peers and page alike (a `chat` event each). Which names are free is
for `room.claims` to say: this instance's peers', or a shared room's. Everything
written to a TCP peer has its control characters escaped, so no peer drives another's
terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from webchat.model import CHAT_NAME, Entry, Event, Message
from webchat.notation import printable
from webchat.roles.base import RoleBase
from webchat.roles.peer import Peer
from webchat.room.claims import Claims, LocalClaims
from webchat.store import StoreError


@dataclass(frozen=True)
class Said:
    """What a line from a peer means: `relay` it as `<name> text`, a `reply` to the peer
    alone (a mistake), or a `rename` to claim."""

    relay: str | None = None
    reply: str | None = None
    rename: str | None = None


def check_name(name: str) -> str | None:
    """Why `name` cannot be a chat name, or None."""
    if not CHAT_NAME.fullmatch(name):
        return (
            f"{printable(name)!r} cannot be a name: use 1 to 24 letters, digits or _ . - "
            "[ ] { } | ^ `"
        )
    return None


def is_command(text: str) -> bool:
    """A line the room answers instead of relaying."""
    return text.startswith("/nick")


class Names:
    """What this instance's peers are called; sans-I/O."""

    def __init__(self) -> None:
        self._by_peer: dict[str, str] = {}
        self._next = 1

    def fresh(self) -> str:
        """The next `user<N>` no peer here has."""
        while (name := f"user{self._next}") in self.taken():
            self._next += 1
        self._next += 1
        return name

    def free(self, peer: str, name: str) -> bool:
        """No other peer here has `name`, whatever its case."""
        mine = self._by_peer.get(peer, "").casefold()
        return name.casefold() not in self.taken() - {mine}

    def call(self, peer: str, name: str) -> None:
        self._by_peer[peer] = name

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
        if not is_command(text):
            return Said(relay=f"<{name}> {text}")
        wanted = text[5:].strip()
        if not wanted or text[5:6] not in (" ", ""):
            return Said(reply="* usage: /nick NAME")
        problem = check_name(wanted)
        if problem is not None:
            return Said(reply=f"* {problem}")
        return Said(rename=wanted)


class ChatRoom:
    """The room at work, as a hub listener of the server role.

    In a room shared through Redis (`me` is this instance) names are claimed across
    every instance, and the lines and announcements other instances recorded are told
    to the peers held here. A rename waits for its claim: the entries after it wait
    too (in `_pending`, a Redis round trip's worth), so they keep their order.
    """

    def __init__(self, role: RoleBase, claims: Claims | None = None, me: str | None = None) -> None:
        self._role = role
        self.names = Names()
        self._claims = claims or LocalClaims(self.names)
        self._me = me
        self._pending: list[Entry] | None = None
        role.before_join.append(self._named)
        role.on_join.append(self._joined)

    async def _named(self, peer: Peer) -> None:
        """Named before it is heard: its first line already carries the name."""
        name = await self._claims.claim(peer.name, None)
        assert name is not None  # a fresh `user<N>` is always given
        self.names.call(peer.name, name)
        peer.chat_name = name

    def _joined(self, peer: Peer) -> None:
        name = self.names.of(peer.name)
        self._write(peer.name, f"* welcome, you are {name}; /nick NAME changes it")
        self._announce(peer.name, f"{name} joined")

    def __call__(self, entries: Sequence[Entry]) -> None:
        if self._pending is not None:
            self._pending.extend(entries)
            return
        for at, entry in enumerate(entries):
            if entry.origin is not None and entry.origin != self._me:
                self._elsewhere(entry)
                continue
            peer = entry.peer
            if peer is None:
                continue
            if isinstance(entry, Message):
                if entry.direction == "in" and (wanted := self._heard(peer, entry.text)):
                    self._pending = list(entries[at + 1 :])
                    self._role.spawn(self._rename(peer, wanted))
                    return
            elif entry.kind == "disconnected":
                left = self.names.leave(peer)
                if left is not None:
                    self._role.spawn(self._quietly(self._claims.release(peer, left)))
                    self._announce(peer, f"{left} left")

    def _elsewhere(self, entry: Entry) -> None:
        """Another instance's peer spoke, or its room announced something."""
        if isinstance(entry, Message):
            if entry.direction == "in" and entry.name is not None and not is_command(entry.text):
                self._role.broadcast(printable(f"<{entry.name}> {entry.text}").encode())
        elif entry.kind == "chat":
            self._role.broadcast(printable(f"* {entry.detail}").encode())

    def _heard(self, peer: str, text: str) -> str | None:
        """Relays or answers the line; the name it asks for, if any."""
        said = self.names.hear(peer, text)
        if said.relay is not None:
            self._role.broadcast(printable(said.relay).encode(), but=peer)
        if said.reply is not None:
            self._write(peer, said.reply)
        return said.rename

    async def _rename(self, peer: str, wanted: str) -> None:
        try:
            old = self.names.of(peer)
            got = await self._claims.claim(peer, wanted)
            if got is None:
                self._write(peer, f"* {wanted} is taken; choose another name")
            elif old is not None:
                self.names.call(peer, got)
                if (connection := self._role.peers.get(peer)) is not None:
                    connection.chat_name = got  # its next lines carry the name
                if old.casefold() != got.casefold():
                    await self._quietly(self._claims.release(peer, old))
                self._write(peer, f"* you are now {got}")
                self._announce(peer, f"{old} is now {got}")
        except StoreError:
            self._write(peer, "* the name cannot be claimed now; try again")
        finally:
            pending, self._pending = self._pending or [], None
            self(pending)

    def lost(self, names: list[str]) -> None:
        """A dead instance's peers left: told to the peers here (the `chat` events that
        record it tell every other instance)."""
        for name in names:
            self._role.broadcast(printable(f"* {name} left").encode())

    def _write(self, peer: str, line: str) -> None:
        self._role.broadcast(printable(line).encode(), only=peer)

    def _announce(self, but: str | None, what: str) -> None:
        """To every TCP peer (but the one it is about, when that one was told already),
        and to the page and the room's other instances as a `chat` event."""
        self._role.broadcast(printable(f"* {what}").encode(), but=but)
        self._role.spawn(self._quietly(self._role.record([Event("chat", None, what)])))

    @staticmethod
    async def _quietly(step: Awaitable[object]) -> None:
        """Only at shutdown: a store that is away is waited out."""
        with contextlib.suppress(StoreError):
            await step
