"""A query's answer asks for its model slot when the query is accepted (answer.AnswerSlot), so
a transcription that asks later, while the answer's query is still being prepared, waits behind it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from synapscribe.agentcore import admission as adm
from synapscribe.agentcore.answer import AnswerSlot
from synapscribe.agentcore.aws import Spans
from synapscribe.agentcore.deps import AgentCoreDeps
from synapscribe.agentcore.query import Query


def slot_for(admission: adm.Admission) -> AnswerSlot:
    deps = cast(AgentCoreDeps, SimpleNamespace(admission=admission))
    return AnswerSlot(deps, cast(Query, SimpleNamespace(spans=Spans())))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_answer_accepted_first_is_served_before_a_later_transcription() -> None:
    admission = adm.Admission(limit=1, timeout=5)
    await admission.acquire()  # every slot busy
    slot = slot_for(admission)  # query accepted; its preparation is still running
    await settle()
    transcription = asyncio.create_task(admission.acquire(adm.TRANSCRIBE))  # an earlier query's
    await settle()
    admission.release()  # the slot frees: it goes to the accepted answer
    await asyncio.wait_for(slot.wait(), 1)
    await settle()
    assert not transcription.done()
    assert admission.in_flight == 1
    slot.release()
    await asyncio.wait_for(transcription, 1)
    admission.release()
    assert admission.in_flight == 0


async def test_withdrawn_before_granted_takes_nothing() -> None:
    admission = adm.Admission(limit=1, timeout=5)
    await admission.acquire()
    slot = slot_for(admission)
    await settle()
    assert admission.waiting == 1
    slot.release()  # the preparation failed: the request is withdrawn
    await settle()
    assert admission.waiting == 0
    admission.release()
    assert admission.in_flight == 0


async def test_granted_slot_is_given_back_once() -> None:
    admission = adm.Admission(limit=2, timeout=5)
    slot = slot_for(admission)
    await slot.wait()
    assert admission.in_flight == 1
    slot.release()
    slot.release()
    assert admission.in_flight == 0


async def test_no_slot_in_time_is_busy_when_waited_for() -> None:
    admission = adm.Admission(limit=1, timeout=0.05)
    await admission.acquire()
    slot = slot_for(admission)
    await asyncio.sleep(0.1)
    try:
        await slot.wait()
    except adm.BusyError:
        pass
    else:
        raise AssertionError("expected BusyError")
    slot.release()
    admission.release()
    assert admission.in_flight == 0
