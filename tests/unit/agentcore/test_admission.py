from __future__ import annotations

import asyncio
import math

import pytest
from aws_test_env import TEST_RESOURCES
from moto import mock_aws
from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.app import build_deps
from synapscribe.agentcore.settings import AgentCoreSettings
from synapscribe.platform import PlatformConfigError, load_platform, parse_platform
from synapscribe.settings import AwsResources, load_settings


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


async def _order_served(aging: float) -> list[str]:
    """One slot taken; a transcription waits 0.2 s, then an answer arrives; the slot is freed."""
    a = adm.Admission(limit=1, timeout=5, aging=aging)
    await a.acquire()
    order: list[str] = []

    async def want(kind: str, priority: int) -> None:
        async with a.slot(priority):
            order.append(kind)

    transcription = asyncio.create_task(want("transcribe", adm.TRANSCRIBE))
    await asyncio.sleep(0.2)
    answer = asyncio.create_task(want("answer", adm.ANSWER))
    await asyncio.sleep(0.01)
    assert a.waiting == 2
    a.release()
    await asyncio.gather(transcription, answer)
    return order


async def test_a_transcription_waiting_past_the_aging_bound_goes_before_a_newer_answer() -> None:
    assert await _order_served(aging=0.1) == ["transcribe", "answer"]


async def test_without_aging_the_newer_answer_still_goes_first() -> None:
    assert await _order_served(aging=math.inf) == ["answer", "transcribe"]
    # Below the bound, priority still decides.
    assert await _order_served(aging=30) == ["answer", "transcribe"]


def test_wait_queue_order_with_and_without_aging() -> None:
    """The ordering itself (shared with `synapscribe simulate`), on explicit clocks."""

    def served(aging: float, now: float) -> list[str]:
        q: adm.WaitQueue[str] = adm.WaitQueue(aging)
        q.push("lecture", adm.LECTURE, 0.0)
        q.push("transcribe", adm.TRANSCRIBE, 1.0)
        q.push("answer-1", adm.ANSWER, 4.0)
        q.push("gone", adm.ANSWER, 4.5)
        q.push("answer-2", adm.ANSWER, 5.0)
        out = []
        while (item := q.pop(now, lambda i: i != "gone")) is not None:
            out.append(item)
        return out

    assert served(math.inf, 10.0) == ["answer-1", "answer-2", "transcribe", "lecture"]
    assert served(0.0, 10.0) == ["lecture", "transcribe", "answer-1", "answer-2"]
    # Aged 8 s at t = 10: the lecture (10 s) and the transcription (9 s) are past it, oldest first.
    assert served(8.0, 10.0) == ["lecture", "transcribe", "answer-1", "answer-2"]
    # Aged 9.5 s: only the lecture is past it; then priority.
    assert served(9.5, 10.0) == ["lecture", "answer-1", "answer-2", "transcribe"]
    with pytest.raises(ValueError, match="aging"):
        adm.WaitQueue(-1.0)


@pytest.mark.parametrize(("aging", "problem"), [(20.0, "must be below"), (-1.0, "admission_aging_seconds")])
def test_the_platforms_aging_bound_is_checked(aging: float, problem: str) -> None:
    data = load_platform().model_dump()
    data["agentcore"] = {**data["agentcore"], "queue_timeout_seconds": 20.0, "admission_aging_seconds": aging}
    with pytest.raises(PlatformConfigError, match=problem):
        parse_platform(data)


def test_agentcore_admits_with_the_platforms_aging_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        **TEST_RESOURCES,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "VLLM_BASE_URL": "http://127.0.0.1:8000/v1",
        "SYNAPSCRIBE_TTS_URL": "http://127.0.0.1:8001",
        "SYNAPSCRIBE_CONNECTIONS_ENDPOINT": "http://127.0.0.1:9000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        deps = build_deps(load_settings(AgentCoreSettings), AwsResources())
    p = load_platform()
    assert 0 < p.agentcore.admission_aging_seconds < p.agentcore.queue_timeout_seconds
    assert deps.admission.aging == p.agentcore.admission_aging_seconds
