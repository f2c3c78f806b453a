from __future__ import annotations

import asyncio

import pytest
from synapscribe.agentcore import admission as adm


async def test_at_most_limit_in_flight() -> None:
    a = adm.Admission(limit=3, timeout=5)
    running = 0
    peak = 0

    async def job() -> None:
        nonlocal running, peak
        async with a.slot():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(job() for _ in range(12)))
    assert peak == 3
    assert a.peak_in_flight == 3
    assert a.in_flight == 0


async def test_waiters_time_out_as_busy_and_leave_no_slot_behind() -> None:
    a = adm.Admission(limit=1, timeout=0.05)
    await a.acquire()
    with pytest.raises(adm.BusyError, match="1 model slots"):
        await a.acquire()
    a.release()
    assert a.in_flight == 0
    await a.acquire()  # the timed-out waiter did not keep the slot
    assert a.in_flight == 1


async def test_answers_are_served_before_transcriptions() -> None:
    a = adm.Admission(limit=1, timeout=5)
    await a.acquire()
    order: list[str] = []

    async def want(kind: str, priority: int) -> None:
        async with a.slot(priority):
            order.append(kind)

    tasks = [
        asyncio.create_task(want("transcribe", adm.TRANSCRIBE)),
        asyncio.create_task(want("lecture", adm.LECTURE)),
        asyncio.create_task(want("answer", adm.ANSWER)),
    ]
    await asyncio.sleep(0.01)
    a.release()
    await asyncio.gather(*tasks)
    assert order == ["answer", "transcribe", "lecture"]


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    a = adm.Admission(limit=1, timeout=5)
    await a.acquire()
    waiter = asyncio.create_task(a.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    a.release()
    assert a.in_flight == 0


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        adm.Admission(limit=0, timeout=1)
    with pytest.raises(ValueError, match="timeout"):
        adm.Admission(limit=1, timeout=0)
