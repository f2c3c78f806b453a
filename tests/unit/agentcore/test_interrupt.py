"""The contract's `cancel` in AgentCore (agentcore/interrupts.py): a stopped answer stops its
model stream and speech, gives its model slot back, and ends with exactly one final `answer`
marked `stopped`, carrying what was sent; it is not kept in the history."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from synapscribe.agentcore.interrupts import EARLY_STOP_MAX, Interrupts
from synapscribe.agentcore.pipeline import QueryPipeline
from synapscribe_local.standin.config import Latency
from synapscribe_local.standin.server import create_app as create_standin

from .pipeline_rig import OWNER, query_job

#: A long, slow answer: about 20 s of streaming unless stopped.
SLOW = Latency(tokens_per_second=20.0, answer_tokens=400)


def slow_standin(config: Any) -> Any:
    return create_standin(dataclasses.replace(config, latency=SLOW))


async def wait_until(condition: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_stopped_answer_frees_its_slot_and_ends_with_one_stopped_answer(make_rig: Any) -> None:
    async with make_rig(standin=slow_standin) as rig:
        session_id = rig.session()
        rig.store.put_connection("c1", OWNER)
        job = query_job(session_id, "c1", text="What does rubisco fix?", voice=True)
        run = asyncio.create_task(QueryPipeline(rig.deps).run(job))

        def sent() -> list[dict[str, Any]]:
            return [m for m in rig.gateway.messages.get("c1", []) if m.get("requestId") == job.requestId]

        # (The in-process model app answers its stream whole, so this stops it while the model
        # writes; tests/integration/test_interrupt_stack.py stops one mid-stream over HTTP.)
        await wait_until(lambda: rig.deps.admission.in_flight == 1, 15)
        await asyncio.sleep(0.3)
        asked = asyncio.get_running_loop().time()
        answering = rig.deps.interrupts.stop(OWNER, job.requestId)
        assert answering is not None
        await asyncio.wait_for(answering.ended.wait(), 1)
        # The model slot is back within a second of the stop.
        assert rig.deps.admission.in_flight == 0
        assert asyncio.get_running_loop().time() - asked < 1
        await asyncio.wait_for(run, 5)
        messages = sent()
        finals = [m for m in messages if m["type"] in ("answer", "error")]
        assert len(finals) == 1 and messages[-1] is finals[0], [m["type"] for m in messages]
        final = finals[0]
        assert final["type"] == "answer" and final["stopped"] is True
        deltas = "".join(m["text"] for m in messages if m["type"] == "answerDelta")
        assert final["text"] == deltas.strip()
        assert final["audio"] == [m["url"] for m in messages if m["type"] == "audio"]
        # Nothing more of it is sent later (its speech was cancelled), and no turn was kept.
        await asyncio.sleep(0.5)
        assert sent() == messages
        stored = rig.store.get_session(session_id, OWNER)
        assert stored is not None and stored["history"] == []
        assert rig.deps.interrupts.running() == 0


async def test_another_owner_cannot_stop_it(make_rig: Any) -> None:
    async with make_rig() as rig:
        session_id = rig.session()
        job = query_job(session_id, "c1", text="What does rubisco fix?", voice=False)
        rig.store.put_connection("c1", OWNER)
        run = asyncio.create_task(QueryPipeline(rig.deps).run(job))
        await asyncio.sleep(0)
        assert rig.deps.interrupts.stop("eu-west-1:mallory", job.requestId) is None
        await asyncio.wait_for(run, 15)
        [final] = [m for m in rig.gateway.messages["c1"] if m["type"] == "answer"]
        assert "stopped" not in final and final["text"]


async def test_a_stop_that_overtakes_its_query_stops_it_when_it_starts(make_rig: Any) -> None:
    async with make_rig(standin=slow_standin) as rig:
        session_id = rig.session()
        rig.store.put_connection("c1", OWNER)
        job = query_job(session_id, "c1", text="What does rubisco fix?", voice=False)
        assert rig.deps.interrupts.stop(OWNER, job.requestId) is None  # not here yet
        await asyncio.wait_for(QueryPipeline(rig.deps).run(job), 5)
        [final] = [m for m in rig.gateway.messages["c1"] if m["type"] in ("answer", "error")]
        assert final["stopped"] is True and rig.deps.admission.in_flight == 0


def test_early_stops_are_bounded() -> None:
    interrupts = Interrupts()
    for i in range(EARLY_STOP_MAX * 3):
        interrupts.stop("owner", f"q-{i}")
    assert len(interrupts._early) == EARLY_STOP_MAX
