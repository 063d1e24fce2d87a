"""Who holds each `--chat` name: the peers of this instance, or every instance of a room.

A name is unique in its room, whatever its case. One instance asks its own peers'
names (`LocalClaims`); the instances of a room shared through Redis claim them in
one hash, `webchat:<room>:names` (`RoomClaims`), as
`lowercased name -> "<instance> <peer> <name>"`. A claim is one Lua script, so two
instances never both get a name. A name whose instance is no longer in the room's
`instances` hash (it died, or stopped before its peers' names were given back) is
free again, so nothing is held for ever.
"""

from __future__ import annotations

import time
from typing import Protocol, cast

from webchat.store.redis import RedisStore

CLAIM = """
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
local function free(key)
  local held = redis.call('HGET', KEYS[1], key)
  if not held or string.sub(held, 1, #ARGV[2]) == ARGV[2] then return true end
  return redis.call('HEXISTS', KEYS[2], string.match(held, '^%S+')) == 0
end
local name = ARGV[1]
if name == '' then
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[3], 0) end
  repeat name = 'user' .. redis.call('INCR', KEYS[3]) until free(name)
elseif not free(string.lower(name)) then
  return false
end
redis.call('HSET', KEYS[1], string.lower(name), ARGV[2] .. name)
return name
"""
"""KEYS: the names hash, the instances hash, the `user<N>` counter. ARGV: the name wanted
('' for the next `user<N>`, from `user1` again once nobody has a name), the owner
("<instance> <peer> "), the instance, now (it is alive: its beat is written too).
Returns the name, or nil when another peer holds it."""
RELEASE = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[2]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
"""
"""Given back only by its owner: a name taken over from a lost instance stays taken."""
FORGET = """
local gone = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    table.insert(gone, string.match(all[i + 1], '(%S+)$'))
  end
end
return gone
"""
"""The names a lost instance held, given back; returns them."""


class Taken(Protocol):
    """The names of this instance's peers: `room.chat.Names`."""

    def fresh(self) -> str: ...

    def free(self, peer: str, name: str) -> bool: ...


class Claims(Protocol):
    async def claim(self, peer: str, name: str | None) -> str | None:
        """`name` for `peer`, or the next `user<N>` when None; None if another peer has it."""

    async def release(self, peer: str, name: str) -> None: ...


class LocalClaims:
    """One instance: its own peers are the whole room."""

    def __init__(self, names: Taken) -> None:
        self._names = names

    async def claim(self, peer: str, name: str | None) -> str | None:
        if name is None:
            return self._names.fresh()
        return name if self._names.free(peer, name) else None

    async def release(self, peer: str, name: str) -> None:
        """Nothing to give back: `Names` forgot the peer already."""


class RoomClaims:
    """Every instance of a shared room; each call waits out a Redis outage."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._keys = [store.prefix + "names", store.prefix + "instances", store.prefix + "users"]
        self._claim = store.client.register_script(CLAIM)
        self._release = store.client.register_script(RELEASE)
        self._forget = store.client.register_script(FORGET)

    def _owner(self, peer: str) -> str:
        return f"{self._store.instance} {peer} "

    async def claim(self, peer: str, name: str | None) -> str | None:
        args = [name or "", self._owner(peer), self._store.instance, str(time.time())]
        got = await self._store.link.kept(lambda: self._claim(keys=self._keys, args=args))
        return None if got is None else cast(bytes, got).decode()

    async def release(self, peer: str, name: str) -> None:
        args = [name.lower(), self._owner(peer)]
        await self._store.link.kept(lambda: self._release(keys=self._keys[:1], args=args))

    async def held(self) -> dict[str, str]:
        """Every peer of the room that has a name, with its name."""
        found = await self._store.link.kept(lambda: self._store.client.hvals(self._keys[0]))
        return dict(cast(bytes, value).decode().split(" ")[1:3] for value in found)

    async def forget(self, instance: str) -> list[str]:
        """Every name a lost instance's peers held, given back."""
        args = [instance + " "]
        gone = await self._store.link.kept(lambda: self._forget(keys=self._keys[:1], args=args))
        return [name.decode() for name in cast(list[bytes], gone)]
