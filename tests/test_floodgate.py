"""The FloodWait gate and the concurrency slots, alone (pure asyncio, no Telegram)."""

from __future__ import annotations

import asyncio

import pytest

from bot.floodgate import FloodGate, Slots


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_wait_holds_only_its_kind_and_a_chat_wait_only_that_chat() -> None:
    clock = Clock()
    gate = FloodGate(clock)
    gate.close("messages.GetHistoryRequest", 30)
    gate.close("messages.SendMessageRequest", 10, scope=42)
    assert gate.remaining("messages.GetHistoryRequest") == 30
    assert gate.remaining("messages.GetHistoryRequest", scope=7) == 30  # every chat
    assert gate.remaining("contacts.ResolveUsernameRequest") == 0
    assert gate.remaining("messages.SendMessageRequest", scope=42) == 10
    assert gate.remaining("messages.SendMessageRequest", scope=43) == 0
    assert gate.remaining("messages.SendMessageRequest") == 0
    clock.now += 20
    assert gate.remaining("messages.GetHistoryRequest") == 10
    assert gate.remaining("messages.SendMessageRequest", scope=42) == 0


def test_a_shorter_wait_never_shortens_a_longer_one_and_zero_counts_as_one() -> None:
    clock = Clock()
    gate = FloodGate(clock)
    gate.close("k", 30)
    gate.close("k", 5)
    assert gate.remaining("k") == 30
    gate.close("other", 0)
    assert gate.remaining("other") == 1
    assert [c.seconds for c in gate.closures] == [30, 5, 1]


async def test_a_holder_waiting_at_the_gate_lets_another_take_its_slot() -> None:
    gate = FloodGate()
    slots = Slots(1)
    gate.close("k", 1)
    other_done = asyncio.Event()
    at_gate = asyncio.Event()
    order: list[str] = []

    async def waiter() -> None:
        async with slots.taken():
            at_gate.set()
            await gate.wait("k")
            order.append("waiter sent")

    async def other() -> None:
        async with slots.taken():
            order.append("other worked")
            assert gate.remaining("k") > 0  # while the waiter still waits
        other_done.set()

    async with asyncio.timeout(5):
        first = asyncio.create_task(waiter())
        await at_gate.wait()  # it holds the only slot
        await asyncio.gather(other(), first)
    assert order == ["other worked", "waiter sent"]
    assert other_done.is_set()


async def test_a_holder_cancelled_while_waiting_frees_its_slot_once() -> None:
    gate = FloodGate()
    slots = Slots(1)
    gate.close("k", 60)
    at_gate = asyncio.Event()

    async def waiter() -> None:
        async with slots.taken():
            at_gate.set()
            await gate.wait("k")

    task = asyncio.create_task(waiter())
    await at_gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    inside = 0
    most = 0

    async def worker() -> None:
        nonlocal inside, most
        async with slots.taken():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    async with asyncio.timeout(5):
        await asyncio.gather(*(worker() for _ in range(3)))
    assert most == 1  # still one slot, not two


def test_slots_need_at_least_one() -> None:
    with pytest.raises(ValueError):
        Slots(0)
