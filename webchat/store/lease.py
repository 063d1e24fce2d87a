"""A hold on something of a room that only one instance may have (the client role's
connection): a Redis key with this instance's name and a lifetime, renewed while it lives.

Taken synchronously at start, so a refusal is one line before anything is served; given
back on stop; a holder that was killed loses it when the lifetime runs out.
"""

from __future__ import annotations

import redis
from redis.exceptions import RedisError

from webchat.store import StoreError
from webchat.store.redis import RedisStore
from webchat.store.redis_link import TIMEOUT, redacted

LEASE_MS = 10_000
"""How long a hold (the client role's connection) outlives its holder's last renewal."""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    def __init__(self, store: RedisStore, what: str) -> None:
        self._store = store
        self._what = what
        self._key = store.prefix + what

    def take(self) -> None:
        """Hold it, or raise `StoreError` naming the instance that does."""
        store = self._store
        try:
            with redis.Redis.from_url(store.url, socket_timeout=TIMEOUT) as client:
                if not client.set(self._key, store.instance, nx=True, px=LEASE_MS):
                    holder = (client.get(self._key) or b"?").decode()
                    raise StoreError(
                        f"room {store.room}'s {self._what} connection is held by instance "
                        f"{holder}: stop that one, or wait {LEASE_MS // 1000} s after it died"
                    )
        except (RedisError, OSError) as exc:
            raise StoreError(f"store {redacted(store.url)} cannot be reached ({exc})") from None

    async def renew(self) -> None:
        await self._store.client.eval(RENEW, 1, self._key, self._store.instance, LEASE_MS)

    async def release(self) -> None:
        await self._store.client.eval(RELEASE, 1, self._key, self._store.instance)
