"""Spacing the bot's messages to stay under Telegram's limits.

Telegram lets a bot send about 30 messages a second overall, about one a second
to one chat and 20 a minute to one group; going faster earns FloodWait. The
limiter spaces sends per chat, and overall lets a burst through a token bucket
that refills a little under Telegram's rate (so a steady load never queues
behind the overall limit); a FloodWait pushes back the chat it hit (or
everything, for a global one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    overall_per_second: float = 25.0
    overall_burst: float = 20.0  # messages that may go out back to back overall
    chat_interval: float = 1.05  # seconds between messages to one private chat
    group_interval: float = 3.1  # seconds between messages to one group (20/min)


class RateLimiter:
    def __init__(
        self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self._tokens = self.limits.overall_burst
        self._stamp = clock()
        self._next_chat: dict[int, float] = {}
        self._paused_until = 0.0
        self._held: set[int] = set()
        self._changed = asyncio.Event()

    def delay(self, chat_id: int) -> float:
        """Seconds until a message to `chat_id` may go out (0: now; inf while held)."""
        if chat_id in self._held:
            return float("inf")
        now = self.clock()
        self._refill(now)
        overall = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.limits.overall_per_second
        ready = max(now + overall, self._next_chat.get(chat_id, 0.0), self._paused_until)
        return max(0.0, ready - now)

    def _refill(self, now: float) -> None:
        rate, burst = self.limits.overall_per_second, self.limits.overall_burst
        self._tokens = min(burst, self._tokens + (now - self._stamp) * rate)
        self._stamp = now

    def take(self, chat_id: int, group: bool = False) -> None:
        """Record a message going out now."""
        now = self.clock()
        interval = self.limits.group_interval if group else self.limits.chat_interval
        self._refill(now)
        self._tokens -= 1
        self._next_chat[chat_id] = now + interval
        if len(self._next_chat) > 10_000:  # forget chats that are long ready
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}

    def pause(self, seconds: float, chat_id: int | None = None) -> None:
        """Telegram asked to wait: hold the chat (or every chat when `chat_id` is None)."""
        until = self.clock() + seconds
        if chat_id is None:
            self._paused_until = max(self._paused_until, until)
        else:
            self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), until)

    def hold(self, chat_id: int) -> None:
        """Send nothing to this chat until `release()` (maintenance, tests)."""
        self._held.add(chat_id)

    def release(self, chat_id: int) -> None:
        self._held.discard(chat_id)
        self._changed.set()
        self._changed = asyncio.Event()

    async def ready(self, chat_id: int) -> None:
        """Wait until a message to the chat may go out (without taking the slot)."""
        while True:
            wait = self.delay(chat_id)
            if wait <= 0:
                return
            changed = self._changed
            try:
                # pacing: the slot is a point in time; a release() ends the wait early
                await asyncio.wait_for(changed.wait(), None if wait == float("inf") else wait)
            except TimeoutError:
                pass

    async def acquire(self, chat_id: int, group: bool = False) -> None:
        """Wait for the chat's and the overall slot, then take it."""
        await self.ready(chat_id)
        self.take(chat_id, group)
