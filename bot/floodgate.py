"""Telegram's FloodWaits as gates, and bounded concurrency that waits well.

A FloodWait names a kind of request (and, for slow mode, one chat): no request of
that kind may be sent until the wait is over. `FloodGate` keeps those waits; every
request of the user client passes it first. `Slots` bounds how many channels are
worked on at once (resolving, catching up); a channel waiting at the gate gives its
slot to another channel meanwhile, so one wait never holds up work it does not name.

Pure asyncio: no Telethon here (the client in `bot/clients.py` feeds the gate).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass

Key = tuple[str, int | None]  # (request kind, chat id or None for every chat)


@dataclass(frozen=True, slots=True)
class Closure:
    """One FloodWait as the client learned it (wall-clock times, for the record)."""

    kind: str
    scope: int | None
    seconds: float
    at: float  # time.time() when the wait became known
    until: float  # time.time() before which no request of this kind is sent


class FloodGate:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[Key, float] = {}
        self.closures: deque[Closure] = deque(maxlen=1000)

    def close(self, kind: str, seconds: float, scope: int | None = None) -> None:
        """Telegram asked to wait `seconds` before the next request of `kind` (in `scope`)."""
        seconds = max(seconds, 1.0)  # FLOOD_WAIT_0 exists; retrying at once earns another
        now = self.clock()
        key = (kind, scope)
        until = max(self._until.get(key, now), now + seconds)
        self._until[key] = until
        wall = time.time()
        self.closures.append(Closure(kind, scope, seconds, wall, wall + (until - now)))

    def remaining(self, kind: str, scope: int | None = None) -> float:
        """Seconds before a request of `kind` (for chat `scope`) may be sent."""
        now = self.clock()
        keys: tuple[Key, ...] = ((kind, None),) if scope is None else ((kind, None), (kind, scope))
        left = 0.0
        for key in keys:
            until = self._until.get(key)
            if until is None:
                continue
            if until <= now:
                del self._until[key]
            else:
                left = max(left, until - now)
        return left

    async def wait(self, kind: str, scope: int | None = None) -> None:
        """Until a request of `kind` may be sent. The caller's slot (see `Slots`) is given
        up meanwhile and taken back before returning."""
        while self.remaining(kind, scope) > 0:
            async with _slot_given_up():
                while True:  # the wait Telegram asked for; another FloodWait may lengthen it
                    left = self.remaining(kind, scope)
                    if left <= 0:
                        break
                    await asyncio.sleep(left)
            # the slot is taken back: the gate may have closed again while waiting for it


class Slots:
    """At most `size` holders at once; a holder waiting at a `FloodGate` lets another in."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("at least one slot is needed")
        self.size = size
        self._free = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def taken(self) -> AsyncIterator[None]:
        await self._free.acquire()
        held = _Held(self)
        token = _CURRENT.set(held)
        try:
            yield
        finally:
            _CURRENT.reset(token)
            if held.holding:
                self._free.release()


class _Held:
    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.holding = True


_CURRENT: ContextVar[_Held | None] = ContextVar("chanwatch_slot", default=None)


@contextlib.asynccontextmanager
async def _slot_given_up() -> AsyncIterator[None]:
    held = _CURRENT.get()
    if held is None or not held.holding:
        yield
        return
    held.holding = False
    held.slots._free.release()
    yield  # a cancellation here leaves the slot free: taken() will not release it twice
    await held.slots._free.acquire()
    held.holding = True
