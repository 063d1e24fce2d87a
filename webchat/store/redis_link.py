"""A room's line to Redis: pooled clients that time out and retry, the password kept out
of sight, and which failures are waited out (Redis away, or refusing writes for a while),
as the store's health says.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from webchat.store import Health, StoreError

TIMEOUT = 5.0
"""Seconds a command may take; longer than the tail's blocking read."""
RETRY_FIRST = 0.05
RETRY_MOST = 1.0
"""Seconds between attempts while Redis cannot be reached: a restart is noticed within one."""
UNREACHABLE = (ConnectionError, TimeoutError, OSError)
"""Errors that say Redis is away (retried), not that it refused a command."""
WAIT_OUT = (OutOfMemoryError, ReadOnlyError, TryAgainError)
WAIT_OUT_CODES = ("MASTERDOWN ", "BUSY ")
"""Refusals that last only a while (out of memory, a replica during a failover, a script
running long): waited out as an outage is, never a lost line. redis-py makes some of them
classes of their own; the others are told by their code."""
T = TypeVar("T")


def redacted(url: str) -> str:
    """The URL without its password: for the start-up line, status and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.hostname or ""
    netloc = user + (f"[{host}]" if ":" in host else host)
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def waitable(exc: BaseException) -> bool:
    return isinstance(exc, (*UNREACHABLE, *WAIT_OUT)) or (
        isinstance(exc, ResponseError) and str(exc).startswith(WAIT_OUT_CODES)
    )


def as_parsed(response: Any, **kwargs: Any) -> Any:
    return response


def connect(url: str) -> aioredis.Redis:
    """A pooled connection that Redis closed (a restart) fails its next command once: that
    is retried on a new connection (safe for appends: their token stops a double write)."""
    retry = Retry(ExponentialBackoff(0.5, 0.05), 2)
    return aioredis.Redis.from_url(
        url,
        retry=retry,
        retry_on_error=[*UNREACHABLE],
        socket_connect_timeout=TIMEOUT,
        socket_timeout=TIMEOUT,  # a Redis that stopped answering is away, not slow
    )


class Link:
    """How the room's store is doing with Redis: its health, and the one retry policy every
    command on the room's keys goes through (`kept`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.health = Health()
        self._refusing = False
        """The failure is Redis refusing writes, not Redis away: reads do not end it."""
        self.closing = False
        """Set at shutdown: nothing waits for Redis any more."""

    def failed(self, exc: BaseException) -> None:
        if self.health.error is None:
            away = isinstance(exc, UNREACHABLE)
            self._refusing = not away
            why = f"store {redacted(self.url)} {'cannot be reached' if away else 'failed'}: {exc}"
            self.health = Health(why, time.time())
            sys.stderr.write(f"webchat: error: {why}; sends are refused and TCP peers wait\n")

    def healed(self, *, wrote: bool = False) -> None:
        """A read heals an outage; only a write heals a refusal to write (`WAIT_OUT`)."""
        if self.health.error is not None and (wrote or not self._refusing):
            lasted = time.time() - (self.health.since or time.time())
            self.health = Health()
            sys.stderr.write(
                f"webchat: store {redacted(self.url)} reachable again after {lasted:.1f} s\n"
            )

    async def kept(self, attempt: Callable[[], Awaitable[T]], *, refuse: bool = False) -> T:
        """`attempt` (a command on the room's keys), again until Redis is reachable: its
        caller waits out an outage. With `refuse` (a send) or at shutdown it fails at once.
        Raises `StoreError`; a command Redis refuses for good is not retried."""
        delay = RETRY_FIRST
        while True:
            try:
                return await attempt()
            except (RedisError, OSError) as exc:
                if not waitable(exc):
                    raise StoreError(f"store {redacted(self.url)} failed: {exc}") from None
                self.failed(exc)
                if refuse or self.closing:
                    raise StoreError(self.health.error or str(exc)) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MOST)
