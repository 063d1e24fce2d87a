"""The transcript as a Redis Stream: one room that several webchat instances share.

Every key of a room is under `webchat:<room>:`. Ids are given inside Redis by
one Lua script that increments `last` and `XADD`s each entry as `<id>-0`, so
they stay one gap-free, strictly increasing sequence whichever instance
appends. Each instance tails the stream (`XREAD BLOCK`) and tells its
followers (the hub) of every entry in id order, its own included; an append
returns once Redis has accepted it and the tail has passed it, so the store's
promise ("followed before `append` returns") holds as on SQLite. Each append
carries a token the script remembers for a while: an append retried after a
lost reply is not written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any, cast

import msgpack
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from webchat.model import Entry, stamp
from webchat.store import Follower, Health, Match, StoreError, payload_size
from webchat.store.redis_link import (
    RETRY_FIRST,
    RETRY_MOST,
    TIMEOUT,
    Link,
    as_parsed,
    connect,
    redacted,
)
from webchat.store.schema import entry as decoded
from webchat.store.schema import row

APPEND = """
local done = redis.call('GET', KEYS[3])
if done then return tonumber(done) end
local entries = cmsgpack.unpack(ARGV[4])
local n = #entries
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      redis.call('SET', KEYS[2], string.match(info[i + 1], '^(%d+)'))
    end
  end
end
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n + 1
for i = 1, n do
  local e = entries[i]
  local fields = {'t', e[1], 'k', e[2], 'b', e[4], 'o', ARGV[3]}
  if e[3] ~= '' then table.insert(fields, 'p'); table.insert(fields, e[3]) end
  if e[5] ~= '' then table.insert(fields, 'm'); table.insert(fields, e[5]) end
  redis.call('XADD', KEYS[1], (first + i - 1) .. '-0', unpack(fields))
end
local keep = tonumber(ARGV[1])
if last > keep then redis.call('XTRIM', KEYS[1], 'MINID', '~', (last - keep + 1) .. '-0') end
redis.call('SET', KEYS[3], first, 'EX', ARGV[2])
return first
"""
"""KEYS: the stream, the id counter, this append's token. ARGV: max entries, the token's
lifetime, the instance appending, and the entries as one MessagePack array of
[ts, kind, peer, body, meta] ('' for none), bytes as the old raw type, which is all
Redis's cmsgpack reads: one argument, not five per entry, since redis-py packs each
argument in Python (9 ms for 1,000 entries, against 2 ms). Returns the first id.

A counter that is gone while the stream is not (deleted by hand, or evicted under a
`maxmemory-policy` other than `noeviction`) is taken up again from the stream's last id,
so no `XADD` can fail half way: Redis does not roll a script back, and a failing one would
leave a gap. Out of memory, the first write (`INCRBY`) is refused, before any change."""
TOKEN_SECONDS = 600
"""How long an append's token is remembered: longer than any retry of it."""
TAIL_BLOCK_MS = 1000
TAIL_COUNT = 1000
"""Entries one `XREAD` hands the hub at most: a batch, as a group commit is on SQLite."""
PAGE = 500
Items = list[tuple[bytes, dict[bytes, bytes]]]
"""What XRANGE returns (replies are bytes: no decoding)."""
Stream = list[tuple[bytes, list[bytes]]]
Tailed = dict[bytes, Stream] | list[tuple[bytes, Stream]]
"""XREAD's reply as the parser gives it: a map under RESP3, pairs under RESP2 (redis-py's
default before 6.0); each entry's fields a flat list."""


def _fields(entry: Entry) -> list[Any]:
    _, ts, kind, peer, body, meta = row(entry)
    return [repr(ts), kind, peer or "", body, meta or ""]


def _entry(stream_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    kind = fields[b"k"].decode()
    body: bytes | str = fields[b"b"]
    if kind not in ("in", "out"):
        body = fields[b"b"].decode()
    peer = fields.get(b"p")
    meta = fields.get(b"m")
    entry = decoded(
        (
            int(stream_id.split(b"-", 1)[0]),
            float(fields[b"t"]),
            kind,
            None if peer is None else peer.decode(),
            body,
            None if meta is None else meta.decode(),
        )
    )
    if origin := fields.get(b"o"):
        object.__setattr__(entry, "origin", origin.decode())
    return entry


class RedisStore:
    def __init__(self, url: str, room: str, max_entries: int) -> None:
        self.where = f"{redacted(url)} (room {room})"
        self._url = url
        self._max = max_entries
        prefix = f"webchat:{room}:"
        self._log, self._last_key, self._epoch_key = (
            prefix + "log",
            prefix + "last",
            prefix + "epoch",
        )
        self._token_prefix = prefix + "done:"
        self.prefix = prefix
        self.room = room
        self.instance = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        """This instance's name in the room: on every entry it records, and in the roster."""
        try:
            with redis.Redis.from_url(
                url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
            ) as client:
                client.set(self._epoch_key, uuid.uuid4().hex, nx=True)
                self.epoch = (client.get(self._epoch_key) or b"").decode()
                self._last = int(client.get(self._last_key) or 0)
        except (RedisError, OSError, ValueError) as exc:
            remedy = "start redis-server or check --store"
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                remedy = "give the CA that signed Redis's certificate: ?ssl_ca_certs=/path/ca.pem"
            raise StoreError(f"store {redacted(url)} cannot be reached ({exc}): {remedy}") from None
        self.link = Link(url)
        self._client = connect(url)
        self._tail_client = connect(url)
        self._tail_client.set_response_callback("XREAD", as_parsed)
        """XREAD's reply as hiredis parsed it, with no dict built per entry by redis-py."""
        self._me = self.instance.encode()
        self._mine: dict[int, Entry] = {}
        """Entries this instance appended that its tail has not read yet: decoding them
        again from the stream was a quarter of an instance's time under a flood."""
        self._append = self._client.register_script(APPEND)
        self._followers: list[Follower] = []
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._tail: asyncio.Task[None] | None = None
        self._in_order = asyncio.Lock()

    @property
    def url(self) -> str:
        return self._url

    @property
    def health(self) -> Health:
        return self.link.health

    @property
    def client(self) -> aioredis.Redis:
        """The room's connection pool, for the keys beside the stream (the roster)."""
        return self._client

    @property
    def last_id(self) -> int:
        """The newest id this instance has followed."""
        return self._last

    def follow(self, follower: Follower) -> None:
        """Also starts tailing the stream: an instance that never appends (a viewer)
        still hears every entry of the room."""
        self._followers.append(follower)
        self._start_tail()

    def _start_tail(self) -> None:
        if self._tail is None:
            self._tail = asyncio.get_running_loop().create_task(self._tail_log())

    async def _tail_log(self) -> None:
        delay = RETRY_FIRST
        while not self.link.closing:
            try:
                found = cast(  # None when the block ended with nothing new
                    Tailed | None,
                    await self._tail_client.xread(
                        {self._log: f"{self._last}-0"}, count=TAIL_COUNT, block=TAIL_BLOCK_MS
                    ),
                )
            except (RedisError, OSError) as exc:
                self.link.failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MOST)
                continue
            delay = RETRY_FIRST
            self.link.healed()
            streams = found.values() if isinstance(found, dict) else (s for _, s in found or ())
            for items in streams:
                if items:
                    await self._after_own_reply(items[-1])
                    self._followed([self._known(stream_id, flat) for stream_id, flat in items])

    async def _after_own_reply(self, item: tuple[bytes, list[bytes]]) -> None:
        """The tail often reads this instance's entries before their append has its reply:
        a turn of the loop lets the append hand them on (`_mine`), undecoded."""
        stream_id, flat = item
        if flat[7] == self._me and int(stream_id[:-2]) not in self._mine:
            await asyncio.sleep(0)

    def _known(self, stream_id: bytes, flat: list[bytes]) -> Entry:
        """This instance's own entry as it appended it, else the stream's, decoded."""
        mine = self._mine.pop(int(stream_id[:-2]), None)
        return mine or _entry(stream_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    def _followed(self, batch: list[Entry]) -> None:
        self._last = batch[-1].id
        for follower in self._followers:
            follower(batch)
        while self._waiting and self._waiting[0][0] <= self._last:
            _, _, done = heapq.heappop(self._waiting)
            if not done.done():
                done.set_result(None)

    async def append(self, entries: Sequence[Entry], *, send: bool = False) -> Sequence[Entry]:
        """Returns once Redis has the entries and the tail has passed them. While Redis
        cannot be reached a send is refused at once; other appends retry with the same
        token, so their caller (a paused TCP peer) loses nothing and nothing is doubled."""
        if not entries:
            return entries
        self._start_tail()
        if send and self.link.health.error is not None:
            raise StoreError(self.link.health.error)
        packed = msgpack.packb([_fields(entry) for entry in entries], use_bin_type=False)
        args: list[Any] = [self._max, TOKEN_SECONDS, self.instance, packed]
        keys = [self._log, self._last_key, self._token_prefix + uuid.uuid4().hex]
        async with contextlib.nullcontext() if send else self._in_order:
            first = await self._write(keys, args, send)
        last = first + len(entries) - 1
        for entry_id, entry in enumerate(entries, first):
            stamp(entry, entry_id)
            object.__setattr__(entry, "origin", self.instance)
            if entry_id > self._last:  # the tail has not read it yet: it hands on this one
                self._mine[entry_id] = entry
        if last > self._last:
            done = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (last, next(self._order), done))
            await done
        return entries

    async def _write(self, keys: list[str], args: list[Any], send: bool) -> int:
        """Run the script until Redis takes it; the first id. Appends other than sends
        wait their turn (`_in_order`), so entries kept across an outage keep their order."""
        first = int(await self.link.kept(lambda: self._append(keys=keys, args=args), refuse=send))
        self.link.healed(wrote=True)
        return first

    async def read(
        self,
        after: int = 0,
        limit: int = 100,
        *,
        before: int | None = None,
        newest_first: bool = False,
        match: Match | None = None,
        max_bytes: int | None = None,
    ) -> list[Entry]:
        found: list[Entry] = []
        weight = 0
        low, high = after + 1, (before - 1 if before is not None else None)
        while len(found) < limit and (high is None or low <= high):
            top = "+" if high is None else f"{high}-0"
            try:
                if newest_first:
                    reply = await self._client.xrevrange(self._log, top, f"{low}-0", PAGE)
                else:
                    reply = await self._client.xrange(self._log, f"{low}-0", top, PAGE)
                items = cast(Items, reply)
            except (RedisError, OSError) as exc:
                self.link.failed(exc)
                raise StoreError(self.link.health.error or str(exc)) from None
            for stream_id, fields in items:
                entry = _entry(stream_id, fields)
                if match is None or match.accepts(entry):
                    found.append(entry)
                    weight += payload_size(entry)
                    if len(found) == limit or (max_bytes is not None and weight >= max_bytes):
                        return found
            if len(items) < PAGE:
                break
            last = _entry(*items[-1]).id
            if newest_first:
                high = last - 1
            else:
                low = last + 1
        return found

    async def clear(self) -> int:
        """Every entry up to the newest is deleted (`XTRIM MINID`); ids go on."""
        try:
            last = int(await self._client.get(self._last_key) or 0)
            removed: int = await self._client.xtrim(self._log, minid=f"{last + 1}-0")
        except (RedisError, OSError) as exc:
            self.link.failed(exc)
            raise StoreError(self.link.health.error or str(exc)) from None
        return removed

    async def close(self) -> None:
        self.link.closing = True
        if self._tail is not None:  # it ends at its next turn: a blocked XREAD is not
            # cancelled, since redis-py was seen to hold a cancelled one for ever
            await asyncio.wait({self._tail}, timeout=TAIL_BLOCK_MS / 1000 + 1)
            self._tail.cancel()
        for done in (d for _, _, d in self._waiting if not d.done()):
            done.set_exception(StoreError("webchat is shutting down"))
        await self._client.aclose()
        await self._tail_client.aclose()
